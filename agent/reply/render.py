"""Terminal rendering of replies, plugin lists, logs and evaluation reports (rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from agent.reply.agent import Reply


def reply_lines(reply: "Reply", sources: bool = True) -> list[str]:
    """A reply as rich-markup lines: the answer, then what the model did."""
    from rich.markup import escape

    lines = [escape(reply.text)]
    if reply.turn_id is None:  # not a model turn (e.g. "/use NAME")
        return lines
    meta = [escape(reply.plugin or "-")]
    if reply.fallback_reason:
        meta.append(f"[yellow]fallback: {escape(reply.fallback_reason)}[/] (best guess {escape(reply.label or '')} {reply.confidence:.2f})")
    elif reply.label:
        meta.append(f"{escape(reply.label)} {reply.confidence:.2f}")
    if reply.turn_id is not None:
        meta.append(f"turn {reply.turn_id}")
    meta.append(f"{reply.timings_ms.get('total', 0):.0f} ms")
    shown = extras_lines(reply)
    lines.append("[dim]" + " · ".join(meta) + "[/]" + "".join(f" {text}" for _, kind, text in shown if kind == "meta"))
    lines += [f"  {text}" for _, kind, text in shown if kind != "meta"]
    if sources:
        for h in reply.hits:
            lines.append(f"[dim]  {h['score']:.2f} {escape(h['id'])}: {escape(h['text'])}[/]")
    for name, note in reply.annotations.items():
        lines.append(f"[dim]  {escape(name)}: {escape(_annotation(note))}[/]")
    for warning in reply.warnings:
        lines.append(f"[yellow]  {escape(warning)}[/]")
    return lines


def extras_lines(reply: "Reply") -> list[tuple[str, str, str]]:
    """(plugin, kind, rich markup) lines that show the reply's extras: a plugin's `format_extras` hook, else
    one 'plugin: key value' line each; kind 'meta' belongs on the reply's meta line."""
    from rich.markup import escape

    from agent.plugin.manager import call_kinds

    out: list[tuple[str, str, str]] = []
    for plugin, extras in reply.extras.items():
        lines = call_kinds("format_extras", lambda name, exc: None, first=True, plugin=plugin, extras=extras) \
            if isinstance(extras, dict) else None  # one that raises leaves the default lines
        if lines is None:
            lines = [f"{escape(plugin)}: {escape(str(k))} {escape(_short(v))}" for k, v in (extras or {}).items()]
        out += [(plugin, *line) if isinstance(line, tuple) else (plugin, "extra", str(line)) for line in lines]
    return out


def _short(value: Any, limit: int = 120) -> str:
    """A value on one line, cut to `limit` characters."""
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _annotation(note: Any) -> str:
    """An observer's note in one line: 'label 0.93' first, other keys after."""
    if not isinstance(note, dict):
        return str(note)
    conf = note.get("confidence")
    head = f"{note['label']} {conf:.2f}" if "label" in note and isinstance(conf, (int, float)) else ""
    rest = ", ".join(f"{k}={v}" for k, v in note.items() if not head or k not in ("label", "confidence"))
    return " ".join(x for x in (head, rest) if x)


def cells(*values: Any) -> list[Any]:
    """Table cells as plain text: data is never read as rich markup."""
    from rich.text import Text

    return [Text(str(v)) for v in values]


def print_reply(console: "Console", reply: "Reply", sources: bool = True) -> None:
    """Print a reply."""
    for line in reply_lines(reply, sources):
        console.print(line, highlight=False)


def plugins_table(rows: list[dict[str, Any]]) -> Any:
    """The `agent plugins` table."""
    from rich.table import Table

    table = Table(title="plugins")
    for col in ("name", "role", "labels", "examples", "corpus", "model"):
        table.add_column(col, overflow="fold", no_wrap=col != "model")
    for r in rows:
        table.add_row(*cells(r["name"], r["role"], r["labels"], r["examples"], r["corpus"], r["model"]))
    return table


def short_path(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    from pathlib import Path

    p = Path(path)
    return str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else path


def turns_table(rows: list[dict[str, Any]]) -> Any:
    """The `agent logs` table."""
    from rich.table import Table

    table = Table(title="turns (newest first)")
    for col in ("turn", "when (UTC)", "plugin", "label", "conf", "text", "fallback"):
        table.add_column(col, overflow="fold", no_wrap=col in ("turn", "conf"))
    for r in rows:
        conf = "" if r["confidence"] is None else f"{r['confidence']:.2f}"
        when = r["created_at"][5:16].replace("T", " ")
        table.add_row(*cells(r["id"], when, r["plugin"] or "", r["label"] or "", conf, r["text"], r["fallback_reason"] or ""))
    return table


def eval_tables(report: dict[str, Any], worst: int = 15) -> list[Any]:
    """Summary, the weakest labels, and the most confused pairs."""
    from rich.table import Table

    summary = Table(title="evaluation")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key in ("n", "accuracy", "macro_f1", "oos_recall", "oos_precision", "in_scope_accuracy", "fallback_rate",
                "seconds", "rows_per_second", "model"):
        if key in report:
            summary.add_row(*cells(key, report[key]))
    if "noisy" in report:
        for key in ("accuracy", "macro_f1"):
            summary.add_row(*cells(f"{key} with {report['noisy']['noise']:.0%} noise", report["noisy"][key]))
    labels = Table(title=f"per label (weakest {worst} by F1)")
    for col in ("label", "precision", "recall", "f1", "support"):
        labels.add_column(col, justify="left" if col == "label" else "right")
    ranked = sorted(report["per_label"].items(), key=lambda kv: kv[1]["f1"])[:worst]
    for label, s in ranked:
        labels.add_row(*cells(label, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", s["support"]))
    confused = Table(title="most confused (gold -> predicted)")
    for col in ("gold", "predicted", "count"):
        confused.add_column(col)
    for c in report["confused"]:
        confused.add_row(*cells(c["gold"], c["predicted"], c["count"]))
    return [summary, labels, confused]
