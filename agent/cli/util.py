"""What the `agent` commands share: the group class, settings and agent for an invocation, output helpers.

Command modules import this, never `agent.cli`, so that no module imports the group back.
"""

from __future__ import annotations

import os
from typing import Any

import click

from agent.errors import AgentError


class Group(click.Group):
    """Adds the commands plugins contribute; turns AgentError and file-system errors into a one-line
    message and exit code 1, never a traceback."""

    needs_plugins: set[str] = set()  # built-in commands that take options from plugins: discover them first
    after_plugins: list[Any] = []  # callbacks run once plugins (folders and packages) are discovered

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *sorted(self._plugin_commands(ctx))]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.needs_plugins:
            self._plugin_commands(ctx)
        return super().get_command(ctx, name) or self._plugin_commands(ctx).get(name)

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        """Commands from plugins' `cli_commands` hooks, loaded once per invocation."""
        if "plugin_commands" not in ctx.meta:
            from agent.reply.agent import Agent
            from agent.settings import Settings

            home = ctx.params.get("home")
            try:
                agent = Agent(Settings(home=home) if home else Settings(), notify=note)
            except AgentError as exc:
                note(f"plugin commands not loaded: {exc}")
                ctx.meta["plugin_commands"] = {}
                return {}
            ctx.meta["plugin_commands"] = contributed(agent, set(super().list_commands(ctx)))
            for callback in self.after_plugins:
                callback()
        return ctx.meta["plugin_commands"]

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgentError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}; check the path and its permissions") from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug still gets a one-line message, not a traceback
            if os.environ.get("AGENT_DEBUG"):
                raise
            raise click.ClickException(f"unexpected error: {type(exc).__name__}: {exc}. This is a bug in the agent or "
                                       "a plugin; run again with AGENT_DEBUG=1 to see the traceback") from exc


def contributed(agent: Any, taken: set[str]) -> dict[str, click.Command]:
    """Commands of plugin folders and packages: their `cli_commands` results and what their `register_commands`
    adds; clashes and non-commands are reported."""
    from agent.plugin.manager import DEFAULT_PLUGINS, plugin_manager

    found: dict[str, click.Command] = {}
    offered = list(agent.hooks.call_each("cli_commands"))
    for impl in plugin_manager().hook.register_commands.get_hookimpls():
        if impl.plugin_name not in DEFAULT_PLUGINS:  # the defaults' commands are in the group already
            group = click.Group()
            impl.function(cli=group)
            offered.append((impl.plugin_name.split(":", 1)[-1], list(group.commands.values())))
    for plugin, commands in offered:
        for cmd in commands if isinstance(commands, (list, tuple)) else [commands]:
            if not isinstance(cmd, click.Command) or not cmd.name:
                note(f"plugin {plugin}: cli_commands returned {cmd!r}, not a named click command; ignored")
            elif cmd.name in taken or cmd.name in found:
                note(f"plugin {plugin}: command '{cmd.name}' is already taken; rename it")
            else:
                found[cmd.name] = cmd
    return found


def make_settings(ctx: click.Context) -> Any:
    """Settings for this invocation (--home or the default home)."""
    from agent.settings import Settings

    return Settings(home=ctx.obj["home"]) if ctx.obj["home"] else Settings()


def make_agent(ctx: click.Context) -> Any:
    """The Agent for this invocation; progress notes go to stderr."""
    from agent.reply.agent import Agent

    agent = Agent(make_settings(ctx), notify=note, device=ctx.obj["device"])
    for skipped in agent.skipped:
        if skipped.clash:
            click.secho(f"warning: {skipped.path} is not used: {skipped.reason}", err=True, fg="yellow")
    return agent


def note(message: str) -> None:
    """A progress note on stderr."""
    click.secho(f"… {message}", err=True, dim=True)


def console() -> Any:
    """A rich console on stdout."""
    from rich.console import Console

    return Console(highlight=False)


def escape(text: str) -> str:
    """Data shown inside rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
