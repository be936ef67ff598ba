"""What the registered plugins contribute through the `register_*` hooks: manifest tables, migrations,
fine-tuners, feedback options, chat commands. Collected on first use, again after a package registers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from agent.errors import PluginError


@dataclass
class Migration:
    """One database migration: recorded as `name`; `legacy` is the name it had before it was namespaced."""

    name: str
    fn: Callable[[Any], None]
    legacy: str | None = None


@dataclass
class Finetuner:
    """How plugins with a manifest table are fine-tuned, and the folder their versions live in."""

    table: str
    fn: Callable[[Any], Any]
    folder: str = "model"


@dataclass
class Option:
    """A contributed option: of `agent feedback`, or a slash command of the chat app."""

    name: str
    help: str
    fn: Callable[..., Any]


_cache: dict[str, tuple[frozenset[int], Any]] = {}


def _collect(hook: str, make: Callable[[Callable[..., None]], Any]) -> Any:
    """Call a register_* hook on every plugin; `make(register_list)` turns what was registered into the value."""
    from agent.plugin.manager import plugin_manager

    pm = plugin_manager()
    size = frozenset(id(p) for p in pm.get_plugins())  # which plugins are registered, not only how many
    cached = _cache.get(hook)
    if cached is not None and cached[0] == size:
        return cached[1]
    found: list[tuple[Any, ...]] = []

    def register(*args: Any, **kwargs: Any) -> None:
        found.append((args, kwargs))

    getattr(pm.hook, hook)(register=register)
    value = make(found)
    _cache[hook] = (size, value)
    return value


def tables() -> dict[str, Callable[..., Any]]:
    """Manifest table name -> its parser; two plugins claiming one name is an error."""

    def make(found: list[tuple[Any, ...]]) -> dict[str, Callable[..., Any]]:
        out: dict[str, Callable[..., Any]] = {}
        for args, kwargs in found:
            name, parse = _args(args, kwargs, "name", "parse")
            if name in out and out[name] is not parse:
                raise PluginError(f"two plugins register the manifest table [{name}]; uninstall one of them")
            out[name] = parse
        return out

    return _collect("register_tables", make)


def migrations() -> list[Migration]:
    """Contributed migrations, in registration order (default plugins first)."""

    def make(found: list[tuple[Any, ...]]) -> list[Migration]:
        out = []
        for args, kwargs in found:
            namespace, fn = _args(args, kwargs, "namespace", "fn")
            out.append(Migration(f"{namespace}.{fn.__name__}", fn, kwargs.get("legacy")))
        return out

    return _collect("register_migrations", make)


def finetuners() -> dict[str, Finetuner]:
    """Manifest table -> the fine-tuner of plugins that have it."""

    def make(found: list[tuple[Any, ...]]) -> dict[str, Finetuner]:
        out = {}
        for args, kwargs in found:
            table, fn = _args(args, kwargs, "table", "fn")
            out[table] = Finetuner(table, fn, kwargs.get("folder", "model"))
        return out

    return _collect("register_finetuners", make)


def routes() -> list[Any]:
    """The FastAPI routers plugins contribute to `agent serve`."""
    return _collect("register_routes", lambda found: [_args(args, kwargs, "router")[0] for args, kwargs in found])


def feedback_options() -> list[Option]:
    """Options of `agent feedback` contributed by plugins."""
    return _collect("register_feedback", _options)


def chat_commands() -> dict[str, Option]:
    """Slash commands of the chat app contributed by plugins, by word ('/like')."""
    return _collect("register_chat_commands", lambda found: {o.name: o for o in _options(found)})


def reply_keys() -> dict[str, Callable[[Any], tuple[Any, list[str]]]]:
    """Keys a `build_reply` result may carry besides text and extras, each with its check."""

    def make(found: list[tuple[Any, ...]]) -> dict[str, Any]:
        return dict(_args(args, kwargs, "key", "check") for args, kwargs in found)

    return _collect("register_reply_keys", make)


def _options(found: list[tuple[Any, ...]]) -> list[Option]:
    """Registered (name, help, fn) triples as Options."""
    return [Option(*_args(args, kwargs, "name", "help", "fn")) for args, kwargs in found]


def _args(args: tuple[Any, ...], kwargs: dict[str, Any], *names: str) -> tuple[Any, ...]:
    """Positional-or-keyword arguments of a register() call, in the order named."""
    values = list(args[: len(names)]) + [kwargs.get(n) for n in names[len(args):]]
    missing = [n for n, v in zip(names, values) if v is None]
    if missing:
        raise PluginError(f"register() was called without {missing}; pass {list(names)}")
    return tuple(values)
