"""`agent replay FILE`: replay logged or scripted conversations, report what changed, gate CI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from agent.cli.util import console, make_agent
from agent.plugin.hookspecs import hookimpl

EXIT_GATE = 1  # a --fail-under / --max-changed gate failed (errors in the command itself also exit 1)


@click.command()
@click.argument("source", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "yaml"]), help="Input format (default: from the suffix; stdin is JSONL).")
@click.option("--dry-run", is_flag=True, help="Leave the conversation log untouched (the run itself is still recorded).")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1024, show_default=True,
              help="Turns answered per batch (larger batches pad less).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: in this process; ray: Ray Data actors (pip install 'ray[data]').")
@click.option("--address", help="Ray cluster address for --engine ray (default: a local Ray).")
@click.option("--workers", type=click.IntRange(1, 1024), default=1, show_default=True, help="Ray actors for --engine ray.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True), help="Write the full report as JSON ('-' for stdout).")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as Markdown.")
@click.option("--results", type=click.Path(dir_okay=False), help="Write every replayed turn as JSONL (replay it later to compare).")
@click.option("--fail-under", type=click.FloatRange(0.0, 1.0), help="Exit 1 when accuracy against expectations is lower.")
@click.option("--max-changed", type=click.IntRange(min=0), help="Exit 1 when more turns than this changed against the log.")
@click.option("--show", type=click.IntRange(min=0), default=15, show_default=True, help="Rows shown per table on the terminal.")
@click.option("--runs", "list_runs", is_flag=True, help="List recent replay runs and exit.")
@click.pass_context
def replay(ctx: click.Context, source: str | None, list_runs: bool, json_out: str | None, markdown: Path | None,
           fail_under: float | None, max_changed: int | None, show: int, **kw: Any) -> None:
    """Replay conversations from SOURCE ('-' = stdin): an `agent logs export`, a script (JSONL/YAML) or a CSV of messages.

    Turns run in conversation order through the agent, in batches. The report gives accuracy
    against expectations per plugin and label, every turn that differs from what was logged or
    expected, latency and throughput. Bad lines are reported with their line numbers and skipped.
    """
    from agent.replay.run import ReplayOptions, gates

    agent = make_agent(ctx)
    if list_runs:
        _print_runs(agent.store.replay_runs())
        return
    if source is None:
        raise click.UsageError("give the file to replay (or '-' for stdin), or --runs")
    opts = ReplayOptions(source=source, **kw)
    _refuse_overwriting(source, [json_out, str(markdown) if markdown else None, opts.results])
    report = _run_with_progress(agent, opts)
    _write_reports(report, json_out, markdown, show)
    if not report.turns:
        click.secho(f"warning: no turn in {source} could be replayed", err=True, fg="yellow")
    failures = gates(report, fail_under, max_changed)
    for failure in failures:
        click.secho(f"FAILED: {failure}", err=True, fg="red", bold=True)
    if failures:
        ctx.exit(EXIT_GATE)


def _refuse_overwriting(source: str, outputs: list[str | None]) -> None:
    """An output file must not be the input: it would be emptied before it is read."""
    if source == "-" or not Path(source).exists():
        return
    for out in outputs:
        if out and out != "-" and Path(out).exists() and Path(out).resolve() == Path(source).resolve():
            raise click.UsageError(f"{out} is the file being replayed; write the report or results to another file")


def _run_with_progress(agent: Any, opts: Any) -> Any:
    """Replay with a progress bar on stderr when it is a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.replay.inputs import check_source, detect_format
    from agent.replay.run import count_lines, replay

    check_source(opts.source)
    detect_format(opts.source, opts.fmt)
    err = Console(stderr=True)
    total = count_lines(opts.source)
    columns = [TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"), TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("replay", total=total)
        return replay(agent, opts, progress=lambda line: bar.update(task, completed=line))


def _write_reports(report: Any, json_out: str | None, markdown: Path | None, show: int) -> None:
    """Terminal tables (stderr when the JSON goes to stdout), then the requested files."""
    from agent.replay.render import render_markdown, render_rich

    data = report.to_dict()
    if json_out == "-":
        from rich.console import Console

        out = Console(stderr=True, highlight=False)
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        out = console()
    for part in render_rich(report, show):
        out.print(part)
    if json_out and json_out != "-":
        Path(json_out).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        out.print(f"report written to {json_out}")
    if markdown:
        markdown.write_text(render_markdown(report), encoding="utf-8")
        out.print(f"Markdown report written to {markdown}")


def _print_runs(runs: list[dict[str, Any]]) -> None:
    """A table of recent replay runs."""
    from rich.table import Table

    t = Table("run", "started", "source", "engine", "status", "turns", "accuracy", "changed", "turns/s")
    for r in runs:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        t.add_row(str(r["id"]), (r["started_at"] or "")[5:16].replace("T", " "), Path(r["source"] or "").name,
                  r["engine"] + (" (dry)" if r["dry_run"] else ""),
                  (r["status"] or "")[:40], str(r["turns"] or 0), acc, f"{r['changed'] or 0}/{r['compared'] or 0}",
                  f"{r['turns_per_s'] or 0:.0f}")
    console().print(t if runs else "no replay runs yet")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """`replay`."""
    cli.add_command(replay)
