"""What the handoff kind does to each turn before anyone answers it: hand the conversation to a person when the
plugin's [handoff] table says so, keep the agent silent while a person has it, and pass on the person's replies."""

from __future__ import annotations

from typing import Any

from agent.scenarios.handoff import inbox
from agent.scenarios.handoff.config import NOTICE, HandoffConfig

KEY = "handoff"  # the reply's extras key


def intercept(turn: Any, config: HandoffConfig | None) -> dict[str, Any] | None:
    """The held reply while a person has the conversation (opening a handoff first when asked for), the person's
    replies the customer has not received yet, or None."""
    if not turn.log or not turn.live:
        return None  # a dry run stores nothing, and a replay has nobody waiting: no handoff either way
    row = inbox.state(turn.store, turn.conversation_id)
    if row is None or row["state"] not in inbox.HELD:
        reason = _trigger(turn, config)
        if reason is None:
            return _replies_only(turn) if row is not None else None
        _open(turn, reason)
    return _hold(turn, config)


def _trigger(turn: Any, config: HandoffConfig | None) -> str | None:
    """Why this turn hands the conversation to a person, or None."""
    if config is None:
        return None
    if turn.fallback_reason is None:
        return f"asked for a person ({turn.label})" if turn.label in config.labels else None
    if not config.after_fallbacks:
        return None
    n = 1 + inbox.fallbacks_before(turn.store, turn.conversation_id, config.after_fallbacks - 1)
    return f"{n} fallbacks in a row" if n >= config.after_fallbacks else None


def _open(turn: Any, reason: str) -> None:
    """Open the handoff and, when this opened it, tell the outlets (webhooks, commands)."""
    from agent.outlets import publish
    from agent.text.guard import redact_for

    opened = inbox.open_handoff(turn.store, turn.conversation_id, turn.plugin, reason)
    if opened is not None:
        text = redact_for(turn.text, turn.manifest.privacy)[0]
        publish(turn.store, "handoff", {"conversation_id": turn.conversation_id, "plugin": turn.plugin, "reason": reason,
                                        "opened_at": opened["opened_at"], "text": text}, turn.plugin)


def _hold(turn: Any, config: HandoffConfig | None) -> dict[str, Any] | None:
    """Log the customer's message for the person; the notice once per handoff, then nothing."""
    from agent.text.guard import redact_for

    told = inbox.customer_message(turn.store, turn.conversation_id, redact_for(turn.text, turn.manifest.privacy)[0])
    if told is None:
        return _replies_only(turn)  # released a moment ago: the agent answers
    row = inbox.state(turn.store, turn.conversation_id) or {}
    extras = {"state": row.get("state"), "reason": row.get("reason"), "messages": _messages(turn)}
    return {"text": (config.notice if config else NOTICE) if told else "", "extras": {KEY: extras}}


def _replies_only(turn: Any) -> dict[str, Any] | None:
    """After a release: the person's replies the customer's channel has not returned yet, shown before the answer."""
    found = _messages(turn)
    return {"extras": {KEY: {"state": "released", "messages": found}}} if found else None


def _messages(turn: Any) -> list[dict[str, Any]]:
    """The person's undelivered replies, as the reply's `messages`."""
    return [{"id": e["id"], "text": e["text"], "author": "person", "at": e["at"]} for e in inbox.undelivered(turn.store, turn.conversation_id)]
