"""Nearest labelled examples as a second view of a shared head's embedding, for no extra pass.

A shared fine-tune leaves embeddings in which a plugin's labels form tight groups. The k most similar
labelled rows vote for their labels (weights exp(similarity / tau)); the votes are combined with the
head's probabilities by a weighted geometric mean. k, tau and the weight are chosen on the plugin's
held-out rows (weight 1.0, the head alone, when voting does not help or there are too few rows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import numpy as np

KS, TAUS, WEIGHTS = (10, 20), (0.05, 0.1), (0.5, 0.6, 0.7, 0.8, 0.9)
MIN_HELD = 200  # with fewer held-out rows the choice among settings flatters itself: the head alone
CHUNK = 256  # query rows per similarity block: the block, not the whole query × train matrix, is in memory


def nearest(queries: "np.ndarray", rows: "np.ndarray", k: int) -> tuple["np.ndarray", "np.ndarray"]:
    """The k rows most similar to each query, most similar first: (similarities, row numbers), both queries × k.
    Computed a block of queries at a time (150 labels, 13,000 rows: 1,500 queries cost 530 MB at once)."""
    import numpy as np

    k = min(k, rows.shape[0])
    scores, top = np.empty((len(queries), k), dtype=np.float32), np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), CHUNK):
        sims = queries[start : start + CHUNK] @ rows.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-near, axis=1, kind="stable")
        scores[start : start + CHUNK] = np.take_along_axis(near, order, axis=1)
        top[start : start + CHUNK] = np.take_along_axis(part, order, axis=1)
    return scores, top


def votes(scores: "np.ndarray", labels: "np.ndarray", n_labels: int, tau: float) -> "np.ndarray":
    """Label distribution per query from its neighbours' similarities (rows) and label numbers (-1: none)."""
    import numpy as np

    out = np.full((scores.shape[0], n_labels), 1e-6, dtype=np.float64)
    weight = np.exp((scores - 1.0) / tau)  # shifted by the largest possible cosine: no overflow
    valid = labels >= 0
    rows = np.repeat(np.arange(scores.shape[0]), scores.shape[1]).reshape(scores.shape)
    np.add.at(out, (rows[valid], labels[valid]), weight[valid])
    return out / out.sum(axis=1, keepdims=True)


def blend(head: "np.ndarray", voted: "np.ndarray", weight: float) -> "np.ndarray":
    """Weighted geometric mean of the head's probabilities and the votes, renormalised per row."""
    from agent.models.finetuned import combine

    return combine(head, voted.astype(head.dtype), weight)


def choose(head: "np.ndarray", held: "np.ndarray", train: "np.ndarray", train_labels: Sequence[int],
           gold: Sequence[int]) -> dict[str, Any]:
    """The k, tau and weight that score best on the held-out rows (ties go to the larger weight)."""
    import numpy as np

    if len(gold) < MIN_HELD or len(train_labels) < 2:
        return {"weight": 1.0, "reason": f"{len(gold)} held-out rows: too few to choose by"}
    gold_arr, labels = np.asarray(gold), np.asarray(train_labels)
    base = float((head.argmax(1) == gold_arr).mean())
    best = {"weight": 1.0, "accuracy": round(base, 4)}
    near, rows = nearest(held, train, max(KS))
    for k in KS:
        k = min(k, len(labels))
        scores, top = near[:, :k], rows[:, :k]
        for tau in TAUS:
            voted = votes(scores, labels[top], head.shape[1], tau)
            for w in WEIGHTS:
                acc = float((blend(head, voted, w).argmax(1) == gold_arr).mean())
                if acc > best["accuracy"] + 1e-9 or (abs(acc - best["accuracy"]) < 1e-9 and w > best["weight"]):
                    best = {"weight": w, "k": k, "tau": tau, "accuracy": round(acc, 4)}
    best["head_accuracy"] = round(base, 4)
    return best
