"""`agent handoff`: the conversations waiting for a person, and the operator's actions on them."""

from __future__ import annotations

import getpass
import json

import click

from agent.cli.util import console, escape, make_agent

OPERATOR = click.option("--as", "operator", default=lambda: getpass.getuser(), show_default="your user name",
                        help="Who is answering (shown to other operators and in the events).")


@click.group()
def handoff() -> None:
    """Conversations a person has: list, show, take, reply, label, release."""


@handoff.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """The conversations waiting for a person or taken by one, oldest first, with why and how long."""
    from agent.scenarios.handoff.inbox import waiting

    rows = waiting(make_agent(ctx).store)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("No conversation is waiting for a person.")
        return
    from rich.table import Table

    from agent.scenarios.handoff.view import waited

    table = Table("conversation", "state", "waited", "reason", "plugin", "last message")
    for r in rows:
        who = f"taken by {r['operator']}" if r["state"] == "taken" else "waiting"
        table.add_row(escape(r["conversation_id"]), who, waited(r["waited_s"]), escape(r["reason"] or ""), escape(r["plugin"] or "-"),
                      escape((r["last"] or "")[:60]))
    console().print(table)


@handoff.command()
@click.argument("conversation")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@click.pass_context
def show(ctx: click.Context, conversation: str, as_json: bool) -> None:
    """The conversation's turns with their predictions, and the person's replies."""
    from agent.scenarios.handoff.inbox import show as read

    found = read(make_agent(ctx).store, conversation)
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2, default=str))
        return
    out = console()
    row = found["handoff"]
    out.print(f"[bold]{escape(conversation)}[/]: " + (f"{row['state']} ({escape(row['reason'] or '')})" if row else "with the agent"))
    from agent.scenarios.handoff.view import transcript

    for line in transcript(found):
        out.print(line)


@handoff.command()
@click.argument("conversation")
@click.option("--force", is_flag=True, help="Take it over from the operator who has it.")
@OPERATOR
@click.pass_context
def take(ctx: click.Context, conversation: str, force: bool, operator: str) -> None:
    """Take the conversation: the agent stops answering it until you release it."""
    from agent.scenarios.handoff.inbox import take as run

    run(make_agent(ctx).store, conversation, operator, force)
    click.echo(f"{conversation} is yours; reply with: agent handoff reply {conversation} TEXT")


@handoff.command()
@click.argument("conversation")
@click.argument("text")
@OPERATOR
@click.pass_context
def reply(ctx: click.Context, conversation: str, text: str, operator: str) -> None:
    """Send TEXT to the customer (take the conversation first)."""
    from agent.scenarios.handoff.inbox import privacy_of
    from agent.scenarios.handoff.inbox import reply as run

    agent = make_agent(ctx)
    event = run(agent.store, conversation, text, operator, privacy_of(agent, conversation))
    click.echo(f"sent (event {event['id']})")


@handoff.command()
@click.argument("conversation")
@click.argument("turn", type=int)
@click.argument("label")
@click.option("--new-label", is_flag=True, help="Teach a label the plugin does not know yet.")
@OPERATOR
@click.pass_context
def label(ctx: click.Context, conversation: str, turn: int, label: str, new_label: bool, operator: str) -> None:
    """Label the customer's message TURN: a correction `agent finetune` learns."""
    from agent.scenarios.handoff.inbox import label as run

    fid = run(make_agent(ctx), conversation, turn, label, operator, new_label)
    click.echo(f"turn {turn} labelled {label} (feedback {fid})")


@handoff.command()
@click.argument("conversation")
@OPERATOR
@click.pass_context
def release(ctx: click.Context, conversation: str, operator: str) -> None:
    """Give the conversation back to the agent; it answers the next message."""
    from agent.scenarios.handoff.inbox import release as run

    run(make_agent(ctx).store, conversation, operator)
    click.echo(f"{conversation} is back with the agent")
