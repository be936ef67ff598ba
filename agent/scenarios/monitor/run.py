"""`agent monitor`: feed -> batches -> scores -> database -> windows -> alerts."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from agent.errors import AgentError, InputError
from agent.outlets import publish
from agent.scenarios.monitor.config import ALL, OTHER, series_name
from agent.scenarios.monitor.feed import BOM, ROTATED, BadLine, FeedItem, Parser, raw_lines, sniff_format
from agent.scenarios.monitor.scorer import Score, Scorer
from agent.scenarios.monitor.trends import SpikeDetector, Window, Windower
from agent.text import guard

if TYPE_CHECKING:
    from agent.plugin.loaded import PluginRuntime
    from agent.store import Store

BATCH = 512  # items scored per encoder call when the feed keeps up
MAX_WAIT = 0.5  # seconds a partial batch waits for more items (stdin, --follow)


@dataclass
class Summary:
    """What one run did."""

    run_id: int
    plugin: str
    source: str
    items: int = 0
    bad_lines: int = 0
    windows: int = 0
    late: int = 0  # items older than the window being filled (a feed out of time order)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    labels: Counter = field(default_factory=Counter)
    topics: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    status: str = "running"

    @property
    def items_per_s(self) -> float:
        """Throughput of the run."""
        return round(self.items / self.seconds, 1) if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"run_id": self.run_id, "plugin": self.plugin, "source": self.source, "status": self.status,
                "items": self.items, "bad_lines": self.bad_lines, "windows": self.windows, "late": self.late,
                "alerts": self.alerts,
                "labels": dict(self.labels), "topics": dict(self.topics), "seconds": round(self.seconds, 2),
                "items_per_s": self.items_per_s}


class Monitor:
    """Scores items in batches, stores them, and judges each topic's windows (and all items') as they close."""

    def __init__(self, runtime: "PluginRuntime", store: "Store", source: str,
                 on_alert: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.runtime, self.store, self.on_alert = runtime, store, on_alert
        self.scorer = Scorer(runtime)
        self.config = self.scorer.config
        self.detector = SpikeDetector(self.config)
        self.windower = Windower(self.config.window, total=ALL)
        run_id = store.insert("monitor_runs", [{"plugin": runtime.name, "label": self.config.label, "source": source,
                                                "started_at": _iso(time.time()), "status": "running"}], ids=True)[0]
        self.summary = Summary(run_id, runtime.name, source)

    def process(self, items: list[FeedItem]) -> list[Score]:
        """Score, store and count a batch; windows it closes are judged (alerts stored and reported)."""
        self._refresh()
        scores = self.scorer.score([it.text for it in items], [it.topic for it in items])
        privacy = self.runtime.manifest.privacy
        rows = [{"run_id": self.summary.run_id, "plugin": self.runtime.name, "source": it.source, "line": it.line,
                 "ts": it.timestamp, "text": guard.redact_for(it.text, privacy)[0], "label": s.label,
                 "confidence": s.confidence, "watched": s.watched, "topic": s.topic, "topic_score": s.topic_score}
                for it, s in zip(items, scores)]
        self.store.insert("feed_items", rows, redacted=True)  # as the plugin's [privacy] says
        closed: list[Window] = []
        for it, s in zip(items, scores):
            closed += self.windower.add(it.timestamp, s.topic, s.label == self.config.label)
            self.summary.labels[s.label] += 1
            self.summary.topics[s.topic] += 1
        self.summary.items += len(items)
        self.summary.late = self.windower.late
        self._judge(closed)
        return scores

    def _refresh(self) -> None:
        """Pick up a newly promoted model between batches; one that fails to load is reported and skipped."""
        try:
            self.runtime.refresh()
        except AgentError as exc:
            if self.runtime.notify:
                self.runtime.notify(f"{self.runtime.name}: the new model could not be loaded ({exc}); "
                                    f"still using {self.runtime.model_state}")

    def _judge(self, windows: list[Window]) -> None:
        """Run the spike test on closed windows; store them and any alert."""
        alerts = [w for w in windows if self.detector.judge(w)]
        self.summary.windows += len(windows)
        rows = [{"run_id": self.summary.run_id, "plugin": self.runtime.name, **w.to_dict()} for w in windows]
        self.store.insert("monitor_windows", rows)
        for w in alerts:
            alert = self._alert(w)
            alert["id"] = self.store.insert("alerts", [alert], ids=True)[0]
            publish(self.store, "alert", alert, plugin=self.runtime.name)  # queued for the outlets; a Deliverer sends
            self.summary.alerts.append(alert)
            if self.on_alert:
                self.on_alert(alert)

    def _alert(self, w: Window) -> dict[str, Any]:
        """The stored form of an alert, with a one-line message."""
        label = self.config.label
        message = (f"{series_name(w.topic)}: {label} share {w.share:.0%} ({w.hits}/{w.n}) in the window from {_iso(w.start)} "
                   f"against a baseline of {w.baseline:.0%} (z = {w.z:.1f}), {self.config.consecutive} window(s) in a row")
        return {"run_id": self.summary.run_id, "plugin": self.runtime.name, "topic": w.topic, "label": label,
                "raised_at": _iso(time.time()), "window_start": w.start, "window_end": w.end, "n": w.n, "hits": w.hits,
                "share": round(w.share, 4), "baseline": w.baseline, "z": w.z, "message": message}

    def finish(self, status: str, flush: bool = True) -> Summary:
        """Judge the last window (when the feed ended), and record the run's outcome."""
        if flush:
            self._judge(list(self.windower.flush()))
        s = self.summary
        s.status = status
        self.store.update("monitor_runs", s.run_id, {
            "finished_at": _iso(time.time()), "status": status, "items": s.items, "bad_lines": s.bad_lines,
            "alerts": len(s.alerts), "seconds": round(s.seconds, 3), "items_per_s": s.items_per_s,
            "report": json.dumps(s.to_dict(), ensure_ascii=False)}, redacted=True)  # counts and times: no message text
        return s


def read_feed(fh: IO[bytes], path: Path | None, fmt: str, max_chars: int, topics: set[str] | None, follow: bool,
              idle_exit: float | None, stop: threading.Event) -> Iterator[FeedItem | BadLine]:
    """Parsed items and bad lines of a feed, in order."""
    parser: Parser | None = None
    source = path.name if path is not None else "stdin"
    for number, raw in raw_lines(fh, follow, idle_exit, stop.is_set):
        if number == ROTATED:  # a followed file was truncated: a CSV starts again with its header
            parser = None
            continue
        if parser is None:
            if raw is not None and not raw.removeprefix(BOM).strip():
                continue
            first = (raw or b"").removeprefix(BOM)
            parser = Parser(fmt if fmt != "auto" else sniff_format(path, first), source, max_chars, topics)
        parsed = parser.parse(number, raw)
        if parsed is not None:
            yield parsed


def batches(items: Iterator[FeedItem | BadLine], stop: threading.Event, size: int = BATCH,
            wait: float = MAX_WAIT) -> Iterator[list[FeedItem | BadLine]]:
    """Group a feed into batches on a reader thread: full ones while it keeps up, else what came within
    `wait` seconds of a batch's first item. A reader error is raised after the items read before it."""
    q: queue.Queue = queue.Queue(maxsize=size * 8)
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there after what came before
            put(exc)
        put(done)

    threading.Thread(target=pump, name="feed-reader", daemon=True).start()
    batch: list[FeedItem | BadLine] = []
    deadline = 0.0
    while True:
        try:
            item = q.get(timeout=max(deadline - time.monotonic(), 0.001) if batch else 0.2)
        except queue.Empty:
            if batch:
                yield batch
                batch = []
            continue
        if item is done:
            break
        if isinstance(item, BaseException):
            if batch:
                yield batch
            raise item
        if not batch:
            deadline = time.monotonic() + wait
        batch.append(item)
        if len(batch) >= size or time.monotonic() >= deadline:
            yield batch
            batch = []
    if batch:
        yield batch


def watch(runtime: "PluginRuntime", store: "Store", fh: IO[bytes], path: Path | None, *, fmt: str = "auto",
          max_chars: int = 5000, follow: bool = False, idle_exit: float | None = None,
          stop: threading.Event | None = None, **kwargs: Any) -> Summary:
    """Monitor one feed to its end (or, following it, until Ctrl-C, `stop` or idle); return the run's summary."""
    stop = stop or threading.Event()
    topics = {*(runtime.manifest.tables.get("topics") or {}), OTHER} if (runtime.manifest.tables.get("topics") or {}) else None
    feed = read_feed(fh, path, fmt, max_chars, topics, follow, idle_exit, stop)
    return run_items(runtime, store, feed, str(path) if path is not None else "stdin", stop=stop, **kwargs)


def chat_items(store: "Store", plugin: str) -> Iterator[FeedItem]:
    """Logged chat turns that `plugin` observed, oldest first, as feed items (text as stored, i.e. redacted)."""
    rows = store.query("SELECT id, created_at, text, annotations FROM turns WHERE annotations LIKE ? ORDER BY id",
                       [f'%"{plugin}"%'])
    for r in rows:
        note = json.loads(r["annotations"] or "{}").get(plugin)
        if isinstance(note, dict):
            stamp = datetime.fromisoformat(r["created_at"]).timestamp()
            yield FeedItem(r["id"], r["text"], stamp, "chat", note.get("topic"))


def run_items(runtime: "PluginRuntime", store: "Store", items: Iterator[FeedItem | BadLine], source: str, *,
              on_bad: Callable[[BadLine], None] | None = None, on_alert: Callable[[dict[str, Any]], None] | None = None,
              on_batch: Callable[[Summary], None] | None = None, stop: threading.Event | None = None,
              batch_size: int = BATCH) -> Summary:
    """Score, store and judge items in batches until they end (or Ctrl-C / `stop`); the run's summary."""
    stop = stop or threading.Event()
    monitor = Monitor(runtime, store, source, on_alert)
    start, status = time.perf_counter(), "interrupted"
    try:
        for batch in batches(items, stop, batch_size):
            bad = [b for b in batch if isinstance(b, BadLine)]
            monitor.summary.bad_lines += len(bad)
            for b in bad:
                if on_bad:
                    on_bad(b)
            good = [b for b in batch if isinstance(b, FeedItem)]
            if good:
                monitor.process(good)
            monitor.summary.seconds = time.perf_counter() - start
            if on_batch:
                on_batch(monitor.summary)
            if stop.is_set():
                break
        status = "stopped" if stop.is_set() else "done"
    except KeyboardInterrupt:  # Ctrl-C ends a followed feed: what was scored is kept and summed up
        status = "interrupted"
    except Exception:
        status = "failed"
        raise
    finally:
        stop.set()
        monitor.summary.seconds = time.perf_counter() - start
        monitor.finish(status, flush=status == "done")
    return monitor.summary


def monitor_runtime(agent: Any, name: str | None) -> Any:
    """The runtime of the named plugin, or of the only plugin with a [monitor] table."""
    candidates = [m for m in agent.manifests if (m.name == name if name else m.tables.get("monitor") is not None)]
    if not candidates:
        if name:
            raise InputError(f"no plugin named '{name}'; see `agent plugins`")
        raise InputError("no plugin has a [monitor] table; name one with --plugin, or add plugins/sentiment_monitor")
    if len(candidates) > 1:
        raise InputError(f"several plugins can monitor ({', '.join(m.name for m in candidates)}); choose one with --plugin")
    return agent.load_runtime(candidates[0])  # this plugin only: the others' indexes are not loaded


def _iso(epoch: float) -> str:
    """Epoch seconds as ISO 8601, UTC, to the second."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
