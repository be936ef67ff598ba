"""`agent monitor`: score a feed (file, stdin, or a file followed as it grows), raise spike alerts, report trends."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from agent.cli.util import console, make_agent, note

DRAIN_SECONDS = 2.0  # how long a run waits at its end for its alerts to be delivered


@click.command()
@click.argument("feed", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--plugin", "-p", "plugin_name", help="The monitoring plugin (default: the one with a [monitor] table).")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "csv"]), default="auto", show_default=True,
              help="Feed format (auto: by file name, else by the first line).")
@click.option("--follow", "-f", is_flag=True, help="Keep reading as the file grows, like tail -f (Ctrl-C stops).")
@click.option("--idle-exit", type=click.FloatRange(0.1), help="With --follow: stop after this many seconds without new lines.")
@click.option("--chats", is_flag=True, help="Take the logged chat turns the plugin observed as the feed.")
@click.option("--report", is_flag=True, help="Print per-topic trends and alerts of a run (the latest, or --run) and exit.")
@click.option("--run", "run_id", type=int, help="With --report: which run.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary (or the report) as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line: only bad lines, alerts and the summary.")
@click.pass_context
def monitor(ctx: click.Context, feed: Path | None, plugin_name: str | None, fmt: str, follow: bool,
            idle_exit: float | None, chats: bool, report: bool, run_id: int | None, as_json: bool, quiet: bool) -> None:
    """Score FEED (JSONL or CSV with text[,timestamp,source,topic]; '-' for stdin) and raise spike alerts.

    Every item is stored with its label, confidence and topic; each topic's windows are tested
    against its baseline and an alert is printed (and stored) once per episode. Malformed lines are
    reported with their line numbers and skipped.
    """
    if follow and feed is not None and str(feed) == "-":
        raise click.UsageError("--follow needs a file; stdin is read until it closes anyway")
    agent = make_agent(ctx)
    if report:
        _report(agent, plugin_name, run_id, as_json)
        return
    if (feed is None) == (not chats):
        raise click.UsageError("give a FEED file (or - for stdin), --chats, or --report")
    if idle_exit is not None and not follow:
        raise click.UsageError("--idle-exit only applies with --follow")
    from agent.scenarios.monitor.run import monitor_runtime

    runtime = monitor_runtime(agent, plugin_name)
    with _delivering(agent) as deliverer:  # alerts go to the outlets (agent alerts) while the feed is scored
        if chats:
            from agent.scenarios.monitor.run import chat_items, run_items

            items = chat_items(agent.store, runtime.name)
            summary = run_items(runtime, agent.store, items, "chat", on_alert=_alert_printer(as_json))
        else:
            summary = _watch(agent, runtime, feed, fmt, follow, idle_exit, quiet, as_json)
        if not deliverer.drain(DRAIN_SECONDS):
            note("some alerts are not delivered yet (a receiver is slow or down); they stay queued for the next "
                 "`agent monitor` or `agent serve` (see agent alerts deliveries)")
    if as_json:
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_summary(summary)
    if summary.bad_lines and not summary.items:
        raise click.ClickException(f"no line of the feed could be read ({summary.bad_lines} bad lines); see the messages above")


def _delivering(agent: Any) -> Any:
    """A Deliverer for the run, after the plugins' declared outlets ([[outlets]]) are brought in step."""
    from agent.outlets import declare, delivering

    declare(agent.store, agent.manifests)
    return delivering(agent.settings)


def _watch(agent: Any, runtime: Any, feed: Path, fmt: str, follow: bool, idle_exit: float | None, quiet: bool,
           as_json: bool) -> Any:
    """Run the monitor on a file or stdin, printing bad lines and alerts as they come (alerts on stderr with --json)."""
    from agent.scenarios.monitor.run import watch

    def on_bad(bad: Any) -> None:
        click.secho(f"{where}:{bad.line}: {bad.reason}; skipped", err=True, fg="yellow")

    def on_batch(summary: Any) -> None:
        if not quiet and sys.stderr.isatty():
            click.echo(f"\r… {summary.items:,} items, {summary.bad_lines} bad lines, {len(summary.alerts)} alerts, "
                       f"{summary.items_per_s:,.0f} items/s", err=True, nl=False)

    stdin = str(feed) == "-"
    where = "stdin" if stdin else str(feed)
    settings = agent.settings
    fh = sys.stdin.buffer if stdin else open(feed, "rb")
    try:
        summary = watch(runtime, agent.store, fh, None if stdin else feed, fmt=fmt, max_chars=settings.max_chars,
                        follow=follow, idle_exit=idle_exit, on_bad=on_bad, on_alert=_alert_printer(as_json), on_batch=on_batch)
    finally:
        if not stdin:
            fh.close()
        if not quiet and sys.stderr.isatty():
            click.echo("", err=True)
    return summary


def _alert_printer(to_stderr: bool) -> Any:
    """Prints an alert in red as it is raised (on stderr when stdout carries JSON)."""

    def on_alert(alert: dict[str, Any]) -> None:
        click.secho(f"ALERT {alert['id']}: {alert['message']}", fg="red", bold=True, err=to_stderr)

    return on_alert


def _print_summary(summary: Any) -> None:
    """One line of totals, then label and topic counts."""
    c = console()
    c.print(f"{summary.plugin}: {summary.items:,} items from {summary.source} in {summary.seconds:.1f} s "
            f"({summary.items_per_s:,.0f} items/s), {summary.bad_lines} bad lines skipped, {summary.windows} windows, "
            f"{len(summary.alerts)} alert(s); run {summary.run_id} (agent monitor --report --run {summary.run_id})"
            + (" [interrupted]" if summary.status == "interrupted" else ""))
    if summary.late:
        c.print(f"[yellow]{summary.late:,} items were older than the window being filled (the feed is not in time "
                "order) and were counted in it; sort the feed by timestamp for exact windows[/]")
    if summary.items:
        c.print("labels: " + ", ".join(f"{k} {v:,}" for k, v in summary.labels.most_common()))
        c.print("topics: " + ", ".join(f"{k} {v:,}" for k, v in summary.topics.most_common()))


def _report(agent: Any, plugin: str | None, run_id: int | None, as_json: bool) -> None:
    """The trends report of a run, as rich tables or JSON."""
    from agent.scenarios.monitor import report

    if as_json:
        run = report.run_row(agent.store, plugin, run_id)
        data = {"run": run, "topics": report.trends(agent.store, run["id"]), "alerts": report.alerts(agent.store, run["id"])}
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    report.print_report(console(), agent.store, plugin, run_id)
