"""The hooks a plugin may implement in its hooks.py (or in the module its package's entry point names).

Every hook is optional. A hook implementation takes any subset of the arguments below, by name:

    from agent import hookimpl

    @hookimpl
    def build_reply(label, answer):
        return answer + " Anything else?" if label == "track_order" else None

A hook that raises is reported and skipped; the turn goes on without it and other plugins keep working.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "agent"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

HOOKS = ("build_reply", "observe_turn", "cli_commands", "tui_panels")


@hookspec
def build_reply(plugin: str, text: str, label: str, confidence: float, hits: list[dict[str, Any]],
                fallback_reason: str | None, answer: str, conversation_id: str) -> str | dict[str, Any] | None:
    """Called for turns this plugin answers; return the reply text to send, or None to keep `answer`.

    A recommending plugin may return `{"text": ..., "items": [{"id", "title", "reason", "score"}, ...]}`:
    the items are shown with the reply (`Reply.items`), logged with the turn, and can be liked,
    disliked or clicked with `agent feedback TURN --like ITEM` or from the chat app.

    `text` is the person's message, `label` and `confidence` the plugin's decision, `hits` the
    retrieved corpus entries (id, score, text, answer, label), `fallback_reason` why the agent would
    not guess (or None), and `answer` the reply the agent would send without this hook.
    """


@hookspec
def observe_turn(plugin: str, text: str, reply: Any, annotation: dict[str, Any] | None) -> dict[str, Any] | None:
    """Called for every turn, whichever plugin answered; return a dict to attach to the reply, or None.

    `reply` is the `agent.core.Reply` (read it, do not change it); `annotation` is this plugin's own
    label and confidence for the turn when it is an observer with labels, else None. What the hook
    returns is stored with the turn under the plugin's name (`Reply.annotations[plugin]`).
    """


@hookspec
def cli_commands() -> list[Any]:
    """Return click commands to add to `agent` (a name the agent already uses is refused)."""


@hookspec
def tui_panels() -> list[Any]:
    """Return Textual widget classes for the chat app's side panel; each is built with no arguments."""
