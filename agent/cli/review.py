"""`agent review [PLUGIN]`: the logged turns most worth a person's decision, and one key to decide each."""

from __future__ import annotations

import json
from typing import Any

import click

from agent.cli.util import console, escape, make_agent
from agent.errors import InputError
from agent.plugin.hookspecs import hookimpl

KEYS = "Enter confirms the guess · a label's name corrects it · o: out of scope · s: skip · q: quit"


@click.command()
@click.argument("plugin", required=False)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many turns to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the queue as JSON and exit.")
@click.option("--decide", is_flag=True, help="Go through the queue in the terminal, one decision per turn.")
@click.option("--proposals", is_flag=True, help="New labels proposed from groups of similar unknown messages.")
@click.option("--accept", "accept_id", metavar="ID", help="Accept a proposal: label its turns (a new label, learned by the "
              "next fine-tune) and write an FAQ stub.")
@click.option("--label", help="With --accept: the label to use instead of the suggested name (an existing one merges).")
@click.pass_context
def review(ctx: click.Context, plugin: str | None, limit: int, as_json: bool, decide: bool, proposals: bool,
           accept_id: str | None, label: str | None) -> None:
    """List the logged turns a decision would teach most (fallbacks, close calls, many similar messages waiting),
    best first; --decide to confirm, correct or mark each out of scope. --proposals lists new labels proposed
    from unknown messages; --accept ID [--label NAME] takes one."""
    from agent.review import queue

    if label and not accept_id:  # usage first: no models are loaded for a mistyped command
        raise click.UsageError("--label goes with --accept ID")
    if decide and (as_json or proposals or accept_id):
        raise click.UsageError("--decide asks for decisions one by one: use it without --json, --proposals or --accept")
    if accept_id and plugin is None:
        raise click.UsageError("name the plugin of the proposal: agent review PLUGIN --accept ID")
    agent = make_agent(ctx)
    if plugin is not None:
        try:
            agent.responder(plugin)
        except InputError as exc:  # says why a plugin of that name did not load, or which ones there are
            raise click.BadParameter(str(exc), param_hint="PLUGIN") from None
    if proposals or accept_id:
        _proposals(agent, plugin, accept_id, label, as_json)
        return
    items = queue.build(agent, plugin, limit)
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in items], indent=2, ensure_ascii=False))
        return
    if not items:
        click.echo("nothing to review: every logged turn has a decision")
        return
    if decide:
        _decide_all(agent, items)
        return
    _table(items)
    click.echo("decide with: agent review --decide, or agent feedback TURN --label L / --out-of-scope")


def _proposals(agent: Any, plugin: str | None, accept_id: str | None, label: str | None, as_json: bool) -> None:
    """List the proposals, or accept one."""
    from agent.review import proposals as prop

    if accept_id and plugin is not None:
        done = prop.accept(agent, prop.find(agent, plugin, accept_id), label)
        if as_json:
            click.echo(json.dumps(done, indent=2))
            return
        how = f"merged into {done['label']}" if done["merged"] else f"new label {done['label']}"
        stub = f"; fill in the answer in {done['faq_stub']} and add it to the plugin's corpus" if done["faq_stub"] else ""
        click.echo(f"{done['turns']} turns labelled: {how}; agent finetune {plugin} learns it{stub}")
        return
    found = prop.propose_all(agent, plugin)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("no proposals: too few similar unknown messages waiting")
        return
    from rich.table import Table

    table = Table("id", "plugin", "suggested label", "messages", "nearest label", "examples")
    for p in found:
        near = f"{p.nearest_label} ({p.nearest_similarity:.2f})" if p.nearest_label else "-"
        table.add_row(p.id, escape(p.plugin), escape(p.name), str(p.size), escape(near), escape(" · ".join(p.examples[:3])))
    console().print(table)
    click.echo("accept with: agent review PLUGIN --accept ID [--label NAME] (an existing label's name merges)")


def _table(items: list[Any]) -> None:
    """The queue as a table."""
    from rich.table import Table

    table = Table("turn", "plugin", "guess", "why", "message")
    for i in items:
        table.add_row(str(i.turn_id), escape(i.plugin or "-"), escape(i.label or "-"), escape(i.reason), escape(i.text))
    console().print(table)


def _decide_all(agent: Any, items: list[Any]) -> None:
    """Ask for one decision per turn; each is stored as it is given."""
    from agent.errors import AgentError
    from agent.review import queue

    out, stored = console(), 0
    out.print(f"[dim]{KEYS}[/]")
    try:
        for n, item in enumerate(items, 1):
            out.print(f"\n[b]{n}/{len(items)}[/] turn {item.turn_id} · {escape(item.plugin or '-')} · guess "
                      f"[b]{escape(item.label or '-')}[/] · {escape(item.reason)}\n  {escape(item.text)}")
            while True:
                answer = click.prompt("decision", default="", show_default=False).strip()
                if answer == "q":
                    raise click.Abort
                if answer == "s":
                    break
                try:
                    if answer == "":
                        queue.decide(agent, item.turn_id, "confirm")
                    elif answer == "o":
                        queue.decide(agent, item.turn_id, "out_of_scope")
                    else:
                        queue.decide(agent, item.turn_id, "correct", answer)
                except AgentError as exc:
                    out.print(f"[yellow]{escape(str(exc))}[/]")
                    continue
                stored += 1
                break
    except click.Abort:  # q, Ctrl-D or Ctrl-C: what was decided is stored already
        pass
    out.print(f"\n{stored} decision{'s' if stored != 1 else ''} stored"
              + ("; agent finetune learns them (or a plugin's [finetune] policy, when due)" if stored else ""))


@hookimpl
def register_commands(cli: click.Group) -> None:
    """`review`."""
    cli.add_command(review)
