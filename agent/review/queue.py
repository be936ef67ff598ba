"""The review queue: logged turns ranked by what a person's decision on them would teach.

A turn is worth a label when the agent was unsure of it (it fell back, or its two likeliest labels came
close) and when many similar messages are waiting too (a decision on one tells the fine-tune about all of
them). The queue shows one turn per group of similar waiting messages, with the group's size. A person
confirms the guess, corrects it, or marks the turn out of scope (it then trains no label).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from agent.reply.agent import Agent

CLOSE = 0.2  # a gap between the two likeliest labels below which an answer was a close call
SIMILAR = 0.75  # cosine similarity at which two waiting messages count as the same question
POOL = 5000  # newest undecided turns considered
DECISIONS = ("confirm", "correct", "out_of_scope")
UNDECIDED = "NOT EXISTS (SELECT 1 FROM feedback f WHERE f.turn_id = t.id AND f.kind IN ('label', 'good', 'out_of_scope'))"


@dataclass
class Item:
    """One turn in the queue, with why it is there."""

    turn_id: int
    plugin: str | None
    text: str
    label: str | None  # the agent's guess
    second: str | None  # the next likeliest label
    confidence: float
    margin: float
    fallback_reason: str | None
    similar: int  # waiting messages like it, itself included
    score: float
    reason: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def candidates(agent: "Agent", plugin: str | None = None, pool: int = POOL) -> list[dict[str, Any]]:
    """The newest turns nobody has decided on (no feedback), of responder plugins, with their top two labels."""
    responders = set(agent.responder_names())
    sql = ("SELECT id, text, plugin, label, confidence, fallback_reason, created_at FROM turns t WHERE picked_from IS NULL "
           f"AND plugin IS NOT NULL AND {UNDECIDED}")  # a "bad" rating alone decides nothing: still waiting
    args: list[Any] = []
    if plugin is not None:
        sql += " AND plugin = ?"
        args.append(plugin)
    rows = [r for r in agent.store.query(sql + " ORDER BY id DESC LIMIT ?", [*args, int(pool)])
            if r["plugin"] in responders and (r["text"] or "").strip()]
    top = top_two(agent, [r["id"] for r in rows])
    for r in rows:
        r["predictions"] = top.get(r["id"], [])
    return rows


def top_two(agent: "Agent", ids: list[int]) -> dict[int, list[tuple[str, float]]]:
    """Each turn's two likeliest labels with their probabilities."""
    out: dict[int, list[tuple[str, float]]] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        for p in agent.store.query(f"SELECT turn_id, label, probability FROM predictions WHERE turn_id IN ({marks}) "
                                   "AND rank < 2 ORDER BY turn_id, rank", chunk):
            out.setdefault(p["turn_id"], []).append((p["label"], float(p["probability"])))
    return out


def build(agent: "Agent", plugin: str | None = None, limit: int = 20, pool: int = POOL) -> list[Item]:
    """The queue: the most useful undecided turns first, one per group of similar messages."""
    import numpy as np

    rows = candidates(agent, plugin, pool)
    if not rows:
        return []
    texts = list(dict.fromkeys(r["text"] for r in rows))
    vectors = agent.encoder.encode(texts)
    sims = _neighbours(_rows_of(rows, texts, vectors))
    similar = np.array([len(s) for s in sims])
    scored = sorted(((_uncertainty(r) * (1 + math.log(similar[i])), i) for i, r in enumerate(rows)), reverse=True)
    covered: set[int] = set()
    items: list[Item] = []
    for score, i in scored:
        if i in covered or score <= 0:
            continue
        covered.update(sims[i])
        items.append(_item(rows[i], int(similar[i]), round(float(score), 4)))
        if len(items) >= limit:
            break
    return items


def _rows_of(rows: list[dict[str, Any]], texts: list[str], vectors: "np.ndarray") -> "np.ndarray":
    """Each row's vector (rows repeat texts)."""
    import numpy as np

    where = {t: i for i, t in enumerate(texts)}
    return np.stack([vectors[where[r["text"]]] for r in rows])


def _neighbours(vectors: "np.ndarray", k: int = 100) -> list[set[int]]:
    """For each row, the rows (itself included) at least SIMILAR to it, among its k nearest."""
    import faiss
    import numpy as np

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    scores, ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), min(k, len(vectors)))
    return [{int(j) for s, j in zip(srow, irow) if j >= 0 and s >= SIMILAR} | {n} for n, (srow, irow) in enumerate(zip(scores, ids))]


def _uncertainty(row: dict[str, Any]) -> float:
    """How unsure the agent was: 1 for a fallback, else one minus the gap between its two likeliest labels."""
    if row["fallback_reason"]:
        return 1.0
    top = row["predictions"]
    margin = top[0][1] - (top[1][1] if len(top) > 1 else 0.0) if top else 0.0
    return max(0.0, 1.0 - margin)


def _item(row: dict[str, Any], similar: int, score: float) -> Item:
    """A queue item with its reason in words."""
    top = row["predictions"]
    margin = round(top[0][1] - (top[1][1] if len(top) > 1 else 0.0), 4) if top else 0.0
    second = top[1][0] if len(top) > 1 else None
    if row["fallback_reason"]:
        why = f"fell back ({row['fallback_reason']})"
    elif second and margin < CLOSE:
        why = f"close call: {row['label']} only {margin:.2f} ahead of {second}"
    else:
        why = f"answered {row['label']} at {float(row['confidence'] or 0.0):.2f}"
    if similar > 1:
        why += f"; {similar - 1} similar message{'s' if similar > 2 else ''} waiting"
    return Item(row["id"], row["plugin"], row["text"], row["label"], second, round(float(row["confidence"] or 0.0), 4),
                margin, row["fallback_reason"], similar, score, why, row["created_at"])


def decide(agent: "Agent", turn_id: int, decision: str, label: str | None = None) -> int:
    """Store a decision on a turn: confirm its guess, correct it to `label`, or mark it out of scope."""
    from agent.errors import InputError

    if decision not in DECISIONS:
        raise InputError(f"'{decision}' is not a review decision; use one of: {', '.join(DECISIONS)}")
    if decision == "out_of_scope":
        return agent.feedback(turn_id, rating="out_of_scope")
    if decision == "correct":
        if not label:
            raise InputError("a correction needs the right label")
        return agent.feedback(turn_id, label=label)
    turn = agent.store.turn(turn_id)
    if turn is None or not turn.get("label"):
        raise InputError(f"turn {turn_id} has no guess to confirm; correct it with a label instead")
    return agent.feedback(turn_id, label=turn["label"])  # a confirmed fallback teaches its label too
