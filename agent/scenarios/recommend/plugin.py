"""The recommender kind, a default plugin: a plugin with a [recommend] table answers with items.

It contributes the [recommend] manifest table, its tables and migrations, the `items` reply key and
how items are shown, `agent feedback --like/--dislike/--click`, the chat app's `/like`, `/dislike`,
`/reject` and `/click`, and the interest-model fine-tuner. The core knows none of this.
"""

from __future__ import annotations

import math
from typing import Any

from agent.plugin.hookspecs import hookimpl
from agent.scenarios.recommend import events

TABLE = "recommend"


@hookimpl
def register_tables(register: Any) -> None:
    """[recommend]: items, interactions, the scoring formula's weights."""
    from agent.scenarios.recommend.config import parse_recommend

    register(TABLE, lambda table, manifest: parse_recommend(table))


@hookimpl
def register_migrations(register: Any) -> None:
    """Item feedback, user ids on it, items moved from the old turns column into the extras, an index for requests."""
    register(events.NAMESPACE, events.m008_items, legacy="m008_items")
    register(events.NAMESPACE, events.m009_item_users)
    register(events.NAMESPACE, events.m010_items_in_extras)
    register(events.NAMESPACE, events.m011_user_requests_index)


@hookimpl
def register_reply_keys(register: Any) -> None:
    """A build_reply hook of any plugin may return `items` to recommend."""
    register("items", check_items)


@hookimpl
def register_feedback(register: Any) -> None:
    """`agent feedback TURN --like ITEM` (and --dislike, --click)."""
    for kind, help_text in (("like", "Like an item the turn recommended."), ("dislike", "Reject an item the turn recommended."),
                            ("click", "Record a click on an item the turn recommended.")):
        register(kind, help_text, _feedback(kind))


def _feedback(kind: str) -> Any:
    """The handler of one feedback option."""

    def store(agent: Any, turn_id: int, item: str) -> str:
        events.item_feedback(agent, turn_id, item, kind)
        return f"stored {kind} of item {item} for turn {turn_id}"

    return store


@hookimpl
def register_chat_commands(register: Any) -> None:
    """/like N, /dislike N (/reject N), /click N in the chat app."""
    from agent.scenarios.recommend import chat

    for word, kind in (("/like", "like"), ("/dislike", "dislike"), ("/reject", "dislike"), ("/click", "click")):
        register(word, f"{kind} item N (or its id) of the last reply", chat.item_command(kind))


@hookimpl
def register_finetuners(register: Any) -> None:
    """`agent finetune` on a recommending plugin learns its interest model."""
    from agent.scenarios.recommend.tune import finetune

    register(TABLE, finetune, folder="interest")


@hookimpl
def open_plugin(manifest: Any, runtime: Any, encoder: Any, notify: Any) -> Any:
    """Items, their index and the interest model of a plugin with [recommend]."""
    if manifest.tables.get(TABLE) is None:
        return None
    from agent.models.versions import versions_for
    from agent.scenarios.recommend.model import INTEREST_DIR, Recommender

    rec = Recommender(manifest, runtime.index_dir, encoder, notify, versions_for(runtime.models_root, manifest, INTEREST_DIR))
    return _Swappable(rec, manifest.name, notify)


class _Swappable:
    """The recommender of one plugin; `refresh()` picks up a promoted interest model."""

    def __init__(self, rec: Any, name: str, notify: Any) -> None:
        self.rec, self.name, self.notify = rec, name, notify

    def refresh(self) -> bool:
        """True when the interest model changed (and says so)."""
        if not self.rec.refresh():
            return False
        if self.notify:
            interest = self.rec.interest
            self.notify(f"{self.name}: now using interest model {interest.version if interest else 'none'}")
        return True


@hookimpl
def respond(turn: Any) -> dict[str, Any] | None:
    """Items instead of an FAQ answer; a message close to an item counts as in scope."""
    state = turn.state.get(__name__)
    if state is None:
        return None
    rec = state.rec
    out_of_scope = (turn.fallback_reason or "").startswith("out_of_scope")
    if out_of_scope and float((rec.vectors @ turn.embedding).max()) < turn.manifest.thresholds.min_similarity:
        return None
    from agent.scenarios.recommend.dialogue import respond as recommend

    label = turn.label if turn.fallback_reason is None else "recommend"  # unsure: take it as a request
    text, items = recommend(turn.store, rec, turn.plugin, turn.text, turn.embedding, turn.conversation_id, turn.user,
                            label, record=turn.log)
    return {"text": text, "fallback_reason": None, "extras": {"items": items} if items else {}}


@hookimpl
def describe_turn(turn: dict[str, Any], store: Any) -> dict[str, Any] | None:
    """The likes, dislikes and clicks given on the items a turn showed."""
    if not events.shown_items(turn):
        return None
    return {"item_feedback": events.ItemStore(store).turn_feedback(turn["id"])}


@hookimpl
def format_extras(extras: dict[str, Any]) -> list[Any] | None:
    """Recommended items as numbered lines with their reasons (rich markup)."""
    items = extras.get("items")
    if not isinstance(items, list):
        return None
    from rich.markup import escape

    lines: list[Any] = []
    for n, item in enumerate(items, 1):
        reason = f" — {escape(item['reason'])}" if item.get("reason") else ""
        lines.append(("item", f"{n}. [b]{escape(item['title'])}[/] [dim]({escape(item['id'])})[/]{reason}"))
    rest = {k: v for k, v in extras.items() if k != "items"}
    return lines + [f"{k}: {v}" for k, v in rest.items()]


def check_items(raw: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Items from a build_reply result: dicts with an id (title, reason, score optional); the problems found."""
    if not isinstance(raw, list):
        return [], [f"'items' must be a list of dicts, not {type(raw).__name__}; no items shown"]
    items, bad = [], []
    for n, item in enumerate(raw):
        if isinstance(item, dict) and str(item.get("id", "")).strip():
            items.append({"id": str(item["id"]).strip(), "title": str(item.get("title") or item["id"]),
                          "reason": str(item.get("reason") or ""), "score": _number(item.get("score"))})
        else:
            bad.append(n)
    return items, [f"items {bad} have no 'id' and were dropped"] if bad else []


def _number(value: Any) -> float | None:
    """A finite score as a rounded float, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 4) if math.isfinite(number) else None
