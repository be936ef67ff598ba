"""Plugin discovery: every folder with a plugin.toml under the plugin paths; broken ones are reported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.errors import PluginError
from agent.manifest import Manifest, load_manifest
from agent.settings import Settings


@dataclass
class Skipped:
    """A plugin folder that did not load, and why."""

    path: Path
    reason: str
    name: str | None = None


def candidate_folders(settings: Settings) -> list[Path]:
    """Plugin folders: direct children with a plugin.toml, in search-path order."""
    found = []
    for root in settings.search_paths():
        if (root / "plugin.toml").is_file():
            found.append(root)
            continue
        found += sorted(p for p in root.iterdir() if p.is_dir() and (p / "plugin.toml").is_file())
    return found


def discover(settings: Settings) -> tuple[list[Manifest], list[Skipped]]:
    """Load every manifest; a broken one is skipped with its reason, a duplicate name too."""
    loaded: dict[str, Manifest] = {}
    skipped: list[Skipped] = []
    for folder in candidate_folders(settings):
        try:
            manifest = load_manifest(folder / "plugin.toml")
        except PluginError as exc:
            skipped.append(Skipped(folder, str(exc)))
            continue
        if manifest.name in loaded:
            skipped.append(Skipped(folder, f"name '{manifest.name}' is already taken by {loaded[manifest.name].folder}"))
            continue
        loaded[manifest.name] = manifest
    return list(loaded.values()), skipped
