"""The strong simple baselines of a recommender, on a bench's own split: popularity, item-kNN and EASE.

EASE (Steck 2019): B = I - P / diag(P), P = (XᵀX + λI)⁻¹, diagonal zero; scores = x_user · B.
Item-kNN: cosine similarity of the items' sets of likers, each item scored by the sum of its similarity to
the user's likes, over the k nearest neighbours of each liked item. Both learn from likes (ratings >= 4), and
their knob (λ, k) is chosen on a validation split cut from the training ratings exactly as the test split is
cut from all ratings, never on the test users.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any, Callable

LAMBDAS = (20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
NEIGHBOURS = (20, 50, 100, 200, None)  # None: every item

Rating = tuple[str, str, float, int]  # user, item, rating, time


def holdout(train: list[Rating]) -> tuple[list[Rating], dict[str, set[str]]]:
    """A validation split of training ratings: each user's last 20% of likes (users with 5 or more), and
    only what they rated before the first of those."""
    by_user: dict[str, list[Rating]] = defaultdict(list)
    for r in train:
        by_user[r[0]].append(r)
    fit, held = [], {}
    for user, rows in by_user.items():
        rows.sort(key=lambda r: r[3])
        liked = [r for r in rows if r[2] >= 4]
        if len(liked) >= 5:
            last = liked[-math.ceil(0.2 * len(liked)):]
            held[user] = {r[1] for r in last}
            rows = [r for r in rows if r[3] < last[0][3] and r[1] not in held[user]]
        fit += rows
    return fit, held


def likes_matrix(ratings: list[Rating], users: list[str], col: dict[str, int]) -> Any:
    """users × items, 1 where the user liked the item (rating >= 4)."""
    import numpy as np

    row = {u: i for i, u in enumerate(users)}
    x = np.zeros((len(users), len(col)), dtype=np.float32)
    for u, m, r, _ in ratings:
        if r >= 4 and u in row and m in col:
            x[row[u], col[m]] = 1.0
    return x


def ease(x: Any, lam: float) -> Any:
    """EASE's item-item weights."""
    import numpy as np

    g = (x.T @ x).astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = p / -np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def item_knn(x: Any, k: int | None) -> Any:
    """Cosine item-item similarities of the likers, each row keeping its k largest (None: all), diagonal zero."""
    import numpy as np

    norm = np.sqrt(x.sum(0)) + 1e-9
    s = (x.T @ x) / norm[:, None] / norm[None, :]
    np.fill_diagonal(s, 0.0)
    if k is not None and k < s.shape[1]:
        cut = np.partition(s, -k, axis=1)[:, -k][:, None]
        s = np.where(s >= cut, s, 0.0)
    return s.astype(np.float32)


def rank_with(weights: Any, x: Any, users: list[str], seen: dict[str, set[int]], ids: list[str],
              who: list[str], top: Callable[[Any, set[int]], list[int]]) -> dict[str, list[str]]:
    """Each user's top items by x_user · weights, seen items left out."""
    import numpy as np

    row = {u: i for i, u in enumerate(users)}
    out = {}
    for u in who:
        scores = x[row[u]] @ weights if u in row else np.zeros(len(ids), dtype=np.float32)
        out[u] = [ids[i] for i in top(scores, seen.get(u, set()))]
    return out


def tune(name: str, fit: Callable[[Any], Any], knobs: tuple[Any, ...], train: list[Rating], ids: list[str],
         metrics: Callable[..., dict[str, float]], top: Callable[[Any, set[int]], list[int]]) -> tuple[Any, dict[str, Any]]:
    """The knob with the best validation NDCG@10, and what each knob scored there."""
    col = {m: i for i, m in enumerate(ids)}
    fit_rows, held = holdout(train)
    users = sorted({r[0] for r in fit_rows} | set(held))
    x = likes_matrix(fit_rows, users, col)
    seen = _seen(fit_rows, col)
    scores = {}
    for knob in knobs:
        ranked = rank_with(fit(x, knob), x, users, seen, ids, list(held), top)
        scores[str(knob)] = metrics(ranked, held)["ndcg@10"]
    best = max(knobs, key=lambda k: scores[str(k)])
    return best, {"validation_ndcg@10": scores, "chosen": best, "model": name}


def fit_and_rank(fit: Callable[[Any], Any], knob: Any, train: list[Rating], ids: list[str], who: list[str],
                 top: Callable[[Any, set[int]], list[int]]) -> tuple[dict[str, list[str]], Any, float]:
    """Train on all training ratings with the chosen knob; the rankings, the weights and the seconds it took."""
    col = {m: i for i, m in enumerate(ids)}
    users = sorted({r[0] for r in train})
    start = time.perf_counter()
    x = likes_matrix(train, users, col)
    weights = fit(x, knob)
    seconds = time.perf_counter() - start
    return rank_with(weights, x, users, _seen(train, col), ids, who, top), weights, seconds


def _seen(ratings: list[Rating], col: dict[str, int]) -> dict[str, set[int]]:
    """Each user's rated items (any rating), as column numbers."""
    seen: dict[str, set[int]] = defaultdict(set)
    for u, m, _, _ in ratings:
        if m in col:
            seen[u].add(col[m])
    return seen
