"""The inbox in the chat app (`/inbox`): the conversations waiting for a person, oldest first, re-read every second;
open one to read it with its predictions, take it, reply, label the customer's last message, and release it."""

from __future__ import annotations

import getpass
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

EVERY = 1.0  # seconds between reads of the inbox


def inbox_command(app: Any, arg: str) -> None:
    """/inbox opens the inbox; /inbox ID opens one conversation."""
    agent = getattr(app.session, "agent", None)
    if agent is None:
        app.say("the agent is still loading; try /inbox again in a moment", "warning")
        return
    app.push_screen(ConversationScreen(agent, arg.strip()) if arg.strip() else InboxScreen(agent))


class InboxScreen(Screen[None]):
    """The waiting conversations: reason, state and how long each has waited; Enter opens one."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("enter", "open", "Open", show=True)]
    COLUMNS = ("conversation", "state", "waited", "reason", "plugin", "last message")

    def __init__(self, agent: Any) -> None:
        super().__init__()
        self.agent, self.rows = agent, []

    def compose(self) -> ComposeResult:
        yield Label("inbox: conversations waiting for a person", id="inbox-title")
        table: DataTable[Any] = DataTable(id="inbox-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.COLUMNS)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.load()
        self.set_interval(EVERY, self.load)
        self.query_one(DataTable).focus()

    def load(self) -> None:
        """Re-read the waiting conversations, keeping the cursor on the same one."""
        from agent.scenarios.handoff.inbox import waiting
        from agent.scenarios.handoff.view import waited

        rows = waiting(self.agent.store)
        table = self.query_one(DataTable)
        keep = self.selected()
        self.rows = rows
        table.clear()
        for r in rows:
            who = f"taken by {r['operator']}" if r["state"] == "taken" else "waiting"
            table.add_row(*(Text(str(v)) for v in (r["conversation_id"], who, waited(r["waited_s"]), r["reason"] or "",
                                                      r["plugin"] or "-", (r["last"] or "")[:60])), key=r["conversation_id"])
        ids = [r["conversation_id"] for r in rows]
        if keep in ids:
            table.move_cursor(row=ids.index(keep))
        self.query_one("#inbox-title", Label).update(f"inbox: {len(rows)} conversation(s) with a person · Enter opens one")

    def selected(self) -> str | None:
        """The conversation under the cursor."""
        row = self.query_one(DataTable).cursor_row
        return self.rows[row]["conversation_id"] if self.rows and row is not None and row < len(self.rows) else None

    @on(DataTable.RowSelected)
    def _chosen(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        """Open the selected conversation."""
        found = self.selected()
        if found:
            self.app.push_screen(ConversationScreen(self.agent, found))


class ConversationScreen(Screen[None]):
    """One conversation: its turns with predictions and the person's replies; take, reply, label, release."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("ctrl+t", "take", "Take"),
                Binding("ctrl+l", "label", "Label last message"), Binding("ctrl+r", "release", "Release")]

    def __init__(self, agent: Any, conversation: str) -> None:
        super().__init__()
        self.agent, self.conversation, self.operator = agent, conversation, getpass.getuser()
        self.found: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Label(escape(self.conversation), id="handoff-title")
        yield Static("", id="handoff-transcript")
        yield Input(placeholder="reply to the customer, Enter sends (Ctrl+T takes it first)", id="handoff-reply")
        yield Footer()

    def on_mount(self) -> None:
        self.load()
        self.set_interval(EVERY, self.load)
        self.query_one(Input).focus()

    def load(self) -> None:
        """Re-read the conversation."""
        from agent.scenarios.handoff.inbox import show
        from agent.scenarios.handoff.view import transcript

        if not self._act(lambda: setattr(self, "found", show(self.agent.store, self.conversation))):
            return
        row = self.found["handoff"] or {}
        state = {"waiting": "waiting for a person", "taken": f"taken by {row.get('operator')}", "released": "back with the agent"}
        self.query_one("#handoff-title", Label).update(
            f"[b]{escape(self.conversation)}[/] · {state.get(row.get('state'), 'with the agent')} · {escape(row.get('reason') or '')}")
        self.query_one("#handoff-transcript", Static).update("\n".join(transcript(self.found)) or "(no turns yet)")

    def _act(self, fn: Any) -> bool:
        """Run an inbox action; its refusal is shown, not raised."""
        from agent.errors import AgentError

        try:
            fn()
        except AgentError as exc:
            self.notify(str(exc), severity="warning", timeout=6)
            return False
        return True

    def action_take(self) -> None:
        """Take the conversation: the agent stays silent until it is released."""
        from agent.scenarios.handoff.inbox import take

        if self._act(lambda: take(self.agent.store, self.conversation, self.operator)):
            self.load()

    @on(Input.Submitted, "#handoff-reply")
    def _send(self, event: Input.Submitted) -> None:
        from agent.scenarios.handoff.inbox import privacy_of, reply

        text = event.value.strip()
        if text and self._act(lambda: reply(self.agent.store, self.conversation, text, self.operator,
                                            privacy_of(self.agent, self.conversation))):
            event.input.value = ""
            self.load()

    def action_label(self) -> None:
        """Label the customer's last message with one of the plugin's labels (a correction fine-tuning learns)."""
        from agent.scenarios.handoff.inbox import label
        from tui.screens import Picker

        turns = self.found.get("turns") or []
        if not turns:
            return
        last = turns[-1]
        labels = self.agent.labels_of(last.get("plugin"))

        def chosen(value: str | None) -> None:
            new = value not in labels
            if value and self._act(lambda: label(self.agent, self.conversation, last["id"], value, self.operator, new)):
                self.notify(f"turn {last['id']} labelled {value}" + (" (a new label: agent finetune learns it)" if new else ""))
                self.load()

        title = f"label turn {last['id']}: {last.get('text', '')[:40]} (a word no label matches: a new label)"
        self.app.push_screen(Picker(title, labels, free=True), chosen)

    def action_release(self) -> None:
        """Give the conversation back to the agent."""
        from agent.scenarios.handoff.inbox import release

        if self._act(lambda: release(self.agent.store, self.conversation, self.operator)):
            self.notify(f"{self.conversation} is back with the agent")
            self.load()
