"""Plugin discovery: folders with a plugin.toml under the plugin paths, then installed packages that
declare the entry-point group `agent.plugins`; broken ones are reported, the others still load."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from agent.errors import PluginError
from agent.plugin.hookspecs import KIND_HOOKS, PROJECT
from agent.plugin.manager import register
from agent.plugin.manifest import Manifest, load_manifest
from agent.settings import Settings

ENTRY_POINT_GROUP = "agent.plugins"
LOAD_ENV = "AGENT_LOAD_PLUGINS"


@dataclass
class Skipped:
    """A plugin folder that did not load, and why."""

    path: Path
    reason: str
    name: str | None = None
    clash: bool = False  # another plugin with the same name is used instead: worth a warning everywhere


def candidate_folders(settings: Settings) -> list[Path]:
    """Plugin folders: direct children with a plugin.toml, in search-path order."""
    found = []
    for root in settings.search_paths():
        if (root / "plugin.toml").is_file():
            found.append(root)
            continue
        found += sorted(p for p in root.iterdir() if p.is_dir() and (p / "plugin.toml").is_file())
    return found


def allowed_names() -> set[str] | None:
    """Names listed in AGENT_LOAD_PLUGINS (comma-separated), or None when it is unset or empty."""
    raw = os.environ.get(LOAD_ENV, "")
    names = {n.strip() for n in raw.split(",") if n.strip()}
    return names or None


def discover(settings: Settings) -> tuple[list[Manifest], list[Skipped]]:
    """Load every manifest, folders first; a broken one is skipped with its reason, a duplicate name too."""
    loaded: dict[str, Manifest] = {}
    skipped: list[Skipped] = []
    allowed = allowed_names()
    for folder in candidate_folders(settings):
        try:
            manifest = _folder_manifest(folder, allowed)
        except PluginError as exc:
            skipped.append(Skipped(folder, str(exc)))
            continue
        manifest.source = f"folder {folder}"
        _add(manifest, loaded, skipped, allowed)
    for manifest in _installed(skipped, allowed):
        _add(manifest, loaded, skipped, allowed)
    return list(loaded.values()), skipped


def _folder_manifest(folder: Path, allowed: set[str] | None) -> Manifest:
    """A folder's manifest; one that declares a table only its own hooks.py registers is read after importing it."""
    try:
        return load_manifest(folder / "plugin.toml")
    except PluginError:
        module = _table_hooks(folder, allowed)
        if module is None:
            raise
    register(module, f"plugin:{folder.name}")
    manifest = load_manifest(folder / "plugin.toml")
    manifest.hooks_object = module
    return manifest


def _table_hooks(folder: Path, allowed: set[str] | None) -> Any:
    """The folder's hooks module when its plugin.toml parses, it may load, it has a table no registered plugin
    knows (one only its own hooks may define), and the module implements `register_tables`; else None. A manifest
    broken in any other way never runs its folder's code."""
    import tomllib

    from agent.plugin import contributions
    from agent.plugin.hooks import import_hooks_file
    from agent.plugin.manifest import TOP_KEYS

    hooks_file = folder / "hooks.py"
    try:
        raw = tomllib.loads((folder / "plugin.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not hooks_file.is_file() or (allowed is not None and raw.get("name") not in allowed):
        return None
    if not set(raw) - TOP_KEYS - set(contributions.tables()):
        return None
    try:
        module = import_hooks_file(hooks_file, folder.name)
    except PluginError:
        return None
    return module if hasattr(getattr(module, "register_tables", None), f"{PROJECT}_impl") else None


def _add(manifest: Manifest, loaded: dict[str, Manifest], skipped: list[Skipped], allowed: set[str] | None) -> None:
    """Keep a manifest unless its name is taken or AGENT_LOAD_PLUGINS leaves it out."""
    if allowed is not None and manifest.name not in allowed:
        skipped.append(Skipped(manifest.folder, f"not loaded: {LOAD_ENV} lists only {', '.join(sorted(allowed))}", manifest.name))
    elif manifest.name in loaded:
        skipped.append(Skipped(manifest.folder, f"name '{manifest.name}' is already taken by {loaded[manifest.name].source}; "
                               f"rename one of them (the key 'name' in plugin.toml)", manifest.name, clash=True))
    else:
        loaded[manifest.name] = manifest


def _installed(skipped: list[Skipped], allowed: set[str] | None) -> list[Manifest]:
    """Manifests of installed packages that declare an `agent.plugins` entry point."""
    from importlib.metadata import entry_points

    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = f"package {ep.dist.name} {ep.dist.version}" if ep.dist else "an installed package"
        where = f"{dist} (entry point {ep.name} = {ep.value})"
        if allowed is not None and ep.name not in allowed:  # not even imported: this keeps a package's code out
            skipped.append(Skipped(Path(ep.value), f"{where}: not loaded: {LOAD_ENV} lists only {', '.join(sorted(allowed))}",
                                   ep.name))
            continue
        try:
            manifest = _from_entry_point(ep.load(), where)
            if manifest.name != ep.name:
                raise PluginError(f"{where}: the entry point is named '{ep.name}' but its plugin.toml says name = "
                                  f"'{manifest.name}'; make them the same")
        except PluginError as exc:
            skipped.append(Skipped(Path(ep.value), str(exc), ep.name))
            continue
        except Exception as exc:  # noqa: BLE001 - a broken package must not stop the others
            skipped.append(Skipped(Path(ep.value), f"{where}: importing it failed: {type(exc).__name__}: {exc}; "
                                   "reinstall or uninstall the package", ep.name))
            continue
        manifest.source = where
        found.append(manifest)
    return found


def _from_entry_point(obj: Any, where: str) -> Manifest:
    """The manifest beside the module an entry point names; that module (or object) holds the hooks."""
    module = obj if isinstance(obj, ModuleType) else inspect.getmodule(obj)
    if module is None or not getattr(module, "__file__", None):
        raise PluginError(f"{where}: the entry point must name a module of the package; point it at one")
    folder = Path(module.__file__).resolve().parent  # type: ignore[arg-type]
    if not (folder / "plugin.toml").is_file():
        raise PluginError(f"{where}: no plugin.toml in {folder}; ship it beside the module "
                          "(package data) so the plugin's manifest and data are found")
    if any(hasattr(module, hook) for hook in KIND_HOOKS):  # its tables are known before its manifest is read
        register(module, f"package:{module.__name__}")
    manifest = load_manifest(folder / "plugin.toml")
    manifest.hooks_object = obj
    return manifest


def plugin_folder(settings: Settings, name_or_folder: str | Path) -> Path:
    """A plugin folder given as a path, or the folder of the discovered plugin with that name (folders and packages)."""
    path = Path(name_or_folder).expanduser()
    if (path / "plugin.toml").is_file():
        return path
    manifests, skipped = discover(settings)
    for m in manifests:
        if m.name == str(name_or_folder):
            return m.folder
    why = [s.reason for s in skipped if (s.name or s.path.name) == str(name_or_folder)]  # unnamed: a manifest that failed
    if why:
        raise PluginError(f"plugin '{name_or_folder}' is not available: {why[0]}")
    raise PluginError(f"{name_or_folder}: neither a plugin folder (no plugin.toml there) nor the name of a plugin; "
                      f"choose one of {', '.join(sorted(m.name for m in manifests))} (see `agent plugins`)")
