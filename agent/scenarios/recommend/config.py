"""The `[recommend]` table of plugin.toml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RECOMMEND_KEYS = {"items", "interactions", "top_k", "w_request", "w_collab", "w_profile", "w_interest", "w_popularity", "w_together",
                  "history", "interest_epochs"}


@dataclass
class RecommendConfig:
    """Where the items are, how many to show, and the weights of the scoring formula (see docs/recommender.md)."""

    items: str = "items.csv"
    interactions: str | None = None  # past likes / dislikes / clicks (user_id,item_id,kind[,timestamp]) to learn from
    top_k: int = 3
    w_request: float = 1.0  # similarity to what the person asked for (or to the item they named)
    w_collab: float = 1.0  # what people who liked the same items liked (EASE), once `agent finetune` has learned it
    w_profile: float = 0.3  # similarity to the items they liked, less their dislikes
    w_interest: float = 0.3  # the fine-tuned interest model: their history text against the item text
    w_popularity: float = 0.1  # likes and clicks of everyone, log-scaled to 0..1
    w_together: float = 0.2  # how often people liked an item together with the user's likes, scaled to 0..1
    history: int = 10  # liked or clicked items, newest first, that make up the history text
    interest_epochs: float = 0.0  # train the interest encoder in `agent finetune` for this many epochs (0: only with --epochs)

    def weights(self) -> dict[str, float]:
        """The formula's weights by name."""
        return {"request": self.w_request, "collab": self.w_collab, "profile": self.w_profile, "interest": self.w_interest,
                "popularity": self.w_popularity, "together": self.w_together}


def parse_recommend(r: Any) -> RecommendConfig | None:
    """[recommend]: each key checked for type and range."""
    t = r.sub("recommend", RECOMMEND_KEYS)
    if t is None:
        return None
    c = RecommendConfig()
    c.items = t.get("items", str, c.items, "a CSV file in the plugin folder")
    c.interactions = t.get("interactions", str, None, "a CSV file in the plugin folder")
    for key, high in (("top_k", 20), ("history", 100)):
        value = t.get(key, int, getattr(c, key), f"a whole number from 1 to {high}")
        if not 1 <= value <= high:
            raise t.fail(key, f"a whole number from 1 to {high}", value)
        setattr(c, key, value)
    c.interest_epochs = t.get("interest_epochs", float, 0.0, "a number of epochs from 0 to 20 (0: no interest encoder)")
    if not 0 <= c.interest_epochs <= 20:
        raise t.fail("interest_epochs", "a number of epochs from 0 to 20 (0: no interest encoder)", c.interest_epochs)
    for key in ("w_request", "w_collab", "w_profile", "w_interest", "w_popularity", "w_together"):
        value = t.get(key, float, getattr(c, key), "a number from 0 to 10")
        if not 0.0 <= value <= 10.0:
            raise t.fail(key, "a number from 0 to 10", value)
        setattr(c, key, value)
    return c
