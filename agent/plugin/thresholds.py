"""A threshold a person accepted from a fine-tune's suggestion, kept in the home beside the plugin's versions.

Each fine-tune report suggests a `min_confidence`: the confidence below which answers were wrong as often
as right on the held-out rows. `agent finetune NAME --accept-threshold` (or `/threshold accept` in the chat
app) stores the current version's suggestion in HOME/models/NAME/thresholds.json; it then overrides the
manifest's `min_confidence` (plugin folders are never written to). `--reject-threshold` goes back to the
manifest's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import InputError
from agent.models.retrieval import atomic_write

if TYPE_CHECKING:
    from agent.models.versions import Versions
    from agent.plugin.manifest import Thresholds

FILE = "thresholds.json"


def read(root: Path) -> dict[str, Any] | None:
    """The accepted thresholds of a plugin's model folder, or None (also when the file is unreadable)."""
    try:
        data = json.loads((Path(root) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("min_confidence") if isinstance(data, dict) else None
    return data if isinstance(value, (int, float)) and 0.0 <= value <= 1.0 else None


def stamp(root: Path) -> int | None:
    """A cheap change marker of the accepted thresholds (for a running agent)."""
    try:
        return (Path(root) / FILE).stat().st_mtime_ns
    except OSError:
        return None


def apply(thresholds: "Thresholds", root: Path) -> "Thresholds":
    """The manifest's thresholds with an accepted min_confidence in place of its own."""
    data = read(root)
    return replace(thresholds, min_confidence=float(data["min_confidence"])) if data else thresholds


def accept(versions: "Versions", manifest_value: float) -> dict[str, Any]:
    """Store the current version's suggested min_confidence; what was stored."""
    from agent.store import now

    current = versions.current()
    if current is None:
        raise InputError(f"{versions.root.name} has no fine-tuned version yet, so no suggested threshold; "
                         f"run agent finetune {versions.root.name} first")
    try:
        report = json.loads((versions.path(current) / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{versions.path(current) / 'report.json'}: cannot read the suggestion ({exc}); "
                         "fine-tune again") from exc
    value = (report.get("evaluation") or {}).get("suggested_min_confidence")
    if not isinstance(value, (int, float)):
        raise InputError(f"{current} of {versions.root.name} suggests no threshold (too few held-out rows); "
                         "keep the manifest's")
    data = {"min_confidence": float(value), "version": current, "accepted_at": now(), "manifest": manifest_value}
    atomic_write(versions.root / FILE, json.dumps(data, indent=2).encode())
    return data


def reject(versions: "Versions") -> bool:
    """Go back to the manifest's thresholds; whether an accepted one was removed."""
    try:
        (versions.root / FILE).unlink()
    except FileNotFoundError:
        return False
    return True
