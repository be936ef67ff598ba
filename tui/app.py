"""`agent chat`: the Textual chat app. The agent runs on one background thread (replies, feedback),
fine-tuning on another; the UI thread only draws and reads keys."""

from __future__ import annotations

import queue
import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable

from rich.markup import escape
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Label

from tui.screens import LogsScreen, Picker
from tui.widgets import AgentMessage, FinetuneBar, HistoryInput, Note, SentimentPanel, UserMessage

if TYPE_CHECKING:
    from agent.core import Reply
    from agent.finetune import FinetuneResult
    from agent.trainer import Progress

    from tui.session import Session

HELP = ("[b]/use NAME[/] switch plugin (/use alone lists them) · [b]/good[/] [b]/bad[/] rate the last reply · "
        "[b]/label [--new] [LABEL][/] correct it · [b]/like N[/] [b]/dislike N[/] [b]/click N[/] an item · "
        "[b]/finetune [NAME] [head|full|lora][/] · [b]/monitor FEED [--follow][/] or [b]/monitor stop[/] · [b]/logs[/] · [b]/panel[/] · [b]/new[/] conversation · [b]/quit[/]\n"
        "keys: F2 good · F3 bad · F4 correct label · F5 fine-tune · F6 logs · F7 side panel · "
        "Ctrl+P commands · ↑↓ history · Esc cancel a fine-tune")
MAIN_ONLY = {"rate", "correct", "finetune", "logs", "toggle_side"}  # actions of the chat screen's keys
SENTIMENT_EVERY = 2.0  # seconds between reads of the monitor tables while the side panel is open


class Lane:
    """One background thread that runs the agent's calls in order; results go back to the UI thread."""

    def __init__(self, app: App) -> None:
        self.app, self.jobs = app, queue.Queue()
        threading.Thread(target=self._run, name="agent-lane", daemon=True).start()

    def submit(self, fn: Callable[[], Any], done: Callable[[Any], None], failed: Callable[[BaseException], None]) -> None:
        """Run `fn` after the calls before it; hand its result or its error back on the UI thread."""
        self.jobs.put((fn, done, failed))

    def _run(self) -> None:
        while True:
            fn, done, failed = self.jobs.get()
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - shown in the chat, the lane goes on
                self._back(failed, exc)
            else:
                self._back(done, result)
            finally:
                self.jobs.task_done()

    def idle(self) -> bool:
        """Nothing queued or running."""
        return self.jobs.unfinished_tasks == 0

    def _back(self, fn: Callable[[Any], None], value: Any) -> None:
        try:
            self.app.call_from_thread(fn, value)
        except RuntimeError:  # the app has closed
            pass
        except Exception as exc:  # noqa: BLE001 - a bug in showing a result must not stop the lane
            try:
                self.app.call_from_thread(self.app.notify, f"could not show a result: {exc}", severity="error")
            except Exception:  # noqa: BLE001
                pass


class AgentApp(App[None]):
    """The chat: conversation, prompt, fine-tune bar, and a side panel with sentiment and plugin panels."""

    CSS_PATH = "agent.tcss"
    TITLE = "agent"
    BINDINGS = [
        Binding("f2", "rate('good')", "Good", priority=True),
        Binding("f3", "rate('bad')", "Bad", priority=True),
        Binding("f4", "correct", "Label", priority=True),
        Binding("f5", "finetune", "Fine-tune", priority=True),
        Binding("f6", "logs", "Logs", priority=True),
        Binding("f7", "toggle_side", "Panel", priority=True),
        Binding("escape", "cancel_finetune", "Cancel", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, session: "Session", load: bool = True) -> None:
        super().__init__()
        self.session = session
        self.last: "Reply | None" = None
        self.ready = threading.Event()  # set once the models are loaded
        self.finetuning: str | None = None
        self._cancel = threading.Event()
        self._stop_feed: threading.Event | None = None  # set to end the running monitor feed
        self._load = load
        self._load_notes: list[str] = []
        self.lane = Lane(self)

    # ---- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield VerticalScroll(id="chat")
            with Vertical(id="side"):
                yield SentimentPanel(id="sentiment")
        yield FinetuneBar(id="finetune")
        yield HistoryInput(placeholder="Type a message · /help · Ctrl+P for commands", id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "loading models…"
        self.query_one("#finetune").display = False
        self.query_one("#side").display = False
        self.query_one("#prompt").focus()
        self.say(f"conversation [b]{escape(self.session.conversation)}[/] · /help for commands", "dim")
        self.set_interval(SENTIMENT_EVERY, self.refresh_sentiment)
        self.session.on_note = self._agent_note
        if self._load:
            self.load()

    def load(self) -> None:
        """Load the models, then plugins' panels, on the agent's thread."""
        self.lane.submit(lambda: (self.session.load(), self.session.panels()), self._loaded, self._failed)

    def _agent_note(self, message: str) -> None:
        """A note from the agent (index builds while loading, a model that failed to load later), from any thread."""

        def show() -> None:
            if self.ready.is_set():
                self.say(escape(message), "dim")
            else:
                self._load_notes.append(message)
                self.sub_title = f"loading: {message}"

        if threading.get_ident() == self._thread_id:
            show()
            return
        try:
            self.call_from_thread(show)
        except RuntimeError:  # the app is not running (yet, or any more)
            pass

    def _loaded(self, loaded: tuple[Any, tuple[list[tuple[str, Any]], list[str]]]) -> None:
        """Models are in: say which plugins answer, mount plugins' panels."""
        agent, (panels, failures) = loaded
        self.ready.set()
        names = agent.responder_names()
        self.sub_title = f"{self.session.plugin or 'routing'} · {len(names)} plugins"
        self.say(f"ready: {', '.join(names) or 'no responder plugins'}" +
                 (f" · using [b]{escape(self.session.plugin)}[/]" if self.session.plugin else " · each message is routed"), "dim")
        built = [n for n in self._load_notes if n.startswith("building index")]
        if built:
            self.say(f"first start: built {len(built)} indexes; later starts reuse them", "dim")
        for note in self._load_notes:
            if not note.startswith(("building index", "encoding ", "fitting a head")):
                self.say(escape(note), "dim")
        self._load_notes.clear()
        self._mount_plugin_panels(panels, failures)

    def _mount_plugin_panels(self, panels: list[tuple[str, Any]], failures: list[str]) -> None:
        """Widgets from plugins' `tui_panels` hooks go to the side panel; one that fails to build is reported."""
        side = self.query_one("#side")
        for plugin, panel in panels:
            try:
                side.mount(panel())
            except Exception as exc:  # noqa: BLE001 - a plugin's widget must not end the app
                self.say(f"plugin {escape(plugin)}: panel {escape(getattr(panel, '__name__', str(panel)))} "
                         f"failed: {escape(str(exc))}", "error")
        for failure in failures:
            self.say(escape(failure), "error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The chat's keys (F2-F7) act only on the chat, not over a picker or the logs browser."""
        if action in MAIN_ONLY and len(self.screen_stack) > 1:
            return False
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette: switch plugin, fine-tune, logs, panel, feedback."""
        yield from super().get_system_commands(screen)
        names = self.session.agent.responder_names() if self.session.agent is not None else []
        for name in names:
            yield SystemCommand(f"Use plugin {name}", f"Route this conversation to {name}", partial(self.use, name))
        yield SystemCommand("Route each message", "Stop forcing a plugin", partial(self.use, None))
        for name in names:
            yield SystemCommand(f"Fine-tune {name}", "Train on its data and corrections, in the background",
                                partial(self.start_finetune, name))
        yield SystemCommand("Logs", "Search past turns, open conversations, correct labels", self.action_logs)
        yield SystemCommand("Sentiment panel", "Show or hide the side panel", self.action_toggle_side)
        yield SystemCommand("Mark last reply good", "Store a 'good' rating", partial(self.action_rate, "good"))
        yield SystemCommand("Mark last reply bad", "Store a 'bad' rating", partial(self.action_rate, "bad"))
        yield SystemCommand("Correct last label", "Pick the right label", self.action_correct)

    # ---- the conversation --------------------------------------------------------------------
    def say(self, text: str, kind: str = "info") -> None:
        """A note in the conversation."""
        self.add(Note(text, kind))

    def add(self, widget: Any) -> None:
        """Append to the conversation and keep the end in view."""
        chat = self.query_one("#chat", VerticalScroll)
        chat.mount(widget)
        chat.scroll_end(animate=False)

    @on(HistoryInput.Submitted, "#prompt")
    def _submitted(self, event: HistoryInput.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if not text:
            return
        event.input.remember(text)
        if text.startswith("/"):
            self.command(text)
        else:
            self.ask(text)

    def ask(self, text: str) -> None:
        """Send a message (to the conversation and plugin of this moment); the reply arrives when the agent has it."""
        self.add(UserMessage(text))
        self.lane.submit(partial(self.session.send, text, self.session.conversation, self.session.plugin),
                         self.show_reply, self._failed)

    def show_reply(self, reply: "Reply") -> None:
        """Show a reply with what the model did."""
        self.last = reply
        self.add(AgentMessage(reply))

    def _failed(self, exc: BaseException) -> None:
        self.say(f"[b]error:[/] {escape(str(exc))}", "error")

    def command(self, text: str) -> None:
        """A slash command."""
        word, _, arg = text.partition(" ")
        arg = arg.strip()
        simple: dict[str, Callable[[], None]] = {
            "/help": lambda: self.say(HELP), "/good": partial(self.action_rate, "good"), "/bad": partial(self.action_rate, "bad"),
            "/logs": self.action_logs, "/panel": self.action_toggle_side, "/quit": self.exit, "/exit": self.exit,
            "/new": self.new_conversation}
        items = {"/like": "like", "/dislike": "dislike", "/reject": "dislike", "/click": "click"}
        if word in simple and not arg:
            simple[word]()
        elif word == "/use" and len(arg.split()) > 1:
            self.say("usage: /use NAME (one plugin name; /use alone lists them)", "warning")
        elif word == "/use":
            self.use(arg) if arg else self.list_plugins()
        elif word == "/label":
            words = arg.split()
            new = words[:1] == ["--new"]
            label = " ".join(words[1:] if new else words)
            if new and not label:
                self.say("usage: /label --new LABEL (a label the plugin does not have yet)", "warning")
            else:
                self.correct(label, new) if label else self.action_correct()
        elif word in items:
            self.item(arg, items[word])
        elif word == "/finetune":
            self.finetune_command(arg)
        elif word == "/monitor":
            self.monitor_command(arg)
        else:
            self.say(f"unknown command {escape(text)}; /help lists them", "warning")

    def new_conversation(self) -> None:
        """Start a fresh conversation id (the forced plugin stays)."""
        import uuid

        self.session.conversation = uuid.uuid4().hex[:12]
        self.last = None
        self.say(f"new conversation [b]{self.session.conversation}[/]", "dim")

    def list_plugins(self) -> None:
        """Say which plugins there are and which is used."""
        self.lane.submit(self.session.plugins, lambda names: self.say(
            f"plugins: {', '.join(names)} · now {'using ' + self.session.plugin if self.session.plugin else 'routing'}"),
            self._failed)

    def use(self, name: str | None) -> None:
        """Route this conversation to a plugin, or (None) back to routing."""
        if name is None:
            if self.session.agent is None:
                return
            self.session.plugin = None
            self.session.core()._forced.pop(self.session.conversation, None)
            self.sub_title = "routing"
            self.say("each message is routed again", "dim")
            return

        def done(text: str) -> None:
            self.sub_title = f"using {name}"
            self.say(escape(text), "dim")

        self.lane.submit(partial(self.session.use, name), done, self._failed)

    # ---- feedback ----------------------------------------------------------------------------
    def _last_turn(self) -> "Reply | None":
        if self.last is None or self.last.turn_id is None:
            self.say("no reply to give feedback on yet", "warning")
            return None
        return self.last

    def _message_of(self, turn_id: int) -> AgentMessage | None:
        for message in self.query(AgentMessage):
            if message.reply.turn_id == turn_id:
                return message
        return None

    def _stored(self, turn_id: int, text: str) -> Callable[[Any], None]:
        def done(_: Any) -> None:
            message = self._message_of(turn_id)
            if message is not None:
                message.mark(text)
            self.notify(f"turn {turn_id}: {text}", timeout=3)
        return done

    def action_rate(self, rating: str) -> None:
        """Mark the last reply good or bad."""
        reply = self._last_turn()
        if reply is not None:
            mark = "✓ marked good" if rating == "good" else "✗ marked bad"
            self.lane.submit(partial(self.session.rate, reply.turn_id, rating), self._stored(reply.turn_id, mark), self._failed)

    def action_correct(self) -> None:
        """Pick the right label for the last reply from the plugin's labels."""
        reply = self._last_turn()
        if reply is None:
            return
        if self.session.agent is None:
            self.say("models are still loading", "warning")
            return
        labels = self.session.labels(reply.plugin)
        if not labels:
            self.say(f"plugin {escape(reply.plugin or '-')} has no labels to choose from", "warning")
            return
        self.push_screen(Picker(f"correct turn {reply.turn_id} (now {reply.label})", labels),
                         lambda label: self.correct(label) if label else None)

    def correct(self, label: str, new: bool = False) -> None:
        """Store the right label for the last reply (`new`: one the plugin does not have yet)."""
        reply = self._last_turn()
        if reply is not None:
            self.lane.submit(partial(self.session.correct, reply.turn_id, label, new),
                             self._stored(reply.turn_id, f"✎ label corrected to {label}"), self._failed)

    def item(self, arg: str, kind: str) -> None:
        """Like, dislike or click item N (or ID) of the last reply."""
        reply = self._last_turn()
        if reply is None:
            return
        if not reply.items:
            self.say("the last reply recommended no items", "warning")
            return
        ids = [i["id"] for i in reply.items]
        item_id = arg if arg in ids else ids[int(arg) - 1] if arg.isdigit() and 0 < int(arg) <= len(ids) else arg
        if item_id not in ids:
            self.say(f"give an item number 1-{len(ids)} or one of: {escape(', '.join(ids))}", "warning")
            return
        mark = {"like": "♥ liked", "dislike": "⊘ rejected", "click": "→ clicked"}[kind]
        self.lane.submit(partial(self.session.item, reply.turn_id, item_id, kind),
                         self._stored(reply.turn_id, f"{mark} {item_id}"), self._failed)

    # ---- fine-tuning -------------------------------------------------------------------------
    def finetune_command(self, arg: str) -> None:
        """/finetune [NAME] [head|full|lora]"""
        words = arg.split()
        mode = next((w for w in words if w in ("head", "full", "lora")), None)
        names = [w for w in words if w != mode]
        name = names[0] if names else (self.last.plugin if self.last and self.last.plugin else self.session.plugin)
        if name:
            self.start_finetune(name, mode)
        else:
            self.action_finetune()

    def action_finetune(self) -> None:
        """Choose a plugin to fine-tune (the last reply's first)."""
        names = self.session.agent.responder_names() if self.session.agent is not None else []
        if self.last and self.last.plugin in names:
            names.remove(self.last.plugin)
            names.insert(0, self.last.plugin)
        if not names:
            self.say("no plugin to fine-tune yet (models still loading?)", "warning")
            return
        self.push_screen(Picker("fine-tune which plugin?", names), lambda name: self.start_finetune(name) if name else None)

    def start_finetune(self, name: str, mode: str | None = None, epochs: float | None = None) -> None:
        """Fine-tune in the background; the chat goes on meanwhile."""
        if self.finetuning:
            self.say(f"{escape(self.finetuning)} is being fine-tuned; wait for it or press Esc to cancel", "warning")
            return
        self.finetuning = name
        self._cancel.clear()
        bar = self.query_one(FinetuneBar)
        bar.start(name)
        self.say(f"fine-tuning [b]{escape(name)}[/] in the background; keep chatting", "dim")
        self._finetune(bar, name, mode, epochs)

    @work(thread=True, exclusive=True, group="finetune", exit_on_error=False)
    def _finetune(self, bar: FinetuneBar, name: str, mode: str | None, epochs: float | None) -> None:
        """The fine-tune itself, on a worker thread."""
        last = [0.0]

        def progress(p: "Progress") -> None:
            now = time.perf_counter()
            if now - last[0] >= 0.1 or p.step >= p.total:  # at most ten redraws a second
                last[0] = now
                self.call_from_thread(bar.show, name, p)

        try:
            result = self.session.finetune(name, progress, self._cancel.is_set,
                                           lambda msg: self.call_from_thread(bar.note, msg), mode, epochs)
        except Exception as exc:  # noqa: BLE001 - cancelled or failed: the current model stays
            self.call_from_thread(self._finetune_done, name, None, exc)
        else:
            self.call_from_thread(self._finetune_done, name, result, None)

    def _finetune_done(self, name: str, result: "FinetuneResult | None", exc: BaseException | None) -> None:
        self.finetuning = None
        self.query_one(FinetuneBar).display = False
        if exc is not None:
            self.say(f"fine-tuning {escape(name)} stopped: {escape(str(exc))}; the current model is unchanged", "warning")
            self.notify(f"fine-tuning {name} stopped", severity="warning")
            return
        assert result is not None
        figure = _accuracy_note(result.report)
        if result.status == "promoted":
            self.say(f"[b]{escape(name)} {escape(result.version or '')} promoted[/]{figure} in {result.seconds:.0f} s; "
                     "the next reply uses it", "success")
            self.notify(f"{name} {result.version} promoted; the next reply uses it")
        else:
            self.say(f"{escape(name)} {escape(result.version or '')} {escape(result.status)}{figure}: "
                     f"{escape(str(result.report.get('decision', '')))}", "warning")

    def action_cancel_finetune(self) -> None:
        """Stop the running fine-tune after its current step."""
        if self.finetuning:
            self._cancel.set()
            self.query_one(FinetuneBar).note("cancelling after this step…")

    @on(Button.Pressed, "#ft-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel_finetune()

    # ---- sentiment monitor -------------------------------------------------------------------
    def monitor_command(self, arg: str) -> None:
        """/monitor FEED [--follow] runs a feed in the background; /monitor stop ends it."""
        from pathlib import Path

        if arg == "stop":
            if self._stop_feed is None:
                self.say("no feed is running", "warning")
            else:
                self._stop_feed.set()
            return
        follow = "--follow" in arg.split()
        path = Path(arg.replace("--follow", "").strip()).expanduser()
        if not arg or not path.is_file():
            self.say(f"usage: /monitor FEED [--follow] (a JSONL or CSV file){'; no file ' + escape(str(path)) if arg else ''}",
                     "warning")
            return
        if self._stop_feed is not None:
            self.say("a feed is already running; /monitor stop ends it", "warning")
            return
        self._stop_feed = threading.Event()
        if not self.query_one("#side").display:
            self.action_toggle_side()
        self.say(f"monitoring {escape(str(path))}{' (following it)' if follow else ''}; the side panel updates as it runs", "dim")
        self._monitor(path, follow, self._stop_feed)

    @work(thread=True, group="monitor", exit_on_error=False)
    def _monitor(self, path: Any, follow: bool, stop: threading.Event) -> None:
        def alert(a: dict[str, Any]) -> None:
            self.call_from_thread(self.notify, a["message"], title="sentiment alert", severity="warning", timeout=8)

        try:
            summary = self.session.monitor(path, follow, stop, alert)
        except Exception as exc:  # noqa: BLE001 - a bad feed is reported in the chat
            self.call_from_thread(self._monitor_done, f"monitor stopped: {escape(str(exc))}", "error")
            return
        self.call_from_thread(self._monitor_done, f"feed {escape(path.name)}: {summary.items:,} items, {summary.bad_lines} bad "
                              f"lines, {summary.windows} windows, {len(summary.alerts)} alert(s); run {summary.run_id}", "dim")

    def _monitor_done(self, text: str, kind: str) -> None:
        self._stop_feed = None
        self.say(text, kind)
        self.refresh_sentiment()

    # ---- logs and side panel -----------------------------------------------------------------
    def action_logs(self) -> None:
        """Open the logs browser."""
        self.push_screen(LogsScreen(self.session))

    def action_toggle_side(self) -> None:
        """Show or hide the side panel (sentiment plot and plugins' panels)."""
        side = self.query_one("#side")
        side.display = not side.display
        if side.display:
            self.refresh_sentiment()

    def refresh_sentiment(self) -> None:
        """Re-read the monitor tables (off the UI thread) while the panel is shown."""
        if self.query_one("#side").display and self.ready.is_set():
            self._read_sentiment()

    @work(thread=True, exclusive=True, group="sentiment", exit_on_error=False)
    def _read_sentiment(self) -> None:
        try:
            data = self.session.sentiment()
        except Exception as exc:  # noqa: BLE001 - a locked or damaged database: said once, the chat goes on
            self.call_from_thread(self._sentiment_error, str(exc))
            return
        self.call_from_thread(self._show_sentiment, data)

    def _show_sentiment(self, data: Any) -> None:
        self.query_one(SentimentPanel).show(data)

    def _sentiment_error(self, message: str) -> None:
        self.query_one("#sent-title", Label).update(f"[red]{escape(message)}[/]")


def _accuracy_note(report: dict[str, Any]) -> str:
    """' · held-out accuracy 0.912 (was 0.874)' from a fine-tune report, or ''."""
    ev = report.get("evaluation") or {}
    new, old = (ev.get(k, {}).get("accuracy") for k in ("candidate", "current"))
    if not isinstance(new, (int, float)):
        return ""
    return f" · held-out accuracy {new:.3f}" + (f" (was {old:.3f})" if isinstance(old, (int, float)) else "")
