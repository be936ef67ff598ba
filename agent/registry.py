"""The plugin manager of contributions and scenario kinds: the agent's default plugins, registered
exactly as an installed package's hooks are (as llm and pytest do), then packages and folder hooks."""

from __future__ import annotations

import threading
from typing import Any

DEFAULT_PLUGINS = (
    "agent.cli_manage",
    "agent.cli_finetune",
    "agent.cli_replay",
    "agent.scenarios.faq",
    "agent.scenarios.recommend.plugin",
    "agent.scenarios.monitor.plugin",
)
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
