"""What a monitoring observer adds to a chat turn: the topic, and a flag on strongly negative customers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    from agent.plugin.manifest import Manifest


def flag(manifest: "Manifest", note: dict[str, Any]) -> dict[str, Any] | None:
    """A flag for a turn whose label is the watched one with at least `flag_confidence`, else None."""
    config = manifest.tables.get("monitor")
    if config is None or note.get("label") != config.label or note.get("confidence", 0.0) < config.flag_confidence:
        return None
    return {"plugin": manifest.name, "flag": f"strong_{config.label}", "confidence": note["confidence"],
            "offer_human": config.offer_human}


def with_handoff(text: str, handoff: str) -> str:
    """The reply with the hand-off line added, once."""
    return text if not handoff or handoff in text else f"{text} {handoff}"
