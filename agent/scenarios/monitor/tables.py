"""The monitor's database tables (a migration of the monitor kind)."""

from __future__ import annotations

from typing import Any


def m007_monitor(db: Any) -> None:
    """The sentiment monitor: its runs, every scored feed item, each judged window, and the alerts raised."""
    db["monitor_runs"].create(
        {"id": int, "plugin": str, "label": str, "source": str, "started_at": str, "finished_at": str, "status": str, "items": int,
         "bad_lines": int, "alerts": int, "seconds": float, "items_per_s": float, "report": str}, pk="id")
    db["feed_items"].create(
        {"id": int, "run_id": int, "plugin": str, "source": str, "line": int, "ts": float, "text": str, "label": str,
         "confidence": float, "watched": float, "topic": str, "topic_score": float}, pk="id")
    db["feed_items"].create_index(["run_id", "topic"])
    db["monitor_windows"].create(
        {"id": int, "run_id": int, "plugin": str, "topic": str, "start": float, "end": float, "n": int, "hits": int,
         "share": float, "baseline": float, "z": float, "state": str}, pk="id")
    db["monitor_windows"].create_index(["run_id", "topic", "start"])
    db["alerts"].create(
        {"id": int, "run_id": int, "plugin": str, "topic": str, "label": str, "raised_at": str, "window_start": float,
         "window_end": float, "n": int, "hits": int, "share": float, "baseline": float, "z": float, "message": str}, pk="id")
    db["alerts"].create_index(["run_id"])
    db["monitor_runs"].create_index(["plugin"])
