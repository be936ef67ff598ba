"""The collaborative part of the recommender: EASE (Steck 2019), a closed-form item-item linear model learned from
who liked and clicked what. B = I - P / diag(P) with P = (XᵀX + λI)⁻¹ and a zero diagonal; a user's score for
each item is the sum of B's rows of the items they liked. λ is chosen on held-out likes by `agent finetune`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    import numpy as np

LAMBDAS = (20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
CLICKS = (0.0, 0.5, 1.0)  # what a click counts for against a like
MAX_ITEMS = 20_000  # one dense items x items inverse: beyond this, the formula goes on without the collaborative term
POSITIVE = ("like", "click")


def user_item_matrix(events: Iterable[dict[str, Any]], by_id: dict[str, int], click: float = 1.0) -> "np.ndarray":
    """users x items: 1 where a user's latest event on an item is a like, `click` where it is a click (a later
    dislike undoes either)."""
    import numpy as np

    latest: dict[tuple[str, int], str] = {}
    for e in events:
        if e["item_id"] in by_id:
            latest[(str(e["user_id"]), by_id[e["item_id"]])] = e["kind"]
    users = {u: n for n, u in enumerate(dict.fromkeys(u for u, _ in latest))}
    x = np.zeros((max(len(users), 1), len(by_id)), dtype=np.float32)
    for (user, col), kind in latest.items():
        if kind in POSITIVE:
            x[users[user], col] = 1.0 if kind == "like" else click
    return x


def fit(x: "np.ndarray", lam: float) -> "np.ndarray":
    """EASE's item-item weights for a users x items matrix."""
    import numpy as np

    g = (x.T @ x).astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = p / -np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def scores(weights: "np.ndarray", liked: list[int]) -> "np.ndarray":
    """Each item's collaborative score for someone who liked these rows, scaled so the best item has 1."""
    import numpy as np

    if not liked:
        return np.zeros(weights.shape[1], dtype=np.float32)
    s = weights[liked].sum(0)
    top = float(s.max())
    return s / top if top > 0 else s
