"""Routing: a forced plugin, or the responder whose examples the message is nearest to."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from agent.runtime import PluginRuntime

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
    if not runtimes:
        raise InputError("no responder plugin is loaded; run `agent plugins` to see why")
    if forced is not None and forced not in runtimes:
        raise InputError(f"no responder plugin named '{forced}'; choose one of {sorted(runtimes)} (see `agent plugins`)")
    query = vector.reshape(1, -1)
    scores = {name: float(rt.similarity(query)[0]) for name, rt in runtimes.items()}
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
