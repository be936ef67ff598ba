"""What the chat app does with the agent, kept apart from the widgets: every call here may block, so
the app runs them off the UI thread."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from agent.core import Agent, Reply
    from agent.finetune import FinetuneResult
    from agent.settings import Settings
    from agent.trainer import ProgressFn

MAX_SERIES = 48  # windows per topic in the sentiment plot
MAX_TOPICS = 5  # topics plotted (those with the most items)


@dataclass
class Sentiment:
    """The latest monitor run of the home: negative share per topic over time, and recent alerts."""

    run_id: int | None = None
    plugin: str = ""
    label: str = ""
    status: str = ""
    items: int = 0
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # topic -> [(window end, share)]
    alerts: list[dict[str, Any]] = field(default_factory=list)


class Session:
    """One chat: its agent, conversation id, forced plugin and last reply."""

    def __init__(self, settings: "Settings", device: str = "auto", plugin: str | None = None,
                 conversation: str | None = None, agent: "Agent | None" = None, user: str | None = None) -> None:
        self.settings, self.device, self.plugin, self.user = settings, device, plugin, user
        self.conversation = conversation or uuid.uuid4().hex[:12]
        self.agent = agent
        self.notes: list[str] = []
        self.on_note: Callable[[str], None] | None = None  # progress notes while loading (index builds)
        self._lock = threading.Lock()  # one turn at a time through the agent
        self._build = threading.Lock()

    def core(self) -> "Agent":
        """The agent: plugins discovered and hooks loaded; models load on first use."""
        from agent.core import Agent

        with self._build:
            if self.agent is None:
                self.agent = Agent(self.settings, notify=self._note, device=self.device)
            return self.agent

    def _note(self, message: str) -> None:
        """Pass a progress note on, or keep it when nobody listens."""
        if self.on_note is not None:
            self.on_note(message)
        else:
            self.notes.append(message)

    def load(self) -> "Agent":
        """Load every plugin's model and indexes and warm the encoder, so the first reply is quick."""
        agent = self.core()
        _ = agent.runtimes, agent.observers
        agent.encoder.encode(["warm up"])
        return agent

    def panels(self) -> tuple[list[tuple[str, Any]], list[str]]:
        """Widget classes from plugins' `tui_panels` hooks as (plugin, class), and the hooks that failed."""
        with self._lock:
            hooks = self.core().hooks
            found = [(plugin, panel) for plugin, panels in hooks.call_each("tui_panels")
                     for panel in (panels if isinstance(panels, (list, tuple)) else [panels])]
            return found, [str(f) for f in hooks.drain()]

    def send(self, text: str, conversation: str | None = None, plugin: str | None = None) -> "Reply":
        """Answer one message ('/use NAME' included) in a conversation (this session's by default)."""
        with self._lock:
            return self.core().reply(text, conversation or self.conversation, plugin or self.plugin, self.user)

    def use(self, name: str) -> str:
        """Route this conversation to one plugin from now on."""
        reply = self.send(f"/use {name}")
        self.plugin = name
        return reply.text

    def plugins(self) -> list[str]:
        """Names of the responder plugins (no model is loaded)."""
        return self.core().responder_names()

    def labels(self, plugin: str | None) -> list[str]:
        """The labels a turn of this plugin may be corrected to."""
        return self.core()._labels_of(plugin)

    def rate(self, turn_id: int, rating: str) -> int:
        """Mark a logged reply 'good' or 'bad'."""
        return self.core().feedback(turn_id, rating=rating)

    def correct(self, turn_id: int, label: str, new: bool = False) -> int:
        """Correct a logged turn's label (`new`: teach a label the plugin does not have yet)."""
        return self.core().feedback(turn_id, label=label, new_label=new)

    def item(self, turn_id: int, item_id: str, kind: str) -> int:
        """Like, dislike or click an item a turn recommended."""
        return self.core().item_feedback(turn_id, item_id, kind)

    def plugin_folder(self, name: str) -> Path:
        """The folder of a discovered plugin."""
        from agent.errors import InputError

        for m in self.core().manifests:
            if m.name == name:
                return m.folder
        raise InputError(f"no plugin named '{name}'; choose one of {sorted(m.name for m in self.core().manifests)}")

    def finetune(self, name: str, progress: "ProgressFn", cancel: Callable[[], bool],
                 notify: Callable[[str], None], mode: str | None = None, epochs: float | None = None) -> "FinetuneResult":
        """Fine-tune one plugin (its own model copy, its own thread); the next reply uses a promoted model."""
        from agent.finetune import Options, finetune

        opts = Options(mode=mode, epochs=epochs, device=self.device)
        return finetune(self.plugin_folder(name), self.settings, opts, progress=progress, cancel=cancel, notify=notify)

    def turns(self, query: str | None = None, conversation: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Logged turns, newest first; `query` is full-text search."""
        return self.core().store.turns(query or None, conversation, limit)

    def turn(self, turn_id: int) -> dict[str, Any] | None:
        """One logged turn with its feedback."""
        return self.core().store.turn(turn_id)

    def monitor(self, path: Path, follow: bool, stop: threading.Event, on_alert: Callable[[dict[str, Any]], None]) -> Any:
        """Run the sentiment monitor over a feed file (JSONL or CSV) until it ends or `stop` is set."""
        from agent.cli_monitor import _runtime
        from agent.monitor.run import watch

        agent = self.core()
        runtime = _runtime(agent, None)
        with open(path, "rb") as fh:
            return watch(runtime, agent.store, fh, path, max_chars=self.settings.max_chars, follow=follow, stop=stop,
                         on_alert=on_alert)

    def sentiment(self) -> Sentiment:
        """The latest monitor run's windows and alerts, read from the log (a feed may still be running)."""
        store = self.core().store
        runs = store.query("SELECT id, plugin, label, status, items FROM monitor_runs ORDER BY id DESC LIMIT 1")
        if not runs:
            return Sentiment()
        run = runs[0]
        rows = store.query("SELECT topic, end, share, n FROM monitor_windows WHERE run_id = ? ORDER BY start", [run["id"]])
        totals: dict[str, int] = {}
        for r in rows:
            totals[r["topic"]] = totals.get(r["topic"], 0) + int(r["n"] or 0)
        keep = sorted(totals, key=lambda t: -totals[t])[:MAX_TOPICS]
        series = {t: [(float(r["end"]), float(r["share"])) for r in rows if r["topic"] == t][-MAX_SERIES:] for t in keep}
        alerts = store.query("SELECT topic, share, baseline, window_end, message FROM alerts WHERE run_id = ? "
                             "ORDER BY id DESC LIMIT 5", [run["id"]])
        return Sentiment(run["id"], run["plugin"] or "", run["label"] or "", run["status"] or "", int(run["items"] or 0),
                         series, alerts)
