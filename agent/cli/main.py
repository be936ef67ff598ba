"""The `agent` command group: ask, chat and feedback here; every other command comes from a plugin's
`register_commands` hook (the default plugins first: cli_manage, cli_finetune, cli_replay, cli_review, the
scenario kinds), as llm's commands do."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from agent.cli.util import Group, console, escape, make_agent, make_settings
from agent.errors import AgentError


@click.group(cls=Group)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="AGENT_HOME",
              help="Folder for the database and built indexes (env AGENT_HOME).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the encoder runs.")
@click.version_option(package_name="agent")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, device: str) -> None:
    """A chat agent that routes messages to scenario plugins, answers from their data and logs every turn."""
    ctx.obj = {"home": home, "device": device}


@cli.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--plugin", "-p", help="Force this plugin instead of routing.")
@click.option("--conversation", "-c", help="Continue this conversation id.")
@click.option("--user", "-u", help="Who is asking (profiles, item feedback); the conversation id by default.")
@click.option("--json", "as_json", is_flag=True, help="Print the Reply as JSON.")
@click.pass_context
def ask(ctx: click.Context, text: tuple[str, ...], plugin: str | None, conversation: str | None, user: str | None,
        as_json: bool) -> None:
    """Answer one message (TEXT, or '-' to read it from stdin)."""
    from agent.reply.render import print_reply

    message: str | bytes = sys.stdin.buffer.read() if text == ("-",) else " ".join(text)
    reply = make_agent(ctx).reply(message, conversation, plugin, user)
    if as_json:
        click.echo(json.dumps(reply.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        print_reply(console(), reply)


CHAT_HELP = "commands: /use NAME, /good, /bad, /label LABEL, /help, /quit"


@cli.command()
@click.option("--plain", is_flag=True, help="Line-mode chat on stdin/stdout instead of the app.")
@click.option("--web", is_flag=True, help="Serve the chat app in a browser (textual-serve).")
@click.option("--host", default="localhost", show_default=True, help="With --web: the address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="With --web: the port.")
@click.option("--plugin", "-p", help="Force this plugin for the whole chat.")
@click.option("--conversation", "-c", help="Continue this conversation id.")
@click.option("--user", "-u", help="Who is chatting (profiles, item feedback); the conversation id by default.")
@click.pass_context
def chat(ctx: click.Context, plain: bool, web: bool, host: str, port: int, plugin: str | None,
         conversation: str | None, user: str | None) -> None:
    """Chat with the agent: the terminal app, or one message per line with --plain or when piped.

    (Under textual-serve, TEXTUAL_DRIVER names the web driver and the app runs though stdin is a pipe.)
    """
    if web:
        _serve(ctx, host, port, plugin, conversation, user)
    elif plain or not (os.environ.get("TEXTUAL_DRIVER") or (sys.stdin.isatty() and sys.stdout.isatty())):
        _plain_chat(ctx, plugin, conversation, user)
    else:
        from tui.app import AgentApp
        from tui.session import Session

        AgentApp(Session(make_settings(ctx), ctx.obj["device"], plugin, conversation, user=user)).run()


def _serve(ctx: click.Context, host: str, port: int, plugin: str | None, conversation: str | None,
           user: str | None) -> None:
    """`agent chat --web`: each browser tab runs its own `agent chat` behind textual-serve."""
    from textual_serve.server import Server

    Server(web_command(ctx, plugin, conversation, user), host=host, port=port, title="agent").serve()


def web_command(ctx: click.Context, plugin: str | None, conversation: str | None, user: str | None = None) -> str:
    """The command line textual-serve runs for each browser session."""
    import shlex

    args = [sys.executable, "-m", "agent", "--device", ctx.obj["device"]]
    if ctx.obj["home"]:
        args += ["--home", str(ctx.obj["home"])]
    args.append("chat")
    args += ["--plugin", plugin] if plugin else []
    args += ["--conversation", conversation] if conversation else []
    args += ["--user", user] if user else []
    return shlex.join(args)


def _plain_chat(ctx: click.Context, plugin: str | None, conversation: str | None, user: str | None) -> None:
    """Line-mode chat: one message per line on stdin, replies on stdout."""
    import uuid

    agent = make_agent(ctx)
    out, conv, last = console(), conversation or uuid.uuid4().hex[:12], None
    interactive = sys.stdin.isatty()
    if interactive:
        out.print(f"[dim]conversation {conv} · {CHAT_HELP}[/]")
    while True:
        if interactive:
            out.print("[bold]you>[/] ", end="")
        line = sys.stdin.buffer.readline()
        if not line:
            break
        text = line.decode("utf-8", errors="replace").strip()
        if text in ("/quit", "/exit", "quit", "exit"):
            break
        if not text:
            continue
        try:
            last = _chat_turn(agent, out, line, text, conv, plugin, last, user)
        except AgentError as exc:
            out.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)


def _chat_turn(agent: Any, out: Any, raw: bytes, text: str, conv: str, plugin: str | None, last: int | None,
               user: str | None = None) -> int | None:
    """One line of the chat: a feedback command or a message; returns the last turn id."""
    from agent.reply.render import print_reply

    word, _, arg = text.partition(" ")
    if word == "/help":
        out.print(CHAT_HELP)
    elif word.startswith("/") and word not in ("/good", "/bad", "/label", "/use"):
        out.print(f"[yellow]unknown command {escape(word)}[/]; {CHAT_HELP}", highlight=False)
    elif word in ("/good", "/bad") and arg:
        out.print(f"[yellow]{escape(word)} takes no argument[/]", highlight=False)
    elif word in ("/good", "/bad", "/label"):
        if last is None:
            out.print("[yellow]no turn to rate yet[/]")
        else:
            label = arg.strip() if word == "/label" else None
            if word == "/label" and not label:
                raise AgentError("usage: /label LABEL")
            agent.feedback(last, label=label, rating=None if label else word[1:])
            out.print(f"[dim]feedback stored for turn {last}[/]")
    else:
        reply = agent.reply(raw, conv, plugin, user)
        out.print("[bold cyan]agent>[/] ", end="")
        print_reply(out, reply, sources=reply.turn_id is not None)
        return reply.turn_id if reply.turn_id is not None else last
    return last


@cli.command()
@click.argument("turn_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--label", help="The right label for this turn.")
@click.option("--good", is_flag=True, help="The reply was right.")
@click.option("--bad", is_flag=True, help="The reply was wrong.")
@click.option("--out-of-scope", "oos", is_flag=True, help="The message is outside what the plugin handles (it trains no label).")
@click.option("--note", help="A free-text note.")
@click.option("--new-label", is_flag=True, help="Accept a label the plugin does not have yet (learned by `agent finetune`).")
@click.pass_context
def feedback(ctx: click.Context, turn_id: int, label: str | None, good: bool, bad: bool, oos: bool, note: str | None,
             new_label: bool, **contributed: str | None) -> None:
    """Correct a logged turn's label or rate its reply (plugins add more: --like ITEM, ...)."""
    from agent.plugin import contributions

    given = {name: value for name, value in contributed.items() if value is not None}
    options = {o.name: o for o in contributions.feedback_options()}
    if (label is not None) + good + bad + oos + len(given) != 1:
        rest = "".join(f", --{name} ITEM" for name in options)
        raise click.UsageError(f"give exactly one of --label LABEL, --good, --bad, --out-of-scope{rest}")
    if given and (note is not None or new_label):
        raise click.UsageError("--note and --new-label go with --label, --good or --bad, not with "
                               f"{', '.join('--' + n for n in given)}")
    if given:
        [(name, value)] = given.items()
        click.echo(options[name].fn(make_agent(ctx), turn_id, value))
        return
    rating = "good" if good else "bad" if bad else "out_of_scope" if oos else None
    fid = make_agent(ctx).feedback(turn_id, label=label, rating=rating, note=note, new_label=new_label)
    click.echo(f"stored feedback {fid} for turn {turn_id}")


def _register() -> None:
    """Commands from every plugin's `register_commands` hook, and the options plugins add to `agent feedback`
    (again once packages and folders are discovered, for theirs)."""
    from agent.plugin.manager import plugin_manager

    plugin_manager().hook.register_commands(cli=cli)
    _feedback_options()
    cli.needs_plugins = {"feedback"}
    cli.after_plugins = [_feedback_options]


def _feedback_options() -> None:
    """The options plugins contribute to `agent feedback`, each added once."""
    from agent.plugin import contributions

    have = {p.name for p in feedback.params}
    for option in contributions.feedback_options():
        if option.name not in have:
            feedback.params.append(click.Option([f"--{option.name}"], metavar="ITEM", help=option.help))


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="agent")


if __name__ == "__main__":
    main()
