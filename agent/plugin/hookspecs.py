"""The hooks a plugin may implement: in its hooks.py, in the module its package's entry point names,
or in one of the agent's own default plugins (`agent.plugin.manager.DEFAULT_PLUGINS`).

Every hook is optional. A hook implementation takes any subset of its arguments, by name:

    from agent import hookimpl

    @hookimpl
    def build_reply(label, answer):
        return answer + " Anything else?" if label == "track_order" else None

Two kinds of hook:
- contributions (`register_*`, `cli_commands`, `tui_panels`) are called once, on every plugin, and
  add to the agent: manifest tables, database migrations, commands, fine-tuners, panels;
- turn hooks (`open_plugin`, `respond`, `observe`, `build_reply`, `observe_turn`, `format_extras`)
  are called while turns are answered. `build_reply` and `observe_turn` of a plugin folder or
  package run for that plugin only, on a thread of their own under AGENT_HOOK_TIMEOUT; a hook that
  raises is reported and skipped, and the turn goes on without it.

The order of the calls (agent/reply/agent.py):
- once per process, as the manager fills: `register_tables`, `register_migrations`, `register_finetuners`,
  `register_feedback`, `register_reply_keys`, `register_chat_commands`, `register_commands`, `register_routes`
  (each when the part of the agent that needs it first asks);
- once per loaded plugin: `open_plugin` (its kind's state: items, profiles, windows);
- per batch of messages (one message in chat): encode once, route, classify, then for each turn
  1. `respond` on every kind, first answer wins (the FAQ answer, items, an order's status),
  2. `build_reply` of the responding plugin alone (its own wording over the answer);
- then for the whole batch: `observe` on every kind (observers' windows and alerts), and `observe_turn` of each
  plugin with hooks, on each turn; then the turns are logged;
- when a reply is shown: `format_extras` (plain lines for a plugin's extras); when a logged turn is read back:
  `describe_turn`. `cli_commands` and `tui_panels` are read when the command line and the chat app start.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "agent"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
# Hooks the agent calls on every registered plugin (the default plugins, and packages or folders that
# implement one of them); the others are called for the plugin they belong to.
KIND_HOOKS = ("register_commands", "register_routes", "register_tables", "register_migrations", "register_finetuners", "register_feedback",
              "register_reply_keys", "register_chat_commands", "open_plugin", "intercept", "respond", "observe", "format_extras",
              "describe_turn")


# ---- contributions ------------------------------------------------------------------------------
@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to the `agent` group: `cli.add_command(cmd)` (as llm's hook of the same name)."""


@hookspec
def register_routes(register: Callable[..., None]) -> None:
    """Add HTTP routes to `agent serve`: `register(router)` with a FastAPI `APIRouter` (as commands arrive).

    Routes take keys with `Annotated[Caller, Depends(agent.serve.security.require(scope))]`, run work on
    the agent with `await agent.serve.routes.on_agent(request, fn)` and raise `ApiError(status, message)`.
    """


@hookspec
def register_tables(register: Callable[..., None]) -> None:
    """Declare manifest tables: `register(name, parse)`; `parse(table, manifest)` returns the parsed value.

    `table` is an `agent.plugin.manifest.TableReader` over the whole plugin.toml: `table.sub(name, keys)` gives
    the table (None when absent) with unknown keys refused, `get(key, type, default, expected)` a
    typed value, `fail(key, expected, found)` an error in the house style. The value is kept in
    `manifest.tables[name]` (None when the table is absent).
    """


@hookspec
def register_migrations(register: Callable[..., None]) -> None:
    """Add database migrations: `register(namespace, fn)`; each runs once, recorded as 'namespace.fn_name'."""


@hookspec
def register_finetuners(register: Callable[..., None]) -> None:
    """Fine-tune plugins with a table: `register(table, fn, folder="model")`.

    `fn(job)` receives an `agent.learn.finetune.Job` (manifest, settings, options, store, encoder,
    progress, cancel, say, versions) and returns a `FinetuneResult`; versions live in
    `HOME/models/NAME/<folder>/`.
    """


@hookspec
def register_feedback(register: Callable[..., None]) -> None:
    """Add options to `agent feedback TURN`: `register(option, help, fn)`; `fn(agent, turn_id, value)` stores
    it and returns the line to print."""


@hookspec
def register_reply_keys(register: Callable[..., None]) -> None:
    """Keys a `build_reply` result may carry: `register(key, check)`; `check(value)` returns the value to keep in
    the reply's extras under `key` and a list of problems (reported as the hook's warnings)."""


@hookspec
def register_chat_commands(register: Callable[..., None]) -> None:
    """Add slash commands to the chat app: `register(word, help, fn)`; `fn(app, arg)` runs on the UI thread."""


@hookspec
def cli_commands() -> list[Any]:
    """Return click commands to add to `agent` (a name the agent already uses is refused)."""


@hookspec
def tui_panels() -> list[Any]:
    """Return Textual widget classes for the chat app's side panel; each is built with no arguments."""


# ---- turns --------------------------------------------------------------------------------------
@hookspec
def open_plugin(plugin: str, manifest: Any, runtime: Any, encoder: Any, notify: Any) -> Any:
    """Called when a plugin's runtime is built; return this kind's state for it (or None when it does not apply).

    The state is kept in `runtime.extensions` under the implementing plugin's name. When it has a
    `refresh()` method, that is called before every turn and returns True after a hot swap.
    """


@hookspec
def intercept(turn: Any) -> dict[str, Any] | None:
    """Called for every turn before any plugin answers it: keep the turn from the agent, or add to its reply.

    `turn` is the `agent.reply.agent.TurnContext` that `respond` gets (no hits yet). Return `{"text": ...}` to send
    that text instead of an answer: no retrieval, offer, `respond` or `build_reply` runs ("" sends nothing; a person
    has the conversation). `{"extras": {key: {...}}}` adds to the reply's extras (a list under "messages" is shown
    before the reply: `{"text", "author", "id"}`). The turn is still classified, observed and logged.
    """


@hookspec(firstresult=True)
def respond(turn: Any) -> dict[str, Any] | None:
    """Answer a turn instead of the FAQ answer; the first non-None result wins.

    `turn` is an `agent.reply.agent.TurnContext`: the plugin, its manifest, runtime and state, the text, its
    embedding (the shared pass), user, conversation, label, confidence, fallback reason, hits, the
    answer the agent would send, the store and whether the turn is logged. Return
    `{"text": ..., "label": ..., "fallback_reason": ..., "extras": {...}}` (each key optional).
    """


@hookspec
def observe(turns: list[Any], plugin: str, runtime: Any) -> None:
    """An observer plugin's labels are on the turns (`annotations`); add to them in place: notes, flags, extras."""


@hookspec
def build_reply(plugin: str, text: str, label: str, confidence: float, hits: list[dict[str, Any]],
                fallback_reason: str | None, answer: str, conversation_id: str, embedding: Any, user: str,
                store: Any, extras: dict[str, Any]) -> str | dict[str, Any] | None:
    """Called for turns this plugin answers; return the reply text to send, or None to keep `answer`.

    A plugin may return a dict: `{"text": ..., "extras": {...}}`, plus any reply key a default plugin
    registers (the recommender's `items`). Extras are shown with the reply, logged with the turn
    (`turns.extras`) and returned in `Reply.extras[plugin]`.

    `text` is the person's message, `label` and `confidence` the plugin's decision, `hits` the
    retrieved corpus entries (id, score, text, answer, label), `fallback_reason` why the agent would
    not guess (or None), `answer` the reply the agent would send without this hook, `embedding` the
    message's vector from the shared pass, `user` who wrote it, `store` the database (`store.insert`,
    `store.query`) and `extras` what other plugins added to the reply so far.
    """


@hookspec
def observe_turn(plugin: str, text: str, reply: Any, annotation: dict[str, Any] | None, embedding: Any,
                 user: str, conversation_id: str, store: Any) -> dict[str, Any] | None:
    """Called for every turn, whichever plugin answered; return a dict to attach to the reply, or None.

    `reply` is the `agent.reply.agent.Reply` (read it, do not change it); `annotation` is this plugin's own
    label and confidence for the turn when it is an observer with labels, else None. What the hook
    returns is stored with the turn under the plugin's name (`Reply.annotations[plugin]`).
    """


@hookspec
def describe_turn(turn: dict[str, Any], store: Any) -> dict[str, Any] | None:
    """Keys to add to a logged turn read back (`agent logs export`, the logs browser): a kind's own rows about it."""


@hookspec(firstresult=True)
def format_extras(plugin: str, extras: dict[str, Any]) -> list[str] | None:
    """Lines that show a plugin's reply extras (plain text); None leaves them to the default `key: value` lines."""


def hook_names() -> list[str]:
    """Every hook a plugin may implement, from pluggy's own list of the specs above."""
    pm = pluggy.PluginManager(PROJECT)
    import sys

    pm.add_hookspecs(sys.modules[__name__])
    return sorted(name for name in vars(pm.hook) if not name.startswith("_"))
