"""Screens over the chat: a searchable picker (labels, plugins) and the logs browser."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Label, OptionList, Static

if TYPE_CHECKING:
    from tui.session import Session


class Picker(ModalScreen[str | None]):
    """Choose one of many strings; typing filters the list."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, choices: list[str], free: bool = False) -> None:
        super().__init__()
        self.title_text, self.choices, self.free = title, choices, free  # free: Enter on a word no choice matches gives it

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(escape(self.title_text), id="picker-title")
            yield Input(placeholder="type to filter, Enter to choose, Esc to cancel", id="picker-filter")
            yield OptionList(*self.choices, id="picker-list")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0 if options.option_count else None
        self.query_one("#picker-filter", Input).focus()

    def shown(self) -> list[str]:
        """The choices that match the filter."""
        words = self.query_one("#picker-filter", Input).value.lower().split()
        return [c for c in self.choices if all(w in c.lower() for w in words)]

    @on(Input.Changed, "#picker-filter")
    def _filter(self) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(self.shown())
        options.highlighted = 0 if options.option_count else None

    @on(Input.Submitted, "#picker-filter")
    def _submit(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is not None and options.option_count:
            self.dismiss(str(options.get_option_at_index(options.highlighted).prompt))
        elif self.free and self.query_one("#picker-filter", Input).value.strip():
            self.dismiss(self.query_one("#picker-filter", Input).value.strip())

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(str(event.option.prompt))

    def key_down(self) -> None:
        """Down from the filter moves through the list."""
        self.query_one(OptionList).action_cursor_down()

    def key_up(self) -> None:
        """Up from the filter moves through the list."""
        self.query_one(OptionList).action_cursor_up()


COLUMNS = ("turn", "when", "conversation", "plugin", "label", "conf", "feedback", "message")


class LogsScreen(Screen[None]):
    """Search past turns, open a conversation, correct labels and rate replies there."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("o", "open", "Open"),
        Binding("l", "correct", "Correct label"),
        Binding("g", "rate('good')", "Good"),
        Binding("b", "rate('bad')", "Bad"),
        Binding("slash", "search", "Search"),
    ]

    def __init__(self, session: "Session") -> None:
        super().__init__()
        self.session = session
        self.conversation: str | None = None
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Label("logs: all turns", id="logs-title")
        yield Input(placeholder="search turns (full text), Enter to search; Tab to the list", id="logs-search")
        table: DataTable[Any] = DataTable(id="logs-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Static("", id="logs-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.load()
        self.query_one(DataTable).focus()

    @work(thread=True, exclusive=True, group="logs", exit_on_error=False)
    def load(self, query: str | None = None) -> None:
        """Read turns off the UI thread, then show them (unless a newer read or leaving the screen overtook it)."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        try:
            rows = self.session.turns(query, self.conversation)
            if self.conversation:
                rows = list(reversed(rows))  # a conversation reads oldest first
            feedback = {r["id"]: self._feedback_of(r["id"]) for r in rows}
        except Exception as exc:  # noqa: BLE001 - a bad search or a locked database is shown, not raised
            if not worker.is_cancelled:
                self.app.call_from_thread(self._error, str(exc))
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, rows, feedback)

    def _feedback_of(self, turn_id: int) -> str:
        """The latest feedback on a turn, in a few characters."""
        turn = self.session.turn(turn_id) or {}
        marks = [f["label"] if f["kind"] == "label" else f["kind"] for f in turn.get("feedback", [])]
        return marks[-1] if marks else ""

    def _show(self, rows: list[dict[str, Any]], feedback: dict[int, str]) -> None:
        if not self.is_attached:
            return
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            table.add_row(*(Text(str(v)) for v in (
                r["id"], (r.get("created_at") or "")[5:16].replace("T", " "), r["conversation_id"], r.get("plugin") or "-",
                r.get("label") or "-", f"{r['confidence']:.2f}" if r.get("confidence") is not None else "-",
                feedback.get(r["id"], ""), _one_line(r.get("text") or ""))), key=str(r["id"]))
        where = f"conversation {self.conversation}" if self.conversation else "all turns"
        self.query_one("#logs-title", Label).update(f"logs: {escape(where)} · {len(rows)} shown")

    def _error(self, message: str) -> None:
        if self.is_attached:
            self.query_one("#logs-detail", Static).update(f"[red]{escape(message)}[/]")

    def selected(self) -> dict[str, Any] | None:
        """The turn under the cursor."""
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        row = self.selected()
        if row:
            self.query_one("#logs-detail", Static).update(
                f"[b]you ›[/] {escape(_one_line(row.get('text') or ''))}\n[b]agent ›[/] {escape(_one_line(row.get('reply') or ''))}")

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()

    @on(Input.Submitted, "#logs-search")
    def _search(self, event: Input.Submitted) -> None:
        self.load(event.value.strip() or None)
        self.query_one(DataTable).focus()

    def action_search(self) -> None:
        """Focus the search box."""
        self.query_one("#logs-search", Input).focus()

    def action_open(self) -> None:
        """Show the whole conversation of the selected turn."""
        row = self.selected()
        if row and not self.conversation:
            self.conversation = row["conversation_id"]
            self.query_one("#logs-search", Input).value = ""
            self.load()

    def action_back(self) -> None:
        """From a conversation back to the search; from the search back to the chat."""
        if self.conversation:
            self.conversation = None
            self.load()
        else:
            self.dismiss(None)

    def action_correct(self) -> None:
        """Correct the selected turn's label from the plugin's labels."""
        row = self.selected()
        if row is None:
            return
        labels = self.session.labels(row.get("plugin"))
        if not labels:
            self.notify(f"plugin {row.get('plugin')} has no labels to choose from", severity="warning")
            return

        def chosen(label: str | None) -> None:
            if label:
                self._feedback(row["id"], lambda: self.session.correct(row["id"], label), f"label {label}")

        self.app.push_screen(Picker(f"correct turn {row['id']} ({row.get('label')})", labels), chosen)

    def action_rate(self, rating: str) -> None:
        """Mark the selected turn's reply good or bad."""
        row = self.selected()
        if row is not None:
            self._feedback(row["id"], lambda: self.session.rate(row["id"], rating), rating)

    @work(thread=True, group="logs-feedback", exit_on_error=False)
    def _feedback(self, turn_id: int, store: Any, what: str) -> None:
        """Store feedback off the UI thread, then reload the list."""
        try:
            store()
        except Exception as exc:  # noqa: BLE001 - shown to the person
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._stored, turn_id, what)

    def _stored(self, turn_id: int, what: str) -> None:
        self.notify(f"turn {turn_id}: {what} stored")
        check = getattr(self.app, "check_policy", None)  # a label here counts towards the plugin's own policy
        plugin = next((r.get("plugin") for r in self.rows if r["id"] == turn_id), None)
        if callable(check) and plugin:
            check(plugin)
        if self.is_attached:
            self.load(self.query_one("#logs-search", Input).value.strip() or None)


def _one_line(text: str, width: int = 200) -> str:
    """Text on one line, cut to `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
