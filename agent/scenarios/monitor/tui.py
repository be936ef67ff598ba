"""The monitor in the chat app: the side panel (watched share over all topics and per topic over time, latest alerts), read
from the log every 2 s while shown, and `/monitor FEED [--follow]` running a feed in a worker."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Static

from agent.scenarios.monitor.config import ALL, series_name

if TYPE_CHECKING:
    from agent.store import Store

MAX_SERIES = 48  # windows per topic in the plot
MAX_TOPICS = 5  # topics plotted (those with the most items), after the series of all topics
EVERY = 2.0  # seconds between reads of the monitor tables while the panel is shown


@dataclass
class Sentiment:
    """The latest monitor run of the home: the watched share per topic over time, and recent alerts."""

    run_id: int | None = None
    plugin: str = ""
    label: str = ""
    status: str = ""
    items: int = 0
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # topic -> [(window end, share)], 'all' first
    alerts: list[dict[str, Any]] = field(default_factory=list)


def sentiment(store: "Store") -> Sentiment:
    """The latest monitor run's windows and alerts, read from the log (a feed may still be running)."""
    runs = store.query("SELECT id, plugin, label, status, items FROM monitor_runs ORDER BY id DESC LIMIT 1")
    if not runs:
        return Sentiment()
    run = runs[0]
    rows = store.query("SELECT topic, end, share, n FROM monitor_windows WHERE run_id = ? ORDER BY start", [run["id"]])
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["topic"]] = totals.get(r["topic"], 0) + int(r["n"] or 0)
    keep = ([ALL] if ALL in totals else []) + sorted((t for t in totals if t != ALL), key=lambda t: -totals[t])[:MAX_TOPICS]
    series = {t: [(float(r["end"]), float(r["share"])) for r in rows if r["topic"] == t][-MAX_SERIES:] for t in keep}
    alerts = store.query("SELECT topic, share, baseline, window_end, message FROM alerts WHERE run_id = ? "
                         "ORDER BY id DESC LIMIT 5", [run["id"]])
    return Sentiment(run["id"], run["plugin"] or "", run["label"] or "", run["status"] or "", int(run["items"] or 0),
                     series, alerts)


class SentimentPanel(Vertical):
    """Negative share over all topics, then per topic, over time (the latest monitor run), and the latest alerts."""

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot

        yield Label("sentiment: no monitor run yet", id="sent-title")
        yield PlotextPlot(id="sent-plot")
        yield Static("", id="sent-alerts")

    def on_mount(self) -> None:
        self.set_interval(EVERY, self.refresh_data)

    def refresh_data(self) -> None:
        """Re-read the monitor tables (off the UI thread) while the side panel is shown."""
        side = self.parent
        ready = getattr(self.app, "ready", None)
        if side is not None and side.display and (ready is None or ready.is_set()):
            self._read()

    @work(thread=True, exclusive=True, group="sentiment", exit_on_error=False)
    def _read(self) -> None:
        try:
            data = sentiment(self.app.session.core().store)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a locked or damaged database: said once, the chat goes on
            self.app.call_from_thread(self.query_one("#sent-title", Label).update, f"[red]{escape(str(exc))}[/]")
            return
        self.app.call_from_thread(self.show, data)

    def show(self, data: Sentiment) -> None:
        """Redraw from the latest data."""
        from textual_plotext import PlotextPlot

        title = self.query_one("#sent-title", Label)
        if data.run_id is None:
            title.update("sentiment: no monitor run yet (agent monitor FEED)")
            return
        title.update(f"{escape(data.label or 'watched')} share · run {data.run_id} · {escape(data.status)}")
        widget = self.query_one(PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        t0 = min((pts[0][0] for pts in data.series.values() if pts), default=0.0)
        for topic, pts in data.series.items():
            if pts:
                plt.plot([(end - t0) / 60 for end, _ in pts], [share for _, share in pts], label=series_name(topic)[:12])
        plt.ylim(0, 1)
        plt.xlabel("minutes")
        widget.refresh()
        lines = [f"[red]▲ {escape(series_name(a['topic']))}[/] {a['share']:.0%} (baseline {a['baseline']:.0%})" for a in data.alerts]
        self.query_one("#sent-alerts", Static).update("\n".join(lines) or "[dim]no alerts[/]")


_feeds: dict[int, threading.Event] = {}  # app id -> the event that stops its running feed


def monitor_command(app: Any, arg: str) -> None:
    """/monitor FEED [--follow] runs a feed in the background; /monitor stop ends it."""
    running = _feeds.get(id(app))
    if arg == "stop":
        if running is None:
            app.say("no feed is running", "warning")
        else:
            running.set()
        return
    follow = "--follow" in arg.split()
    path = Path(arg.replace("--follow", "").strip()).expanduser()
    if not arg or not path.is_file():
        app.say(f"usage: /monitor FEED [--follow] (a JSONL or CSV file){'; no file ' + escape(str(path)) if arg else ''}",
                "warning")
        return
    if running is not None:
        app.say("a feed is already running; /monitor stop ends it", "warning")
        return
    stop = _feeds[id(app)] = threading.Event()
    app.show_side()
    app.say(f"monitoring {escape(str(path))}{' (following it)' if follow else ''}; the side panel updates as it runs", "dim")
    app.run_worker(lambda: _watch(app, path, follow, stop), thread=True, group="monitor", exit_on_error=False)


def _watch(app: Any, path: Path, follow: bool, stop: threading.Event) -> None:
    """The worker: score the feed until it ends or is stopped; alerts pop up, the outcome goes to the chat."""

    def alert(a: dict[str, Any]) -> None:
        app.call_from_thread(app.notify, a["message"], title="sentiment alert", severity="warning", timeout=8)

    try:
        summary = run_feed(app.session.core(), path, follow, stop, alert)
    except Exception as exc:  # noqa: BLE001 - a bad feed is reported in the chat
        app.call_from_thread(_done, app, f"monitor stopped: {escape(str(exc))}", "error")
        return
    app.call_from_thread(_done, app, f"feed {escape(path.name)}: {summary.items:,} items, {summary.bad_lines} bad "
                         f"lines, {summary.windows} windows, {len(summary.alerts)} alert(s); run {summary.run_id}", "dim")


def _done(app: Any, text: str, kind: str) -> None:
    """A feed ended: say so and redraw the panel."""
    _feeds.pop(id(app), None)
    app.say(text, kind)
    for panel in app.query(SentimentPanel):
        panel.refresh_data()


def run_feed(agent: Any, path: Path, follow: bool, stop: threading.Event, on_alert: Callable[[dict[str, Any]], None]) -> Any:
    """Run the sentiment monitor over a feed file (JSONL or CSV) until it ends or `stop` is set."""
    from agent.scenarios.monitor.run import monitor_runtime, watch

    runtime = monitor_runtime(agent, None)
    with open(path, "rb") as fh:
        return watch(runtime, agent.store, fh, path, max_chars=agent.settings.max_chars, follow=follow, stop=stop,
                     on_alert=on_alert)
