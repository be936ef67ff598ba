"""`agent alerts`: the webhooks and commands that receive alerts and handoffs, and what was delivered to them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click

from agent.cli.util import make_agent, make_settings, note

FAILING = "(state IN ('failed', 'rejected') OR state IN ('queued', 'sending') AND attempts > 0)"


@click.group()
def alerts() -> None:
    """Send alerts and handoffs to webhooks (signed JSON, retried) and commands (JSON on stdin); see what was sent."""


@alerts.group()
def webhook() -> None:
    """Webhooks: each new alert and handoff is POSTed as JSON (signed with the secret, when given)."""


@alerts.group()
def command() -> None:
    """Commands: a shell line run for each new alert and handoff, with the event JSON on stdin (for mail or chat tools)."""


PLUGIN = click.option("--plugin", "-p", help="Only this plugin's events (default: every plugin's).")
FORMAT = click.option("--format", "fmt", type=click.Choice(["json", "slack"]), default="json", show_default=True,
                      help='The body: the event as JSON, or a chat message {"text": "..."} (Slack and compatible webhooks).')


@webhook.command("add")
@click.argument("url")
@click.option("--secret", help="Sign each body: X-Agent-Signature: sha256=HMAC-SHA256(secret, body), hex.")
@PLUGIN
@FORMAT
@click.pass_context
def webhook_add(ctx: click.Context, url: str, secret: str | None, plugin: str | None, fmt: str) -> None:
    """POST every new alert and handoff to URL (http or https)."""
    _add(ctx, "webhook", url, plugin, fmt, secret)


@command.command("add")
@click.argument("line", metavar="COMMAND")
@PLUGIN
@FORMAT
@click.pass_context
def command_add(ctx: click.Context, line: str, plugin: str | None, fmt: str) -> None:
    """Run COMMAND (a shell line, quoted) for every new alert and handoff, the event on stdin; exit status 0 is delivered."""
    _add(ctx, "command", line, plugin, fmt, None)


def _add(ctx: click.Context, kind: str, target: str, plugin: str | None, fmt: str, secret: str | None) -> None:
    """Store the outlet (a refused target stores nothing) and say what it will receive."""
    from agent.outlets.targets import add, check_target

    check_target(kind, target)
    agent = make_agent(ctx)
    if plugin and plugin not in {m.name for m in agent.manifests}:
        note(f"no plugin named '{plugin}' is installed now; its events reach this {kind} once it is")
    outlet_id = add(agent.store, kind, target, secret=secret, plugin=plugin, fmt=fmt)
    whose = f"plugin {plugin}'s" if plugin else "every plugin's"
    click.echo(f"{kind} {outlet_id} added: {whose} alerts and handoffs go to {target}"
               + (" (signed)" if secret else "") + (", as chat messages" if fmt == "slack" else ""))


def _lister(kind: str) -> click.Command:
    """`agent alerts KIND list`."""

    @click.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
    @click.pass_context
    def listing(ctx: click.Context, as_json: bool) -> None:
        from agent.outlets.declared import declare
        from agent.outlets.targets import active

        agent = make_agent(ctx)
        declare(agent.store, agent.manifests)
        rows = active(agent.store, kind)
        if as_json:
            click.echo(json.dumps([{**r, "signed": bool(r["signed"])} for r in rows], ensure_ascii=False, indent=2))
        elif not rows:
            click.echo(f"no {kind}s; add one with `agent alerts {kind} add`")
        for r in [] if as_json else rows:
            click.echo(f"{r['id']:>4}  {r['plugin'] or 'all':<18} {r['format']:<6} {'signed' if r['signed'] else 'unsigned':<9}"
                       f"{r['target']}" + (f"  (declared in {r['source']})" if r["source"] else ""))

    listing.help = f"The {kind}s in use: id, whose events (plugin or all), format, signed, {'URL' if kind == 'webhook' else 'command'}."
    return listing


def _remover(kind: str) -> click.Command:
    """`agent alerts KIND remove ID`."""

    @click.command("remove")
    @click.argument("outlet_id", metavar="ID", type=int)
    @click.pass_context
    def removing(ctx: click.Context, outlet_id: int) -> None:
        from agent.outlets.targets import remove

        row = remove(_store(ctx), outlet_id, kind)
        click.echo(f"{kind} {outlet_id} removed ({row['target']}); what it had still to send is cancelled")

    removing.help = f"Stop sending to {kind} ID (see `agent alerts {kind} list`); its queued deliveries are cancelled."
    return removing


for _group, _kind in ((webhook, "webhook"), (command, "command")):
    _group.add_command(_lister(_kind))
    _group.add_command(_remover(_kind))


@alerts.command()
@click.option("--failed", is_flag=True, help="Only those not delivered after an attempt: retrying, failed or rejected.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1), help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON, each with its attempts.")
@click.pass_context
def deliveries(ctx: click.Context, failed: bool, limit: int, as_json: bool) -> None:
    """Deliveries, newest first, with every attempt: when, the HTTP status or exit code, the error, how long it took."""
    store = _store(ctx)
    rows = store.query("SELECT d.id, d.uid, d.outlet_id, o.kind, o.target, d.event, d.plugin, d.state, d.attempts, d.next_at, "
                       "d.created_at, d.delivered_at, d.last_error FROM deliveries d JOIN outlets o ON o.id = d.outlet_id "
                       f"{'WHERE ' + FAILING if failed else ''} ORDER BY d.id DESC LIMIT ?", [limit])
    for r in rows:
        r["next_at"] = _iso(r["next_at"])
        r["tries"] = store.query("SELECT at, ok, status, error, ms FROM delivery_attempts WHERE delivery_id = ? ORDER BY id", [r["id"]])
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif not rows:
        click.echo("no failed deliveries" if failed else "no deliveries yet")
    for r in [] if as_json else rows:
        _print_delivery(r)


def _print_delivery(r: dict[str, Any]) -> None:
    """One delivery and its attempts, as lines."""
    when = {"queued": f", next try {r['next_at']}", "delivered": f" {r['delivered_at']}"}.get(r["state"], "")
    click.echo(f"{r['id']:>6}  {r['event']} from {r['plugin'] or 'the agent'} to {r['kind']} {r['outlet_id']} ({r['target']}): "
               f"{r['state']}{when}, {r['attempts']} attempt(s)")
    for i, t in enumerate(r["tries"], start=1):
        status = "" if t["status"] is None else f"{t['status']} "
        click.echo(f"        {i}. {t['at']}  {'ok' if t['ok'] else 'failed'}  {status}{t['error'] or ''}  {t['ms']:.0f} ms")
    if r["state"] in ("failed", "rejected", "cancelled") and r["last_error"]:
        click.echo(f"        {r['state']}: {r['last_error']}")


@alerts.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every failed and rejected delivery.")
@click.option("--wait", default=10.0, show_default=True, type=click.FloatRange(0), help="Seconds to wait for them to be sent.")
@click.pass_context
def retry(ctx: click.Context, ids: tuple[int, ...], every: bool, wait: float) -> None:
    """Queue failed or rejected deliveries (IDS, or --all) again, and send what is due, waiting up to --wait seconds."""
    import time

    from agent.outlets.deliverer import delivering

    if bool(ids) == every:
        raise click.UsageError("give the delivery IDS to retry (see `agent alerts deliveries --failed`), or --all")
    store = _store(ctx)
    where, args = ("", []) if every else (f"AND id IN ({', '.join('?' * len(ids))})", list(ids))
    count = store.transaction(lambda conn: conn.execute(
        f"UPDATE deliveries SET state = 'queued', next_at = ? WHERE state IN ('failed', 'rejected') {where}", [time.time(), *args]).rowcount)
    click.echo(f"{count} deliver{'y' if count == 1 else 'ies'} queued again")
    with delivering(make_settings(ctx)) as deliverer:
        deliverer.drain(wait)
    states = store.query("SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state ORDER BY state")
    click.echo("deliveries: " + ", ".join(f"{s['n']} {s['state']}" for s in states) + " (agent alerts deliveries)")


def _store(ctx: click.Context) -> Any:
    """The home's database (its tables made, when new)."""
    from agent.store import Store

    return Store(make_settings(ctx).db_path)


def _iso(epoch: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC, to the second; None stays None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
