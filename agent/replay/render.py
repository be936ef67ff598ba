"""A replay report for people: rich tables on the terminal, and Markdown for files and CI pages."""

from __future__ import annotations

from typing import Any

from agent.replay.report import Report


def summary_rows(report: Report) -> list[tuple[str, str]]:
    """(what, value) lines of the headline figures."""
    s = report.summary()
    lat, batch = s["latency_ms"] or {}, s["batch_ms"] or {}
    acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.3f} ({s['passed']} of {s['expected']} turns with expectations)"
    return [
        ("run", f"{s['run']} ({s['engine']}{', dry run: log untouched' if s['dry_run'] else ''})"),
        ("turns", f"{s['turns']} in {s['conversations']} conversations; {s['fallbacks']} fell back"),
        ("accuracy", acc),
        ("changed", f"{s['changed']} of {s['compared']} turns compared with the log" if s["compared"] else "-"),
        ("bad lines / errors", f"{s['bad_lines']} / {s['errors']}"),
        ("speed", f"{s['turns_per_s'] or 0:.1f} turns/s ({s['seconds']:.1f} s)"),
        ("latency per turn (batch time shared out)", _pct(lat)),
        ("latency per batch", _pct(batch)),
        ("peak memory", f"{s['peak_rss_mb']:.0f} MB"),
    ]


def _pct(p: dict[str, float]) -> str:
    """'p50 1.2 · p95 3.4 · p99 5.6 ms'."""
    return " · ".join(f"{k} {p[k]:.1f}" for k in ("p50", "p95", "p99")) + " ms" if p else "-"


def diff_text(fields: dict[str, list[Any]]) -> str:
    """'label: card_lost → refund; answer: lost-1 → refund-2'."""
    return "; ".join(f"{k}: {_short(a)} → {_short(b)}" for k, (a, b) in fields.items())


def _short(value: Any, width: int = 48) -> str:
    """A value cut to width, None shown as '-'."""
    text = "-" if value is None else " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_rich(report: Report, show: int) -> list[Any]:
    """Rich renderables: summary, per-label accuracy, mismatches, changed turns, bad lines, errors."""
    from rich.table import Table

    out: list[Any] = []
    table = Table(title=f"replay of {_esc(report.source)}", show_header=False, title_justify="left")
    for what, value in summary_rows(report):
        table.add_row(what, _esc(value))
    out.append(table)
    labels = report.label_rows()
    if labels:
        t = Table("plugin", "expected label", "turns", "accuracy", title="accuracy per label (worst first)", title_justify="left")
        for r in labels[:show]:
            t.add_row(_esc(r["plugin"]), _esc(r["label"]), str(r["turns"]), f"{r['accuracy']:.3f}")
        out.append(t)
    for title, rows, head in diffs(report):
        if rows:
            out.append(_diff_table(title.lower(), rows, show, head))
    for title, rows, key in (("bad lines (skipped)", report.bad_lines, "reason"), ("turns that failed", report.errors, "error")):
        if rows:
            t = Table("line", key, title=f"{title}: {len(rows)}", title_justify="left")
            for r in rows[:show]:
                t.add_row(str(r["line"]), _esc(r[key]))
            out.append(t)
    return out


def diffs(report: Report) -> list[tuple[str, list[dict[str, Any]], str]]:
    """(title, rows, column head) of the two kinds of differing turns."""
    return [("Turns that missed their expectations", report.mismatches, "expected → got"),
            ("Turns that changed against the log", report.changed, "logged → now")]


def _diff_table(title: str, rows: list[dict[str, Any]], show: int, head: str) -> Any:
    """A table of turns with what differs."""
    from rich.table import Table

    more = f" (first {show} shown; all in --json / --markdown)" if len(rows) > show else ""
    t = Table("line", "conversation", "message", head, title=f"{title}: {len(rows)}{more}", title_justify="left")
    for r in rows[:show]:
        t.add_row(str(r["line"]), _esc(_short(r["conversation"], 20)), _esc(_short(r["text"], 40)), _esc(diff_text(r["fields"])))
    return t


def _esc(text: Any) -> str:
    """Data shown inside rich markup: brackets in messages are text, not styles."""
    from rich.markup import escape

    return escape(str(text))


def render_markdown(report: Report) -> str:
    """The whole report as Markdown."""
    lines = [f"# Replay of `{report.source}`", "", "| | |", "|---|---|"]
    lines += [f"| {what} | {_md(value)} |" for what, value in summary_rows(report)]
    labels = report.label_rows()
    if labels:
        lines += ["", "## Accuracy per plugin", "", "| plugin | turns | accuracy |", "|---|---|---|"]
        lines += [f"| {r['plugin']} | {r['turns']} | {r['accuracy']:.3f} |" for r in report.plugin_rows()]
        lines += ["", "## Accuracy per label (worst first)", "", "| plugin | label | turns | accuracy |", "|---|---|---|---|"]
        lines += [f"| {r['plugin']} | {r['label']} | {r['turns']} | {r['accuracy']:.3f} |" for r in labels]
    for title, rows, head in diffs(report):
        if rows:
            lines += ["", f"## {title}: {len(rows)}", "", f"| line | conversation | message | {head} |", "|---|---|---|---|"]
            lines += [f"| {r['line']} | {_md(r['conversation'])} | {_md(r['text'])} | {_md(diff_text(r['fields']))} |" for r in rows]
    for title, rows, key in (("Bad lines (skipped)", report.bad_lines, "reason"), ("Turns that failed", report.errors, "error")):
        if rows:
            lines += ["", f"## {title}: {len(rows)}", "", f"| line | {key} |", "|---|---|"]
            lines += [f"| {r['line']} | {_md(r[key])} |" for r in rows]
    return "\n".join(lines) + "\n"


def _md(text: Any) -> str:
    """A value safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")
