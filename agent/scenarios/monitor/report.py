"""`agent monitor --report`: trends of one run over all topics and per topic (windows, shares, baseline, state), and its alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.errors import InputError
from agent.scenarios.monitor.config import ALL, series_name

if TYPE_CHECKING:
    from rich.console import Console

    from agent.store import Store

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """Shares from 0 to 1 as block characters, one per window."""
    return "".join(SPARK[min(int(v * len(SPARK)), len(SPARK) - 1)] for v in values)


def run_row(store: "Store", plugin: str | None, run_id: int | None) -> dict[str, Any]:
    """The chosen run (default: the latest, of `plugin` if given); InputError when there is none."""
    if run_id is not None:
        rows = store.query("SELECT * FROM monitor_runs WHERE id = ?", [run_id])
    elif plugin:
        rows = store.query("SELECT * FROM monitor_runs WHERE plugin = ? ORDER BY id DESC LIMIT 1", [plugin])
    else:
        rows = store.query("SELECT * FROM monitor_runs ORDER BY id DESC LIMIT 1")
    if not rows:
        raise InputError(f"no monitor run {run_id if run_id is not None else 'yet'} in {store.path}; "
                         "score a feed first: agent monitor FEED.jsonl")
    return rows[0]


def trends(store: "Store", run_id: int, last: int = 16) -> list[dict[str, Any]]:
    """One row per series, the all-topics one first, then each topic: items, watched share overall and in the
    latest window, baseline, state, sparkline, alerts."""
    totals = {r["topic"]: r for r in store.query(
        "SELECT topic, COUNT(*) AS items FROM feed_items WHERE run_id = ? GROUP BY topic", [run_id])}
    totals[ALL] = {"items": sum(r["items"] for r in totals.values())}
    windows: dict[str, list[dict[str, Any]]] = {}
    for w in store.query("SELECT * FROM monitor_windows WHERE run_id = ? ORDER BY start", [run_id]):
        windows.setdefault(w["topic"], []).append(w)
    alerts: dict[str, int] = {}
    for a in store.query("SELECT topic, COUNT(*) AS n FROM alerts WHERE run_id = ? GROUP BY topic", [run_id]):
        alerts[a["topic"]] = a["n"]
    out = []
    for topic in sorted(set(totals) | set(windows), key=lambda t: (t != ALL, t)):
        ws = windows.get(topic, [])
        if topic == ALL and not ws:
            continue  # a run stored before the all-topics series existed
        judged = [w for w in ws if w["state"] != "thin"]
        latest = ws[-1] if ws else None
        out.append({
            "topic": topic, "items": totals.get(topic, {}).get("items", 0), "windows": len(ws),
            "share": round(sum(w["hits"] for w in ws) / max(sum(w["n"] for w in ws), 1), 4),
            "latest": latest["share"] if latest else None, "baseline": latest["baseline"] if latest else None,
            "z": latest["z"] if latest else None, "state": latest["state"] if latest else "-",
            "trend": sparkline([w["share"] for w in judged[-last:]]), "alerts": alerts.get(topic, 0),
        })
    return out


def alerts(store: "Store", run_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The run's latest alerts, newest first."""
    return store.query("SELECT * FROM alerts WHERE run_id = ? ORDER BY id DESC LIMIT ?", [run_id, int(limit)])


def print_report(console: "Console", store: "Store", plugin: str | None, run_id: int | None) -> None:
    """Rich tables: the run, the per-topic trends, the alerts."""
    from rich.table import Table

    run = run_row(store, plugin, run_id)
    console.print(f"[bold]{run['plugin']}[/] run {run['id']} · {run['source']} · {run['status']} · "
                  f"{run['items'] or 0:,} items · {run['bad_lines'] or 0} bad lines · {run['alerts'] or 0} alerts · "
                  f"{run['items_per_s'] or 0:,.0f} items/s")
    label = run["label"] or "negative"
    table = Table(title=f"{label} share over all topics, then per topic; trend: the last 16 judged windows")
    for col in ("topic", "items", "share", "latest", "base", "z", "state", "trend", "alerts"):
        table.add_column(col, justify="left" if col in ("topic", "state", "trend") else "right", no_wrap=col == "trend")
    for r in trends(store, run["id"]):
        style = "bold red" if r["state"] in ("alert", "episode") else ("yellow" if r["state"] == "hot" else None)
        table.add_row(series_name(r["topic"]), f"{r['items']:,}", _pct(r["share"]), _pct(r["latest"]), _pct(r["baseline"]),
                      "-" if r["z"] is None else f"{r['z']:.1f}", r["state"], r["trend"], str(r["alerts"]), style=style,
                      end_section=r["topic"] == ALL)
    console.print(table)
    rows = alerts(store, run["id"])
    if rows:
        at = Table(title="alerts (newest first)")
        for col in ("id", "topic", "window start", "share", "baseline", "z", "items"):
            at.add_column(col)
        for a in rows:
            at.add_row(str(a["id"]), series_name(a["topic"]), _utc(a["window_start"]), _pct(a["share"]), _pct(a["baseline"]),
                       f"{a['z']:.1f}", f"{a['hits']}/{a['n']}", style="red")
        console.print(at)


def _pct(value: float | None) -> str:
    """0.123 -> '12%'; None -> '-'."""
    return "-" if value is None else f"{value:.0%}"


def _utc(epoch: float) -> str:
    """Epoch seconds as 'YYYY-MM-DD HH:MM' UTC."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M")
