"""`agent chat`: the Textual chat app. The agent runs on one background thread (replies, feedback),
fine-tuning on another; the UI thread only draws and reads keys."""

from __future__ import annotations

import queue
import threading
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable

from rich.markup import escape
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header

from tui.screens import LogsScreen, Picker
from tui.widgets import AgentMessage, FinetuneBar, HistoryInput, Note, UserMessage

if TYPE_CHECKING:
    from agent.learn.finetune import FinetuneResult
    from agent.learn.schedule import Due
    from agent.reply.agent import Reply
    from tui.session import Session

HELP = ("[b]/use NAME[/] switch plugin (/use alone lists them) · [b]/good[/] [b]/bad[/] rate the last reply · "
        "[b]/label [--new] [LABEL][/] correct it · "
        "[b]/finetune [NAME] [shared|head|full|lora][/] · [b]/threshold accept|reject [NAME][/] · "
        "[b]/review [NAME][/] · [b]/logs[/] · [b]/panel[/] · [b]/new[/] conversation · [b]/quit[/]\n"
        "keys: F2 good · F3 bad · F4 correct label · F5 fine-tune · F6 logs · F7 side panel · F8 review · "
        "Ctrl+P commands · ↑↓ history · Esc cancel a fine-tune")
MAIN_ONLY = {"rate", "correct", "finetune", "logs", "toggle_side", "review"}  # actions of the chat screen's keys


def help_text() -> str:
    """The app's commands, then those plugins contribute (`register_chat_commands`)."""
    from agent.plugin import contributions

    extra = " · ".join(f"[b]{escape(o.name)}[/] {escape(o.help)}" for o in contributions.chat_commands().values())
    return HELP + (f"\nfrom plugins: {extra}" if extra else "")


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
    """The chat: conversation, prompt, fine-tune bar, and a side panel with the panels plugins contribute."""

    CSS_PATH = "agent.tcss"
    TITLE = "agent"
    BINDINGS = [
        Binding("f2", "rate('good')", "Good", priority=True),
        Binding("f3", "rate('bad')", "Bad", priority=True),
        Binding("f4", "correct", "Label", priority=True),
        Binding("f5", "finetune", "Fine-tune", priority=True),
        Binding("f6", "logs", "Logs", priority=True),
        Binding("f7", "toggle_side", "Panel", priority=True),
        Binding("f8", "review", "Review", priority=True, show=False),
        Binding("escape", "cancel_finetune", "Cancel", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, session: "Session", load: bool = True) -> None:
        super().__init__()
        self.session = session
        self.last: "Reply | None" = None
        self.ready = threading.Event()  # set once the models are loaded
        self._load = load
        self._load_notes: list[str] = []
        self.lane = Lane(self)

    # ---- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield VerticalScroll(id="chat")
            yield Vertical(id="side")
        yield FinetuneBar(id="finetune")
        yield HistoryInput(placeholder="Type a message · /help · Ctrl+P for commands", id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "loading models…"
        self.query_one("#finetune").display = False
        self.query_one("#side").display = False
        self.query_one("#prompt").focus()
        self.say(f"conversation [b]{escape(self.session.conversation)}[/] · /help for commands", "dim")
        self.session.on_note = self._agent_note
        if self._load:
            self.load()

    def load(self) -> None:
        """Load the models, then plugins' panels, on the agent's thread."""
        self.lane.submit(lambda: (self.session.load(), self.session.panels()), self._loaded, self._failed)

    def _deliver(self, agent: Any) -> None:
        """Send the home's queued alerts and handoffs to its webhooks and commands while the app runs."""
        from agent.errors import AgentError
        from agent.outlets import Deliverer, declare

        try:
            declare(agent.store, agent.manifests)  # the plugins' [[outlets]]
        except AgentError as exc:
            self.say(f"[yellow]outlets: {escape(str(exc))}[/]")
        self._deliverer = Deliverer(agent.settings.db_path, notify=self._agent_note).start()

    def on_unmount(self) -> None:
        """Stop sending (what is left stays queued for the next run)."""
        deliverer = getattr(self, "_deliverer", None)
        if deliverer is not None:
            deliverer.stop(1.0)

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
        """Models are in: say which plugins answer, mount plugins' panels, start sending alerts and handoffs on."""
        agent, (panels, failures) = loaded
        self.ready.set()
        self._deliver(agent)
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
        yield SystemCommand("Review", "The logged turns a decision would teach most: confirm, correct, out of scope",
                            self.action_review)
        yield SystemCommand("Side panel", "Show or hide the side panel (plugins' panels)", self.action_toggle_side)
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

    @on(AgentMessage.Picked)
    def _picked(self, event: AgentMessage.Picked) -> None:
        if self.last is None or self.last.turn_id != event.turn_id:
            self.say("that choice is no longer open: a newer reply came", "warning")
            return
        self.ask(event.number)

    def ask(self, text: str) -> None:
        """Send a message (to the conversation and plugin of this moment); the reply arrives when the agent has it."""
        self.add(UserMessage(text))
        self.lane.submit(partial(self.session.send, text, self.session.conversation, self.session.plugin),
                         self.show_reply, self._failed)

    def show_reply(self, reply: "Reply") -> None:
        """Show a reply with what the model did; earlier replies' choices close."""
        for message in self.query(AgentMessage):
            message.close_choices()
        self.last = reply
        self.add(AgentMessage(reply))

    def _failed(self, exc: BaseException) -> None:
        self.say(f"[b]error:[/] {escape(str(exc))}", "error")

    def command(self, text: str) -> None:
        """A slash command."""
        word, _, arg = text.partition(" ")
        arg = arg.strip()
        simple: dict[str, Callable[[], None]] = {
            "/help": lambda: self.say(help_text()), "/good": partial(self.action_rate, "good"), "/bad": partial(self.action_rate, "bad"),
            "/logs": self.action_logs, "/panel": self.action_toggle_side, "/quit": self.exit, "/exit": self.exit,
            "/new": self.new_conversation}
        from agent.plugin import contributions

        contributed = contributions.chat_commands()
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
        elif word == "/finetune":
            self.finetune_command(arg)
        elif word == "/review":
            self.action_review(arg or None)
        elif word == "/threshold":
            self.threshold_command(arg)
        elif word in contributed:
            contributed[word].fn(self, arg)
        else:
            self.say(f"unknown command {escape(text)}; /help lists them", "warning")

    def new_conversation(self) -> None:
        """Start a fresh conversation id (the forced plugin stays)."""
        import uuid

        self.session.conversation = uuid.uuid4().hex[:12]
        self._close_choices()
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
            self.session.core().force(self.session.conversation, None)
            self._close_choices()
            self.sub_title = "routing"
            self.say("each message is routed again", "dim")
            return

        def done(text: str) -> None:
            self.sub_title = f"using {name}"
            self._close_choices()
            self.say(escape(text), "dim")

        self.lane.submit(partial(self.session.use, name), done, self._failed)

    def _close_choices(self) -> None:
        """No reply's choices can be picked any more (a switch of plugin or conversation)."""
        for message in self.query(AgentMessage):
            message.close_choices()
        self.last = None

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
            if rating == "good":
                self.check_policy(reply.plugin)

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
            self.check_policy(reply.plugin)

    def check_policy(self, plugin: str | None) -> None:
        """After a label is stored: when the plugin's own [finetune] policy is due, fine-tune it in the background."""
        self.lane.submit(partial(self.session.due, plugin), self._policy_checked, self._failed)

    def _policy_checked(self, due: "Due | None") -> None:
        if due is None or not due.due or self.finetuning:
            return  # a run already going will be followed by a check after the next label
        self.say(f"[b]{escape(due.plugin)}[/]'s fine-tune policy is due: {escape(due.reason)}", "dim")
        self.start_finetune(due.plugin, trigger="policy")

    # ---- fine-tuning -------------------------------------------------------------------------
    def finetune_command(self, arg: str) -> None:
        """/finetune [NAME] [shared|head|full|lora]"""
        modes = ("shared", "head", "full", "lora")
        words = arg.split()
        given = [w.lower() for w in words if w.lower() in modes]
        names = [w for w in words if w.lower() not in modes]
        if len(names) > 1 or len(given) > 1:
            extra = " ".join(names[1:]) or " and ".join(given)
            self.say(f"usage: /finetune [NAME] [{'|'.join(modes)}], one name and one mode at most; nothing was "
                     f"started (not understood: {escape(extra)})", "warning")
            return
        mode = given[0] if given else None
        name = names[0] if names else (self.last.plugin if self.last and self.last.plugin else self.session.plugin)
        if name:
            self.start_finetune(name, mode)
        else:
            self.action_finetune()

    def threshold_command(self, arg: str) -> None:
        """/threshold accept|reject [NAME]: use a fine-tune's suggested min_confidence, or the manifest's again."""
        words = arg.split()
        if not words or words[0] not in ("accept", "reject") or len(words) > 2:
            self.say("usage: /threshold accept NAME (its suggested min_confidence) or /threshold reject NAME (the "
                     "manifest's); NAME left out: the last reply's plugin", "warning")
            return
        name = words[1] if len(words) > 1 else (self.last.plugin if self.last and self.last.plugin else self.session.plugin)
        if not name:
            self.say("name the plugin: /threshold accept NAME", "warning")
            return

        def done(data: dict[str, Any]) -> None:
            how = f"suggested by {data['version']}" if data.get("version") else "the manifest's"
            self.say(f"[b]{escape(name)}[/] min_confidence {data['min_confidence']:g} ({escape(how)}); "
                     "the next reply uses it", "success")

        self.lane.submit(partial(self.session.threshold, name, words[0] == "accept"), done, self._failed)

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

    @property
    def finetuning(self) -> str | None:
        """The plugin being fine-tuned in the background, if any."""
        return self.query_one(FinetuneBar).running

    def start_finetune(self, name: str, mode: str | None = None, epochs: float | None = None, trigger: str = "manual") -> None:
        """Fine-tune in the background; the chat goes on meanwhile."""
        if self.finetuning:
            self.say(f"{escape(self.finetuning)} is being fine-tuned; wait for it or press Esc to cancel", "warning")
            return
        self.say(f"fine-tuning [b]{escape(name)}[/] in the background; keep chatting", "dim")
        self.query_one(FinetuneBar).run(name, lambda progress, cancelled, notify: self.session.finetune(
            name, progress, cancelled, notify, mode, epochs, trigger))

    @on(FinetuneBar.Finished)
    def _finetuned(self, event: FinetuneBar.Finished) -> None:
        self._finetune_done(event.plugin, event.result, event.error)

    def _finetune_done(self, name: str, result: "FinetuneResult | None", exc: BaseException | None) -> None:
        if exc is not None:
            self.say(f"fine-tuning {escape(name)} stopped: {escape(str(exc))}; the current model is unchanged", "warning")
            self.notify(f"fine-tuning {name} stopped", severity="warning")
            return
        assert result is not None
        figure = _accuracy_note(result.report)
        if result.status == "promoted":
            self.say(f"[b]{escape(name)} {escape(result.version or '')} promoted[/]{figure} in {result.seconds:.0f} s; "
                     "the next reply uses it", "success")
            suggested = (result.report.get("evaluation") or {}).get("suggested_min_confidence")
            if isinstance(suggested, (int, float)):
                self.say(f"it suggests min_confidence {suggested:g}: [b]/threshold accept {escape(name)}[/] uses it", "dim")
            self.notify(f"{name} {result.version} promoted; the next reply uses it")
        else:
            self.say(f"{escape(name)} {escape(result.version or '')} {escape(result.status)}{figure}: "
                     f"{escape(str(result.report.get('decision', '')))}", "warning")

    def action_cancel_finetune(self) -> None:
        """Stop the running fine-tune after its current step."""
        self.query_one(FinetuneBar).cancel()

    # ---- logs and side panel -----------------------------------------------------------------
    def action_logs(self) -> None:
        """Open the logs browser."""
        self.push_screen(LogsScreen(self.session))

    def action_review(self, plugin: str | None = None) -> None:
        """Open the review queue (of one plugin, or all)."""
        from tui.review import ReviewScreen

        if self.session.agent is None or not self.ready.is_set():
            self.say("models are still loading", "warning")
            return
        if plugin is not None and plugin not in self.session.agent.responder_names():
            self.say(f"no responder plugin named {escape(plugin)}; /use lists them", "warning")
            return
        self.push_screen(ReviewScreen(self.session, plugin))

    def action_toggle_side(self) -> None:
        """Show or hide the side panel (the panels plugins contribute)."""
        side = self.query_one("#side")
        side.display = not side.display
        if side.display:
            self._refresh_panels()

    def show_side(self) -> None:
        """Show the side panel if it is hidden."""
        if not self.query_one("#side").display:
            self.action_toggle_side()

    def _refresh_panels(self) -> None:
        """Ask each panel that can to re-read its data now."""
        for panel in self.query_one("#side").children:
            refresh = getattr(panel, "refresh_data", None)
            if callable(refresh):
                refresh()

    # ---- for plugins' chat commands ----------------------------------------------------------
    def last_turn(self) -> "Reply | None":
        """The last logged reply, or None (and a warning in the chat)."""
        return self._last_turn()

    def submit(self, fn: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `fn` on the agent's thread after the calls before it; `done(result)` on the UI thread, errors in the chat."""
        self.lane.submit(fn, done, self._failed)

    def stored(self, turn_id: int, text: str) -> Callable[[Any], None]:
        """A `done` that marks the turn's message with `text` (feedback stored)."""
        return self._stored(turn_id, text)


def _accuracy_note(report: dict[str, Any]) -> str:
    """' · held-out accuracy 0.912 (was 0.874)' from a fine-tune report, or ''."""
    ev = report.get("evaluation") or {}
    new, old = ((ev.get(k) or {}).get("accuracy") for k in ("candidate", "current"))
    if not isinstance(new, (int, float)):
        return ""
    how = "cross-validated" if ev.get("cross_validated") else "held-out"
    return f" · {how} accuracy {new:.3f}" + (f" (was {old:.3f})" if isinstance(old, (int, float)) else "")
