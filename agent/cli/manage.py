"""Commands that manage plugins, indexes, logs and evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from agent.cli.util import console, escape, make_agent, make_settings, note
from agent.errors import AgentError
from agent.plugin.hookspecs import hookimpl


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List plugins with their labels, data sizes and model state, and why any was skipped."""
    from agent.plugin.inventory import summarize

    agent = make_agent(ctx)
    rows, skipped = summarize(agent.manifests, agent.settings, agent.hooks), [(str(s.path), s.reason) for s in agent.skipped]
    ok = [r for r in rows if "error" not in r]
    skipped += [(r["folder"], r["error"]) for r in rows if "error" in r]
    if as_json:
        click.echo(json.dumps({"plugins": ok, "skipped": [{"folder": f, "reason": r} for f, r in skipped]}, indent=2))
        return
    from agent.reply.render import plugins_table, short_path

    out = console()
    out.print(plugins_table(ok))
    for r in ok:
        source = r["source"].replace(r["folder"], short_path(r["folder"]))
        hooks = f"\n  hooks: {', '.join(r['hooks'])}" if r["hooks"] else ""
        out.print(f"[bold]{escape(r['name'])}[/] from {escape(source)}\n"
                  f"  labels: {escape(', '.join(r['label_names']) or '-')}{escape(hooks)}", highlight=False)
    for folder, reason in skipped:
        out.print(f"[red]skipped[/] {escape(folder)}: {escape(reason)}", highlight=False)


@click.group()
def index() -> None:
    """Build FAISS indexes."""


@index.command("build")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Rebuild even when the saved index is fresh.")
@click.pass_context
def index_build(ctx: click.Context, names: tuple[str, ...], force: bool) -> None:
    """Build (or check) the indexes and heads of the named plugins, or of all of them."""
    agent = make_agent(ctx)
    known = {m.name: m for m in agent.manifests if m.examples or any(m.labels.values())}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise AgentError(f"no plugin with data named {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    failed = 0
    for name in names or tuple(known):
        if force:
            shutil.rmtree(agent.settings.index_root / name, ignore_errors=True)
        try:
            rt = agent.load_runtime(known[name])
        except AgentError as exc:
            failed += 1
            click.secho(f"{name}: failed: {exc}", err=True, fg="red")
            continue
        corpus = rt.corpus_index.index.ntotal if rt.corpus_index else 0
        click.echo(f"{name}: {rt.examples_index.index.ntotal} examples, {corpus} corpus entries, model {rt.model_state}"
                   f" -> {rt.index_dir}")
    if failed:
        raise AgentError(f"{failed} plugin(s) failed to build; fix the files named above")


@click.group(invoke_without_command=True)
@click.option("-q", "--query", help="Full-text search in what was said and answered.")
@click.option("-c", "--conversation", help="Only this conversation.")
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many turns.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON lines.")
@click.pass_context
def logs(ctx: click.Context, query: str | None, conversation: str | None, limit: int, as_json: bool) -> None:
    """List and search logged turns; `agent logs export` writes them all as JSONL."""
    if ctx.invoked_subcommand:
        return
    from agent.reply.render import turns_table

    rows = make_agent(ctx).store.turns(query=query, conversation=conversation, limit=limit)
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False))
    elif not rows:
        click.echo("no turns match" if query or conversation else "no turns logged yet; try: agent ask \"...\"")
    else:
        console().print(turns_table(rows))


@logs.command("export")
@click.argument("output", type=click.Path(dir_okay=False, allow_dash=True), default="-")
@click.pass_context
def logs_export(ctx: click.Context, output: str) -> None:
    """Write every turn (with predictions, hits, feedback) as JSON lines to OUTPUT (default stdout)."""
    store = make_agent(ctx).store
    with click.open_file(output, "w", encoding="utf-8") as fh:
        n = 0
        for turn in store.export():
            fh.write(json.dumps(turn, ensure_ascii=False) + "\n")
            n += 1
    if output != "-":
        click.echo(f"exported {n} turns to {output}")


@logs.command("redact")
@click.argument("exports", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def logs_redact(ctx: click.Context, exports: tuple[Path, ...]) -> None:
    """Redact again every stored text (and the JSONL EXPORTS named) with today's redaction; safe to run twice."""
    from agent.text.scrub import scrub_export, scrub_home

    agent = make_agent(ctx)
    counts = scrub_home(agent.store, agent.settings.models_root, agent.privacy)
    counts.update({str(path): scrub_export(path) for path in exports})
    click.echo(", ".join(f"{where} {n}" for where, n in counts.items()) + f" changed; integrity check: {agent.store.integrity()}")


@click.command("new-plugin")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--role", type=click.Choice(["responder", "observer"]), default="responder", show_default=True,
              help="responder answers turns; observer labels every turn.")
@click.option("--examples", type=click.Path(dir_okay=False, path_type=Path), help="Labelled CSV/JSONL to learn from.")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV label,description: the labels, described in one line each (enough to start, zero-shot).")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--faq", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV/JSONL of questions and answers (and ids, labels); it may be the --examples file.")
@click.option("--faq-question-column", metavar="NAME", help="The FAQ's question column  [default: question, in any case]")
@click.option("--faq-answer-column", metavar="NAME", help="The FAQ's answer column  [default: answer, in any case]")
@click.option("--faq-id-column", metavar="NAME",
              help="The FAQ's id column  [default: id, in any case; without one, ids are faq-0001, faq-0002, ...]")
@click.option("--faq-label-column", metavar="NAME",
              help="The FAQ's label column  [default: --label-column when --faq is the --examples file, else label; optional]")
@click.option("--name", help="Plugin name (default: the folder name).")
@click.option("--force", is_flag=True, help="Write into a non-empty folder.")
@click.option("--no-build", is_flag=True, help="Do not build the index and head now.")
@click.option("--from", "source", metavar="PLUGIN", help="Copy this plugin (a bundled one, say) to edit it.")
@click.pass_context
def new_plugin(ctx: click.Context, folder: Path, role: str, examples: Path | None, labels: Path | None, text_column: str,
               label_column: str, faq: Path | None, faq_question_column: str | None, faq_answer_column: str | None,
               faq_id_column: str | None, faq_label_column: str | None, name: str | None, force: bool, no_build: bool,
               source: str | None) -> None:
    """Create a working plugin in FOLDER: from your labels and examples, or a commented sample to edit.

    A bare NAME (no '/') goes to the plugins folder of the home, where the agent finds it.
    """
    from shlex import quote

    from agent.plugin.loaded import example_rows
    from agent.plugin.scaffold import FaqColumns, scaffold, slug

    settings = make_settings(ctx)
    if len(folder.parts) == 1 and not folder.exists():
        folder = settings.home / "plugins" / slug(str(folder))
    plugin_name = slug(name or folder.name)
    agent = make_agent(ctx)
    taken = [m.source for m in agent.manifests if m.name == plugin_name and m.folder.resolve() != folder.resolve()]
    taken += [str(s.path) for s in agent.skipped if s.name == plugin_name and Path(s.path).resolve() != folder.resolve()]
    if taken:
        raise AgentError(f"a plugin named '{plugin_name}' already exists ({taken[0]}); "
                         + ("pass another --name" if name else "choose another folder name or pass --name"))
    if plugin_name != (name or folder.name):
        note(f"the plugin is named '{plugin_name}' (letters, digits, '_' and '-' only)")
    if source is not None:
        from agent.plugin.discovery import plugin_folder
        from agent.plugin.scaffold import copy_plugin

        if examples or labels or faq:
            raise click.UsageError("--from copies a whole plugin; it does not go with --examples, --labels or --faq")
        manifest = copy_plugin(plugin_folder(settings, source), folder, plugin_name, force)
    else:
        faq_columns = FaqColumns(faq_question_column, faq_answer_column, faq_id_column, faq_label_column)
        if faq is None and faq_columns != FaqColumns():
            raise click.UsageError("the --faq-*-column options name columns of the --faq file; add --faq FILE")
        manifest = scaffold(folder, role, name, examples, labels, faq, text_column, label_column, force, faq_columns)
    click.echo(f"wrote {short(manifest.parent)}/: {', '.join(sorted(p.name for p in manifest.parent.iterdir()))}")
    if not no_build:
        rt = make_agent(ctx).load_runtime(manifest)
        rows = len(example_rows(rt.manifest))
        click.echo(f"{rt.name}: {len(rt.labels)} labels, {rows} examples + {len(rt.examples) - rows} label descriptions,"
                   f" model {rt.model_state}")
    found = any(manifest.parent.resolve().parent == p for p in settings.search_paths())
    env = "" if found else f"AGENT_PLUGINS_PATH={manifest.parent.resolve().parent} "
    plugin = plugin_name
    tests = f"\n  python -m pytest {quote(short(manifest.parent))}" if any(manifest.parent.glob("test_*.py")) else ""
    click.echo(f"next: edit {quote(short(manifest))}, then\n  {env}agent plugins\n  {env}agent ask --plugin {plugin} \"...\""
               + tests)


def short(path: Path) -> str:
    """A path relative to the working directory when it lies below it."""
    from agent.reply.render import short_path

    return short_path(str(Path(path).resolve()))


@click.command("eval")
@click.argument("folder", metavar="PLUGIN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Labelled CSV/JSONL.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True), help="Write the report as JSON.")
@click.option("--noise", type=click.FloatRange(0.0, 0.5), default=0.0, show_default=True,
              help="Also evaluate on a copy of the data with this share of characters perturbed (typos, casing).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise.")
@click.pass_context
def eval_cmd(ctx: click.Context, folder: Path, data: Path, text_column: str, label_column: str, json_out: str | None,
             noise: float, seed: int) -> None:
    """Evaluate PLUGIN (a folder, or a plugin's name) on labelled data: accuracy, macro-F1, per-label scores, confusions."""
    from agent.learn.evaluate import evaluate
    from agent.plugin.data import read_rows
    from agent.plugin.discovery import plugin_folder
    from agent.reply.render import eval_tables

    if json_out and json_out != "-" and not Path(json_out).resolve().parent.is_dir():
        raise click.BadParameter(f"folder {Path(json_out).parent} does not exist", param_hint="--json")
    rows = read_rows(data, [text_column, label_column], "pass --text-column / --label-column to name the columns")
    if not rows:
        raise AgentError(f"{data}: no rows to evaluate")
    runtime = make_agent(ctx).load_runtime(plugin_folder(make_settings(ctx), folder))
    note(f"evaluating {runtime.name} ({runtime.model_state}) on {len(rows)} rows")
    foreign = sorted({r[label_column] for r in rows} - set(runtime.labels) - {"oos"})
    if foreign:
        note(f"labels in {data} that the plugin does not have (always counted wrong): {', '.join(foreign)}")
    texts, gold = [r[text_column] for r in rows], [r[label_column] for r in rows]
    report = evaluate(runtime, texts, gold)
    report.update({"plugin": runtime.name, "data": str(data)})
    if noise:
        from agent.text.noise import noisy

        noisy_report = evaluate(runtime, noisy(texts, noise, seed), gold)
        report["noisy"] = {"noise": noise, "seed": seed, **{k: noisy_report[k] for k in ("n", "accuracy", "macro_f1")}}
    if json_out:
        with click.open_file(json_out, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(report, indent=2) + "\n")
    if json_out != "-":
        out = console()
        for table in eval_tables(report):
            if table.row_count:
                out.print(table)
    if json_out and json_out != "-":
        click.echo(f"wrote {json_out}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """`plugins`, `index`, `logs`, `new_plugin`, `eval_cmd`."""
    cli.add_command(plugins)
    cli.add_command(index)
    cli.add_command(logs)
    cli.add_command(new_plugin)
    cli.add_command(eval_cmd)
