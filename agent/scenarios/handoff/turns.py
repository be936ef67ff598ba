"""What the handoff kind does to each turn before anyone answers it: hand the conversation to a person when the
plugin's [handoff] table says so, keep the agent silent while a person has it, and pass on the person's replies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.scenarios.handoff import inbox
from agent.scenarios.handoff.config import NOTICE, HandoffConfig

KEY = "handoff"  # the reply's extras key


@dataclass
class Streaks:
    """A plugin's [handoff] settings and, per conversation, how many turns in a row it fell back."""

    config: HandoffConfig | None
    fallbacks: dict[str, int] = field(default_factory=dict)

    def count(self, conversation: str, fell_back: bool) -> int:
        """The conversation's fallbacks in a row, this turn included."""
        n = self.fallbacks.get(conversation, 0) + 1 if fell_back else 0
        if n:
            self.fallbacks[conversation] = n
        else:
            self.fallbacks.pop(conversation, None)
        return n


def intercept(turn: Any, streaks: Streaks | None) -> dict[str, Any] | None:
    """The held reply while a person has the conversation (opening a handoff first when asked for), the person's
    replies the customer has not received yet, or None."""
    if not turn.log:
        return None  # a dry run stores nothing, handoffs included
    row = inbox.state(turn.store, turn.conversation_id)
    if row is None or row["state"] not in inbox.HELD:
        reason = _trigger(turn, streaks)
        if reason is None:
            return _replies_only(turn) if row is not None else None
        _open(turn, reason)
    return _hold(turn, streaks)


def _trigger(turn: Any, streaks: Streaks | None) -> str | None:
    """Why this turn hands the conversation to a person, or None."""
    config = streaks.config if streaks is not None else None
    if config is None:
        return None
    if turn.fallback_reason is None and turn.label in config.labels:
        streaks.count(turn.conversation_id, False)  # type: ignore[union-attr]
        return f"asked for a person ({turn.label})"
    n = streaks.count(turn.conversation_id, turn.fallback_reason is not None)  # type: ignore[union-attr]
    if config.after_fallbacks and n >= config.after_fallbacks:
        streaks.fallbacks.pop(turn.conversation_id, None)  # type: ignore[union-attr]
        return f"{n} fallbacks in a row"
    return None


def _open(turn: Any, reason: str) -> None:
    """Open the handoff and, when this opened it, tell the outlets (webhooks, commands)."""
    from agent.outlets import publish
    from agent.text.guard import redact_for

    opened = inbox.open_handoff(turn.store, turn.conversation_id, turn.plugin, reason)
    if opened is not None:
        text = redact_for(turn.text, turn.manifest.privacy)[0]
        publish(turn.store, "handoff", {"conversation_id": turn.conversation_id, "plugin": turn.plugin, "reason": reason,
                                        "opened_at": opened["opened_at"], "text": text}, turn.plugin)


def _hold(turn: Any, streaks: Streaks | None) -> dict[str, Any]:
    """Log the customer's message for the person; the notice once per handoff, then nothing."""
    from agent.text.guard import redact_for

    _, told = inbox.customer_message(turn.store, turn.conversation_id, redact_for(turn.text, turn.manifest.privacy)[0])
    config = streaks.config if streaks is not None else None
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
