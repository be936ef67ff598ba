"""The plugin manager of contributions and scenario kinds: the agent's default plugins, registered
exactly as an installed package's hooks are (as llm and pytest do), then packages and folder hooks."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import Any, Callable

# the commands besides ask, chat, feedback
COMMANDS = ("agent.cli_manage", "agent.cli_finetune", "agent.cli_replay", "agent.cli_review", "agent.cli_serve")


def _scenario_modules() -> tuple[str, ...]:
    """The scenario kinds shipped in agent/scenarios/: each module there, and each package's `plugin` module."""
    folder = Path(__file__).resolve().parent / "scenarios"
    modules = [f"agent.scenarios.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]
    return (*modules, *(f"agent.scenarios.{p.parent.name}.plugin" for p in sorted(folder.glob("*/plugin.py"))))


# The agent's own features, registered exactly as an installed package's hooks are (llm's DEFAULT_PLUGINS).
DEFAULT_PLUGINS = (*COMMANDS, *_scenario_modules())
_pm: Any = None
_lock = threading.RLock()


def plugin_manager() -> Any:
    """The pluggy manager of contributions and scenario kinds: the default plugins, then packages' hooks."""
    global _pm
    with _lock:
        if _pm is None:
            _pm = _build()
    return _pm


def _build() -> Any:
    """A manager with the hookspecs and every default plugin registered."""
    import importlib

    import pluggy

    from agent import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    return pm


def register_kind(obj: Any, name: str) -> None:
    """Add a package's or a folder's hook module, so its tables, migrations and commands count; a module loaded
    again under the same name (the plugin's hooks.py read anew) replaces the old one."""
    pm = plugin_manager()
    with _lock:
        if pm.is_registered(obj):
            return
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        pm.register(obj, name=name)


def call_kinds(hook: str, on_error: Callable[[str, Exception], None], first: bool = False,
               guard: Callable[[str, Callable[[], Any]], Any] | None = None, **kwargs: Any) -> Any:
    """Call `hook` on every registered plugin in pluggy's order, each by the arguments it names. One that raises
    is reported through `on_error(plugin, exc)` and skipped, so a broken kind never ends a turn; `guard(plugin, fn)`,
    when given, runs a package's or folder's call (the time limit of its hooks). With `first`, the first result
    that is not None (or None); else (plugin, result) for each result that is not None."""
    out = []
    for impl in reversed(getattr(plugin_manager().hook, hook).get_hookimpls()):
        call = partial(impl.function, *[kwargs[a] for a in impl.argnames])
        try:
            result = call() if guard is None or impl.plugin_name in DEFAULT_PLUGINS else guard(impl.plugin_name, call)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug stays its own
            on_error(impl.plugin_name, exc)
            continue
        if result is not None:
            if first:
                return result
            out.append((impl.plugin_name, result))
    return None if first else out
