"""Routing: a forced plugin, or the responder whose examples the message is nearest to."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from agent.plugin.loaded import PluginRuntime

TEMPERATURE = 0.05  # cosine gaps of ~0.05 between plugins already mean a clear preference


@dataclass
class Route:
    """Which plugin takes the turn, how sure the router is, and every responder's nearest-example score."""

    plugin: str
    confidence: float
    similarity: float
    scores: dict[str, float] = field(default_factory=dict)
    forced: bool = False


def route(vector: "np.ndarray", runtimes: dict[str, "PluginRuntime"], forced: str | None = None) -> Route:
    """Score every responder by its nearest example; confidence is a softmax over those scores."""
    return route_many(vector.reshape(1, -1), runtimes, [forced])[0]


def route_many(vectors: "np.ndarray", runtimes: dict[str, "PluginRuntime"], forced: list[str | None]) -> list[Route]:
    """Route each row of `vectors` (one nearest-example search per plugin for the whole batch)."""
    if not runtimes:
        raise InputError("no responder plugin is loaded; run `agent plugins` to see why")
    for name in forced:
        if name is not None and name not in runtimes:
            raise InputError(f"no responder plugin named '{name}'; choose one of {', '.join(sorted(runtimes))} (see `agent plugins`)")
    similarity = {name: rt.similarity(vectors) for name, rt in runtimes.items()}
    return [_choose({name: float(s[i]) for name, s in similarity.items()}, f) for i, f in enumerate(forced)]


def _choose(scores: dict[str, float], forced: str | None) -> Route:
    """The forced plugin or the best-scoring one, with a softmax confidence."""
    chosen = forced or max(scores, key=scores.__getitem__)
    top = max(scores.values())
    weights = {name: math.exp((s - top) / TEMPERATURE) for name, s in scores.items()}
    confidence = weights[chosen] / sum(weights.values())
    return Route(chosen, round(confidence, 4), scores[chosen], scores, forced is not None)


def parse_use(text: str) -> tuple[str | None, str]:
    """Split a leading '/use NAME' off a message: ('NAME', rest) or (None, text)."""
    if text != "/use" and not text.startswith("/use "):
        return None, text
    parts = text.split(maxsplit=2)
    if len(parts) < 2 or parts[0] != "/use":
        raise InputError("usage: /use NAME [message]; `agent plugins` lists the names")
    return parts[1], parts[2] if len(parts) > 2 else ""
