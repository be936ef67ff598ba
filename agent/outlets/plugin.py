"""The outlets feature, a default plugin: its tables, commands and manifest table."""

from __future__ import annotations

from typing import Any

from agent.plugin.hookspecs import hookimpl

NAMESPACE = "outlets"


@hookimpl
def register_tables(register: Any) -> None:
    """[[outlets]]: webhooks and commands that receive the declaring plugin's alerts and handoffs."""
    from agent.outlets.declared import parse_outlets

    register("outlets", lambda table, manifest: parse_outlets(table))


@hookimpl
def register_migrations(register: Any) -> None:
    """The outlets, their deliveries and every attempt."""
    from agent.outlets.tables import m001_outlets

    register(NAMESPACE, m001_outlets)


@hookimpl
def register_commands(cli: Any) -> None:
    """`agent alerts`."""
    from agent.outlets.cli import alerts

    cli.add_command(alerts)
