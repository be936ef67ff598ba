"""What the chat app does with the agent, kept apart from the widgets: every call here may block, so
the app runs them off the UI thread."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from agent.learn.finetune import FinetuneResult
    from agent.learn.schedule import Due
    from agent.learn.trainer import ProgressFn
    from agent.plugin.manifest import Manifest
    from agent.reply.agent import Agent, Reply
    from agent.review.queue import Item
    from agent.settings import Settings

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
        from agent.reply.agent import Agent

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
        from agent.plugin.manager import DEFAULT_PLUGINS, plugin_manager

        with self._lock:
            hooks = self.core().hooks
            pm = plugin_manager()
            defaults = [(impl.plugin_name, impl.function()) for impl in reversed(pm.hook.tui_panels.get_hookimpls())
                        if impl.plugin_name in DEFAULT_PLUGINS]  # a plugin's own panels come below, once
            found = [(plugin, panel) for plugin, panels in [*defaults, *hooks.call_each("tui_panels")]
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
        return self.core().labels_of(plugin)

    def rate(self, turn_id: int, rating: str) -> int:
        """Mark a logged reply 'good' or 'bad'."""
        return self.core().feedback(turn_id, rating=rating)

    def correct(self, turn_id: int, label: str, new: bool = False) -> int:
        """Correct a logged turn's label (`new`: teach a label the plugin does not have yet)."""
        return self.core().feedback(turn_id, label=label, new_label=new)

    def plugin_folder(self, name: str) -> Path:
        """The folder of a discovered plugin."""
        from agent.errors import InputError

        for m in self.core().manifests:
            if m.name == name:
                return m.folder
        raise InputError(f"no plugin named '{name}'; choose one of {', '.join(sorted(m.name for m in self.core().manifests))}")

    def finetune(self, name: str, progress: "ProgressFn", cancel: Callable[[], bool], notify: Callable[[str], None],
                 mode: str | None = None, epochs: float | None = None, trigger: str = "manual") -> "FinetuneResult":
        """Fine-tune one plugin (its own model copy, its own thread); the next reply uses a promoted model.
        A run its policy started takes the policy's mode and time limit."""
        from agent.learn import schedule
        from agent.learn.finetune import Options, finetune
        from agent.store import now

        base = {"mode": mode, "epochs": epochs, "device": self.device, "trigger": trigger}
        if trigger == "policy":
            base = schedule.options_for(self._manifest(name).finetune, base)
        started = now()
        try:
            return finetune(self.plugin_folder(name), self.settings, Options(**base), progress=progress, cancel=cancel,
                            notify=notify)
        except BaseException as exc:
            if trigger == "policy":  # counts as the plugin's last run: no new attempt at every label
                schedule.record_failure(self.core().store, name, started, exc)
            raise

    def review(self, plugin: str | None = None, limit: int = 50) -> list["Item"]:
        """The review queue: the logged turns a decision would teach most, best first."""
        from agent.review import queue as review

        return review.build(self.core(), plugin, limit)

    def decide(self, turn_id: int, decision: str, label: str | None = None) -> int:
        """Confirm, correct or mark out of scope a turn from the review queue."""
        from agent.review import queue as review

        return review.decide(self.core(), turn_id, decision, label)

    def proposals(self, plugin: str | None = None) -> list[Any]:
        """New labels proposed from groups of similar unknown questions (of one plugin, or every responder)."""
        from agent.review import proposals

        return proposals.propose_all(self.core(), plugin)

    def accept(self, proposal: Any, label: str | None = None) -> dict[str, Any]:
        """Label a proposal's turns: its suggested name, or an existing label to merge into."""
        from agent.review import proposals

        return proposals.accept(self.core(), proposal, label)

    def threshold(self, name: str, accept: bool) -> dict[str, Any]:
        """Accept the current version's suggested min_confidence for a plugin, or go back to the manifest's."""
        from agent.learn.finetune import plugin_versions
        from agent.plugin import thresholds

        versions = plugin_versions(self.settings, self.plugin_folder(name))
        if accept:
            return thresholds.accept(versions, self._manifest(name).thresholds.min_confidence)
        thresholds.reject(versions)
        return {"min_confidence": self._manifest(name).thresholds.min_confidence, "version": None}

    def due(self, name: str | None) -> "Due | None":
        """Whether a plugin's own [finetune] policy asks for a run now (None: no such plugin, or no policy)."""
        from agent.learn import schedule

        manifest = next((m for m in self.core().manifests if m.name == name), None)
        if manifest is None or manifest.finetune is None:
            return None
        from agent.learn.finetune import finetuner_for

        return schedule.check(manifest, self.core().store, own_model=finetuner_for(manifest) is not None)

    def _manifest(self, name: str) -> "Manifest":
        """A discovered plugin's manifest."""
        self.plugin_folder(name)  # names the choices when there is no such plugin
        return next(m for m in self.core().manifests if m.name == name)

    def turns(self, query: str | None = None, conversation: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Logged turns, newest first; `query` is full-text search."""
        return self.core().store.turns(query or None, conversation, limit)

    def turn(self, turn_id: int) -> dict[str, Any] | None:
        """One logged turn with its feedback."""
        return self.core().store.turn(turn_id)
