"""Replay engine: cut the stream of turns into batches, answer each batch with one call, keep state.

`replay_batch` is the per-batch function both engines run (in this process, or on Ray workers).
A batch carries the plugin each of its conversations was switched to by an earlier '/use', so
batches are independent and a conversation may span several of them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from agent.errors import AgentError
from agent.replay.inputs import ReplayTurn
from agent.reply.router import parse_use
from agent.text import guard

if TYPE_CHECKING:
    from agent.reply.agent import Agent

DEFAULT_BATCH = 1024  # large enough that sorting by length keeps padding low


@dataclass
class Batch:
    """Turns to answer together, in input order, and the '/use' state their conversations start with."""

    number: int
    turns: list[ReplayTurn]
    state: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for Ray workers)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Batch":
        """Inverse of to_dict."""
        return cls(data["number"], [ReplayTurn(**t) for t in data["turns"]], data.get("state", {}))


def batches(turns: Iterable[ReplayTurn], size: int, responders: list[str]) -> Iterator[Batch]:
    """Group turns into batches of `size`, tracking which conversations a '/use NAME' switched."""
    forced: dict[str, str] = {}
    chunk: list[ReplayTurn] = []
    number = 0

    def cut() -> Batch:
        nonlocal number
        number += 1
        state = {t.conversation: forced[t.conversation] for t in chunk if t.conversation in forced}
        for t in chunk:
            name = _use(t.text)
            if name in responders:
                forced[t.conversation] = name  # type: ignore[index]
        return Batch(number, list(chunk), state)

    for turn in turns:
        chunk.append(turn)
        if len(chunk) >= size:
            yield cut()
            chunk.clear()
    if chunk:
        yield cut()


def _use(text: str) -> str | None:
    """The plugin a '/use NAME' message switches to, if it is one."""
    try:
        return parse_use(text.strip())[0]
    except AgentError:
        return None


def replay_batch(agent: "Agent", batch: Batch, prefix: str, log: bool) -> list[dict[str, Any]]:
    """Answer a batch's turns in order and describe each outcome (the same function on every engine)."""
    from agent.reply.agent import Message

    for conversation, plugin in batch.state.items():
        agent.force(prefix + conversation, plugin, close=False)
    messages = [Message(t.text, prefix + t.conversation, t.forced) for t in batch.turns]
    start = time.perf_counter()
    try:
        replies: list[Any] = agent.replies(messages, log=log, picks=False)
    except AgentError:
        raise  # no plugin, a locked database: every turn would fail the same way
    except Exception:  # one turn broke the batch: answer one by one so only that turn fails
        replies = [_one(agent, m, log) for m in messages]
    batch_ms = (time.perf_counter() - start) * 1000.0
    return [outcome(t, r, batch_ms) for t, r in zip(batch.turns, replies)]


def _one(agent: "Agent", message: Any, log: bool) -> Any:
    """One message's reply, or its error as an AgentError."""
    try:
        return agent.replies([message], log=log, picks=False)[0]
    except AgentError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001  (reported on the turn, the replay goes on)
        return AgentError(f"{type(exc).__name__}: {exc}")


def outcome(turn: ReplayTurn, reply: Any, batch_ms: float) -> dict[str, Any]:
    """What a replayed turn did: JSON-ready, its texts (message, reply, the logged turn it replays) redacted."""
    base = {"line": turn.line, "conversation": turn.conversation, "text": guard.redact(turn.text)[0],
            "expect": turn.expect, "logged": guard.redact_tree(turn.logged), "batch_ms": round(batch_ms, 3)}
    if isinstance(reply, AgentError):
        return {**base, "error": str(reply)}
    return {**base, "error": None, "plugin": reply.plugin, "label": reply.label, "confidence": reply.confidence,
            "answer_id": reply.answer_id, "reply": guard.redact(reply.text)[0], "fallback_reason": reply.fallback_reason,
            "latency_ms": reply.timings_ms.get("total"), "turn_id": reply.turn_id}
