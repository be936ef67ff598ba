"""The one plugin manager of the process: the agent's default plugins, registered exactly as an installed
package's hooks are (as llm and pytest do), then the hooks of plugin packages and folders. Contribution and kind
hooks are called on every plugin (`call_kinds`); a plugin's own hooks (`build_reply`, ...) only for its turns,
through `agent.plugin.hooks.Hooks`."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any, Callable

# The agent's own features, registered exactly as an installed package's hooks are (llm's DEFAULT_PLUGINS,
# pytest's default_plugins): the commands besides ask, chat and feedback, then the built-in scenario kinds.
DEFAULT_PLUGINS = (
    "agent.cli.manage",            # plugins, indexes, logs, eval, new-plugin
    "agent.cli.finetune",          # agent finetune
    "agent.cli.replay",            # agent replay
    "agent.cli.review",            # agent review
    "agent.cli.serve",             # agent serve, agent keys
    "agent.scenarios.faq",         # answers from a plugin's FAQ corpus, the default responder
    "agent.scenarios.short",       # messages without words: ":)", "?", "👍"
    "agent.scenarios.monitor.plugin",    # [monitor]: sentiment feeds, windows, alerts
    "agent.scenarios.recommend.plugin",  # [recommend]: items, profiles, the interest model
    "agent.scenarios.handoff.plugin",    # [handoff]: a person takes a conversation over, the inbox
    "agent.outlets.plugin",              # alerts and handoffs delivered to webhooks and commands
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

    from agent.plugin import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    return pm


def register(obj: Any, name: str) -> None:
    """Add a package's or a folder's hook module to the one manager, so its tables, migrations and commands count;
    a module loaded again under the same name (the plugin's hooks.py read anew) replaces the old one."""
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
