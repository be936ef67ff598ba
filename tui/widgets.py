"""The chat app's widgets: messages, the prompt with history, the fine-tune bar."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Collapsible, Input, Label, ProgressBar, Static

from agent.reply.render import extras_lines

if TYPE_CHECKING:
    from agent.learn.finetune import FinetuneResult
    from agent.learn.trainer import Progress
    from agent.reply.agent import Reply


class UserMessage(Static):
    """What the person wrote."""

    def __init__(self, text: str) -> None:
        super().__init__(f"[b]you ›[/] {escape(text)}")


class Note(Static):
    """A line from the app itself: help, confirmations, errors."""

    def __init__(self, text: str, kind: str = "info") -> None:
        super().__init__(text, classes=kind)


def meta_line(reply: "Reply") -> str:
    """Plugin, label and confidence, or why the agent fell back; the turn id; flags."""
    parts = [f"[b]{escape(reply.plugin or '-')}[/]"]
    if reply.fallback_reason:
        best = f" (best guess {escape(reply.label or '-')} {reply.confidence or 0:.2f})" if reply.label else ""
        parts.append(f"[yellow]fallback: {escape(reply.fallback_reason)}[/]{best}")
    elif reply.label:
        parts.append(f"{escape(reply.label)} [b]{reply.confidence or 0:.2f}[/]")
    if reply.turn_id is not None:
        parts.append(f"turn {reply.turn_id}")
    parts += [text for _, kind, text in extras_lines(reply) if kind == "meta"]
    return " · ".join(parts)


def annotation_line(name: str, note: Any) -> str:
    """An observer's note: 'sentiment_monitor: negative 0.91, topic cards'."""
    if not isinstance(note, dict):
        return f"{escape(name)}: {escape(str(note))}"
    conf = note.get("confidence")
    head = f"{note.get('label')} {conf:.2f}" if "label" in note and isinstance(conf, (int, float)) else ""
    rest = [f"{k} {v}" for k, v in note.items() if k not in ("label", "confidence") and not isinstance(v, (dict, list))]
    return f"{escape(name)}: " + escape(", ".join(x for x in (head, *rest) if x))


class AgentMessage(Vertical):
    """One reply: its text, what the model did, recommended items, and the sources (expandable)."""

    def __init__(self, reply: "Reply") -> None:
        super().__init__(classes="agent-message")
        self.reply = reply

    def compose(self) -> ComposeResult:
        r = self.reply
        yield Static(escape(r.text), classes="text")
        if r.turn_id is None:
            return
        yield Static(meta_line(r), classes="meta")
        for n, (_, kind, text) in enumerate((x for x in extras_lines(r) if x[1] != "meta"), 1):
            yield Static(text, classes=kind, id=f"{kind}-{r.turn_id}-{n}")
        if r.choices:
            with Horizontal(classes="choices"):
                for n, choice in enumerate(r.choices, 1):
                    yield Button(escape(f"{n}. {choice['about']}"), id=f"choice-{r.turn_id}-{n}", classes="choice",
                                 compact=True)
        for name, note in r.annotations.items():
            yield Static(annotation_line(name, note), classes="annotation")
        for warning in r.warnings:
            yield Static(escape(warning), classes="warning")
        if r.hits:
            lines = "\n".join(f"{h['score']:.2f}  {escape(str(h['id']))}: {escape(str(h['text']))}" for h in r.hits)
            yield Collapsible(Static(lines, classes="sources"), title=f"sources ({len(r.hits)})", collapsed=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A choice picked: sent as its number, the way a person would type it."""
        if event.button.has_class("choice"):
            event.stop()
            self.close_choices()
            self.post_message(self.Picked(str(event.button.id).rsplit("-", 1)[-1], self.reply.turn_id))

    def close_choices(self) -> None:
        """The choices can no longer be picked (picked, or a newer reply came)."""
        for button in self.query(".choice").results(Button):
            button.disabled = True

    class Picked(Message):
        """The person picked one of the labels a reply offered (its number, as text)."""

        def __init__(self, number: str, turn_id: int | None) -> None:
            super().__init__()
            self.number, self.turn_id = number, turn_id

    def mark(self, text: str) -> None:
        """Show feedback given on this reply."""
        self.mount(Static(text, classes="mark"))


class HistoryInput(Input):
    """The prompt; up and down walk through what was sent before."""

    BINDINGS = [Binding("up", "older", "Older", show=False), Binding("down", "newer", "Newer", show=False)]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history: list[str] = []
        self._at = 0

    def remember(self, text: str) -> None:
        """Add a sent line to the history."""
        if text and (not self.history or self.history[-1] != text):
            self.history.append(text)
        self._at = len(self.history)

    def action_older(self) -> None:
        """The previous line."""
        if self._at > 0:
            self._at -= 1
            self.value = self.history[self._at]
            self.cursor_position = len(self.value)

    def action_newer(self) -> None:
        """The next line, or an empty prompt after the last."""
        self._at = min(self._at + 1, len(self.history))
        self.value = self.history[self._at] if self._at < len(self.history) else ""
        self.cursor_position = len(self.value)


class FinetuneBar(Vertical):
    """A fine-tune running in the background: it owns its worker thread, its cancel flag and its progress
    (phase, steps, loss, device), and posts `Finished` when the run ends."""

    class Finished(Message):
        """A fine-tune ended: its result, or the exception that stopped it."""

        def __init__(self, plugin: str, result: "FinetuneResult | None", error: BaseException | None) -> None:
            super().__init__()
            self.plugin, self.result, self.error = plugin, result, error

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running: str | None = None  # the plugin being fine-tuned
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        yield Label("", id="ft-title")
        with Horizontal(id="ft-row"):
            yield ProgressBar(total=None, show_eta=False, id="ft-progress")
            yield Button("Cancel (Esc)", id="ft-cancel", variant="error", compact=True)
        yield Label("", id="ft-stats")

    def run(self, plugin: str, train: Callable[..., "FinetuneResult"]) -> None:
        """Show the bar and call `train(progress, cancelled, notify)` on a worker thread."""
        self.running = plugin
        self._cancel.clear()
        self.start(plugin)
        self._train(plugin, train)

    @work(thread=True, exclusive=True, group="finetune", exit_on_error=False)
    def _train(self, plugin: str, train: Callable[..., "FinetuneResult"]) -> None:
        """The fine-tune itself, on a worker thread."""
        last = [0.0]

        def progress(p: "Progress") -> None:
            now = time.perf_counter()
            if now - last[0] >= 0.1 or p.step >= p.total:  # at most ten redraws a second
                last[0] = now
                self.app.call_from_thread(self.show, plugin, p)

        try:
            result = train(progress, self._cancel.is_set, lambda msg: self.app.call_from_thread(self.note, msg))
        except Exception as exc:  # noqa: BLE001 - cancelled or failed: the current model stays
            self.app.call_from_thread(self._end, plugin, None, exc)
        else:
            self.app.call_from_thread(self._end, plugin, result, None)

    def _end(self, plugin: str, result: "FinetuneResult | None", error: BaseException | None) -> None:
        self.running = None
        self.display = False
        self.post_message(self.Finished(plugin, result, error))

    def cancel(self) -> None:
        """Stop the run after its current step."""
        if self.running:
            self._cancel.set()
            self.note("cancelling after this step…")

    @on(Button.Pressed, "#ft-cancel")
    def _cancel_pressed(self) -> None:
        self.cancel()

    def start(self, plugin: str) -> None:
        """Show the bar for a new run."""
        self.started = time.perf_counter()
        self.query_one("#ft-title", Label).update(f"fine-tuning [b]{escape(plugin)}[/] · preparing…")
        self.query_one("#ft-stats", Label).update("")
        self.query_one(ProgressBar).update(total=None, progress=0)
        self.display = True

    def show(self, plugin: str, p: "Progress") -> None:
        """One progress report."""
        self.query_one("#ft-title", Label).update(
            f"fine-tuning [b]{escape(plugin)}[/] · {escape(p.phase)} · {escape(p.mode or '')} on {escape(p.device)}")
        self.query_one(ProgressBar).update(total=max(p.total, 1), progress=p.step)
        loss = f" · loss {p.loss:.3f}" if p.loss is not None else ""
        eta = f" · {p.eta:.0f} s left" if p.eta is not None else ""
        self.query_one("#ft-stats", Label).update(f"step {p.step}/{p.total}{loss}{eta}")

    def note(self, text: str) -> None:
        """A message from the run (plan chosen, old versions removed)."""
        self.query_one("#ft-stats", Label).update(escape(text))
