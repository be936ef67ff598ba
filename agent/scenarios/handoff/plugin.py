"""The handoff kind, a default plugin: a conversation goes to a person when the customer asks for one ([handoff]
labels), after fallbacks in a row ([handoff] after_fallbacks), or when an operator takes it; the agent stays silent
until it is released. It contributes the [handoff] table, its tables, `agent handoff`, the /v1/handoffs routes and
the events stream, and the chat app's inbox (/inbox). The core knows none of this: it calls `intercept`."""

from __future__ import annotations

from typing import Any

from agent.plugin.hookspecs import hookimpl

NAMESPACE = "handoff"


@hookimpl
def register_tables(register: Any) -> None:
    """[handoff]: labels, after_fallbacks, notice."""
    from agent.scenarios.handoff.config import parse_handoff

    register("handoff", lambda table, manifest: parse_handoff(table, manifest.labels))


@hookimpl
def register_migrations(register: Any) -> None:
    """The handoffs and their events."""
    from agent.scenarios.handoff.tables import m001_handoffs

    register(NAMESPACE, m001_handoffs)


@hookimpl
def register_commands(cli: Any) -> None:
    """`agent handoff`."""
    from agent.scenarios.handoff.cli import handoff

    cli.add_command(handoff)


@hookimpl
def register_routes(register: Any) -> None:
    """/v1/handoffs (operator scope) and /v1/conversations/{id}/events (chat scope)."""
    from agent.scenarios.handoff.routes import router

    register(router)


@hookimpl
def register_chat_commands(register: Any) -> None:
    """/inbox: the conversations waiting for a person."""
    from agent.scenarios.handoff.tui import inbox_command

    register("/inbox", "the conversations waiting for a person: open one, reply, label, release", inbox_command)


@hookimpl
def open_plugin(manifest: Any, runtime: Any) -> Any:
    """A responder's [handoff] settings (None without the table); its labels checked against those the plugin learned
    from its examples when it declares none in plugin.toml."""
    config = manifest.tables.get("handoff") if manifest.role == "responder" else None
    unknown = [label for label in (config.labels if config else ()) if label not in runtime.labels]
    if unknown:
        from agent.errors import PluginError

        raise PluginError(f"{manifest.path}: key 'handoff.labels' must be a list of this plugin's labels "
                          f"({', '.join(runtime.labels)}), found '{unknown[0]}'; fix it in the file")
    return config


@hookimpl(tryfirst=True)
def intercept(turn: Any) -> dict[str, Any] | None:
    """Hand over, hold, or pass on the person's replies (see agent.scenarios.handoff.turns)."""
    from agent.scenarios.handoff.turns import intercept as run

    return run(turn, turn.state.get(__name__))


@hookimpl
def format_extras(plugin: str, extras: dict[str, Any]) -> list[str] | None:
    """The person's replies, and that a person has the conversation."""
    if plugin != "handoff":
        return None
    from rich.markup import escape

    lines = [f"[bold magenta]person:[/] {escape(str(m.get('text', '')))}" for m in extras.get("messages") or [] if isinstance(m, dict)]
    held = extras.get("state") in ("waiting", "taken")
    return lines + ([f"[magenta]with a person: {escape(str(extras.get('reason')))}[/]"] if held else [])
