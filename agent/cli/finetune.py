"""`agent finetune PLUGIN_DIR`: train, evaluate, promote; `--rollback`; `--versions`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from agent.cli.util import console, escape, make_settings, note
from agent.plugin.hookspecs import hookimpl


@click.command()
@click.argument("plugin_dir", metavar="PLUGIN", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--mode", type=click.Choice(["shared", "full", "lora", "head"]),
              help="shared (the default): the home's one encoder, trained for every plugin, no extra pass per turn; "
                   "full: the plugin's own copy of all weights; lora: its own adapters (peft); head: frozen encoder. "
                   "full and lora cost one more encoder pass on each turn the plugin sees.")
@click.option("--device", "device_opt", type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where to train (default: the global --device; auto = CUDA when present).")
@click.option("--epochs", type=click.FloatRange(0.05, 200), help="Passes over the training rows (default: by data size).")
@click.option("--max-minutes", type=click.FloatRange(0.1), help="Time limit for training (default 30 on a CPU).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (batches, initialisation).")
@click.option("--lr", type=click.FloatRange(1e-7, 1.0), help="Encoder learning rate (default 1.5e-4 in mode shared, 8e-5 in full).")
@click.option("--holdout", type=click.FloatRange(0.0, 0.5), default=0.1, show_default=True,
              help="Share of the examples held out to compare versions on (chosen by text hash, stable).")
@click.option("--tolerance", type=click.FloatRange(0.0, 1.0), default=0.01, show_default=True,
              help="How much lower held-out accuracy may be and still promote.")
@click.option("--noise", type=click.FloatRange(0.0, 0.5), default=0.0, show_default=True,
              help="Also train on a copy of each row with this share of characters perturbed (typos, casing).")
@click.option("--force", is_flag=True, help="Promote even when the candidate is worse.")
@click.option("--rollback", is_flag=True, help="Switch back to the previously promoted version and exit.")
@click.option("--versions", "list_versions", is_flag=True, help="List the versions and exit.")
@click.option("--accept-threshold", "accept_th", is_flag=True,
              help="Use the current version's suggested min_confidence instead of the manifest's, and exit.")
@click.option("--reject-threshold", "reject_th", is_flag=True, help="Go back to the manifest's min_confidence, and exit.")
@click.option("--due", is_flag=True, help="Run every plugin (or PLUGIN) whose [finetune] policy is due, as a cron job would.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def finetune(ctx: click.Context, plugin_dir: Path | None, device_opt: str | None, rollback: bool, list_versions: bool,
             accept_th: bool, reject_th: bool, due: bool, as_json: bool, **kw: Any) -> None:
    """Fine-tune PLUGIN (a folder, or a plugin's name) from its data and the turns people labelled; promote it
    if it is not worse. Versions are written to HOME/models/NAME/, never into the plugin folder.
    With --due, every plugin whose own [finetune] policy asks for a run now."""
    from agent.learn import finetune as ft
    from agent.plugin.discovery import plugin_folder

    settings = make_settings(ctx)
    chosen = [flag for flag, on in (("--due", due), ("--accept-threshold", accept_th), ("--reject-threshold", reject_th),
                                    ("--rollback", rollback), ("--versions", list_versions)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} do different things: use one of them at a time")
    if due:
        _run_due(settings, plugin_dir, ft.Options(device=device_opt or ctx.obj["device"], **kw), as_json)
        return
    if plugin_dir is None:
        raise click.UsageError("name a plugin (a folder or a plugin's name), or pass --due to run every due plugin")
    plugin_dir = plugin_folder(settings, plugin_dir)
    if accept_th or reject_th:
        _threshold(settings, plugin_dir, accept_th, as_json)
        return
    if rollback or list_versions:
        _versions_only(settings, plugin_dir, rollback, as_json)
        return
    opts = ft.Options(device=device_opt or ctx.obj["device"], **kw)
    with _Bar(enabled=not as_json) as bar:
        try:
            result = ft.finetune(plugin_dir, settings, opts, progress=bar.update, notify=bar.note)
        except KeyboardInterrupt:
            raise click.ClickException("cancelled; nothing was promoted and the current model is unchanged") from None
    if result.status == "worker":  # an extra process of a multi-GPU launch: the main one reports
        return
    if as_json:
        click.echo(json.dumps(result.report, indent=2, default=str))
        return
    _print_result(result)


def _threshold(settings: Any, plugin_dir: Path, accept: bool, as_json: bool) -> None:
    """`--accept-threshold` / `--reject-threshold`."""
    from agent.learn import finetune as ft
    from agent.plugin import thresholds
    from agent.plugin.manifest import load_manifest

    manifest, versions = load_manifest(plugin_dir), ft.plugin_versions(settings, plugin_dir)
    if accept:
        data = thresholds.accept(versions, manifest.thresholds.min_confidence)
        message = (f"{manifest.name}: min_confidence {data['min_confidence']:g} (suggested by {data['version']}; the "
                   f"manifest says {data['manifest']:g}); running chats use it from their next turn")
    else:
        data = {"removed": thresholds.reject(versions), "min_confidence": manifest.thresholds.min_confidence}
        message = f"{manifest.name}: min_confidence {data['min_confidence']:g}, the manifest's" + \
            ("" if data["removed"] else " (no accepted threshold to remove)")
    click.echo(json.dumps(data, indent=2) if as_json else message)


def _run_due(settings: Any, plugin_dir: Path | None, opts: Any, as_json: bool) -> None:
    """`--due`: check each plugin's policy; fine-tune the due ones with the policy's mode and time limit."""
    from dataclasses import asdict

    from agent.errors import AgentError
    from agent.learn import finetune as ft
    from agent.learn import schedule
    from agent.plugin.discovery import discover, plugin_folder
    from agent.plugin.manifest import load_manifest
    from agent.store import Store, now

    if plugin_dir is not None:
        manifests, skipped = [load_manifest(plugin_folder(settings, plugin_dir))], []
    else:
        manifests, skipped = discover(settings)
    # a plugin whose plugin.toml does not load (a bad [finetune] table, say) is named, not silently left out
    store, rows = Store(settings.db_path), [{"plugin": s.name or str(s.path), "due": False, "reason": s.reason,
                                            "skipped": True} for s in skipped if not s.clash]
    try:
        for m in manifests:
            check = schedule.check(m, store, own_model=ft.finetuner_for(m) is not None)
            row = check.to_dict()
            if check.due:
                run_opts = ft.Options(**schedule.options_for(m.finetune, {**asdict(opts), "trigger": "policy"}))
                if not as_json:
                    note(f"{m.name}: {check.reason}; fine-tuning")
                started = now()
                try:
                    result = ft.finetune(m.folder, settings, run_opts, store=store, notify=None if as_json else note)
                except (AgentError, OSError, RuntimeError) as exc:  # this plugin's run failed: the others still run
                    schedule.record_failure(store, m.name, started, exc)
                    row.update({"version": None, "status": "failed", "seconds": None, "mode": None, "error": str(exc)})
                else:
                    row.update({"version": result.version, "status": result.status, "seconds": result.seconds,
                                "mode": result.plan.get("mode")})
            rows.append(row)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        outcome = "skipped" if r.get("skipped") else "not due" if not r["due"] else f"failed: {r['error']}" if r.get("error") else \
            f"{r['version']} {r['status']} ({r['mode']}, {r['seconds']} s)"
        console().print(f"{escape(r['plugin'])}: {outcome} — {escape(r['reason'])}")


def _versions_only(settings: Any, plugin_dir: Path, rollback: bool, as_json: bool) -> None:
    """`--rollback` and `--versions`."""
    from agent.learn import finetune as ft

    if rollback:
        before, after = ft.rollback(plugin_dir, settings, click.echo)
        click.echo(f"rolled back from {before} to {after}; running chats switch on their next turn")
        return
    rows = version_rows(ft.plugin_versions(settings, plugin_dir))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("version", "status", "mode", "device", "accuracy", "current then", "when")
    for r in rows:
        table.add_row(*(escape(str(r.get(k) if r.get(k) is not None else "-")) for k in
                        ("version", "status", "mode", "device", "accuracy", "current_accuracy", "finished_at")))
    console().print(table)


def version_rows(versions: Any) -> list[dict[str, Any]]:
    """One row per finished version, read from its report."""
    current, rows = versions.current(), []
    for name in versions.finished():
        try:
            rep = json.loads((versions.path(name) / "report.json").read_text())
        except (OSError, ValueError):
            rows.append({"version": name, "status": "no report"})
            continue
        if "row" in rep:  # a contributed fine-tuner's version says what to show
            rows.append({"version": name, "status": "current" if name == current else rep["status"], **rep["row"]})
            continue
        ev = rep["evaluation"]
        rows.append({"version": name, "status": "current" if name == current else rep["status"],
                     "mode": rep["run"]["mode"], "device": rep["run"]["device"],
                     "accuracy": ev["candidate"]["accuracy"],
                     "current_accuracy": ev["current"]["accuracy"] if ev["current"] else None,
                     "finished_at": rep["finished_at"][:16].replace("T", " ")})
    return rows


def _print_result(result: Any) -> None:
    """The outcome in a few lines."""
    rep, out = result.report, console()
    if "lines" in rep:  # a contributed fine-tuner's own summary
        for line in rep["lines"]:
            out.print(line)
        return
    ev, data = rep["evaluation"], rep["data"]
    color = "green" if result.status == "promoted" else "yellow"
    said = rep["decision"] if rep["decision"].startswith(("promoted", "not promoted")) else f"{result.status} — {rep['decision']}"
    out.print(f"[{color}]{escape(result.plugin)} {result.version}:[/] {escape(said)}")
    folds = ev.get("cross_validated")
    judged = f"judged by {folds['folds']}-fold cross-validation" if folds else f"{data['holdout_rows']} held out"
    out.print(f"mode {rep['run']['mode']} on {rep['run']['device']}, {rep['run']['seconds']} s; "
              f"{data['train_rows']} training rows ({data['log_rows']} from the log), {judged}")
    if data["new_labels"]:
        out.print(f"new labels: {escape(', '.join(data['new_labels']))}")
    if data["conflicts"]:
        out.print(f"{len(data['conflicts'])} conflicting labels resolved (see the report)")
    for d in ev["f1_drops"][:10]:
        out.print(f"[yellow]F1 dropped[/] {escape(d['label'])}: {d['current_f1']:.3f} → {d['candidate_f1']:.3f}")
    out.print(f"suggested min_confidence {ev['suggested_min_confidence']}; report: {escape(str(result.folder / 'report.md'))}")


class _Bar:
    """A rich progress bar fed by finetune()'s progress callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.progress, self.task, self.phase = enabled, None, None, None

    def __enter__(self) -> "_Bar":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False)
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def note(self, message: str) -> None:
        """A line above the bar."""
        if self.progress is not None:
            self.progress.console.print(f"[dim]… {escape(message)}[/]")
        else:
            note(message)

    def update(self, p: Any) -> None:
        """One progress report."""
        if self.progress is None:
            return
        info = f"{p.mode} on {p.device}" + (f"  loss {p.loss:.3f}" if p.loss is not None else "")
        if p.phase != self.phase:
            self.phase = p.phase
            self.task = self.progress.add_task(p.phase, total=p.total, info=info)
        self.progress.update(self.task, completed=p.step, total=p.total, info=info)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """`finetune`."""
    cli.add_command(finetune)
