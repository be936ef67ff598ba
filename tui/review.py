"""The review screen: the logged turns a decision would teach most, one key per decision."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from tui.screens import Picker, _one_line

if TYPE_CHECKING:
    from agent.review import Item
    from tui.session import Session

COLUMNS = ("turn", "plugin", "guess", "why", "message")


class ReviewScreen(Screen[None]):
    """Confirm, correct or mark out of scope the turns worth a person's decision, best first."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Back"),
        Binding("c", "decide('confirm')", "Confirm"),
        Binding("l", "correct", "Correct"),
        Binding("o", "decide('out_of_scope')", "Out of scope"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self, session: "Session", plugin: str | None = None) -> None:
        super().__init__()
        self.session, self.plugin = session, plugin
        self.items: list["Item"] = []

    def compose(self) -> ComposeResult:
        yield Label("review: ranking the logged turns…", id="review-title")
        table: DataTable[Any] = DataTable(id="review-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Static("", id="review-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.load()
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        """Rank the waiting turns again."""
        self.load()

    @work(thread=True, exclusive=True, group="review", exit_on_error=False)
    def load(self) -> None:
        """Build the queue off the UI thread (it embeds the waiting messages), then show it."""
        try:
            items = self.session.review(self.plugin)
        except Exception as exc:  # noqa: BLE001 - a locked database is shown, not raised
            self.app.call_from_thread(self._say, f"[red]{escape(str(exc))}[/]")
            return
        self.app.call_from_thread(self._show, items)

    def _say(self, markup: str) -> None:
        if self.is_attached:
            self.query_one("#review-detail", Static).update(markup)

    def _show(self, items: list["Item"]) -> None:
        if not self.is_attached:
            return
        self.items = items
        table = self.query_one(DataTable)
        table.clear()
        for i in items:
            table.add_row(*(Text(v) for v in (str(i.turn_id), i.plugin or "-", i.label or "-", i.reason, _one_line(i.text))),
                          key=str(i.turn_id))
        scope = f" of {self.plugin}" if self.plugin else ""
        title = f"review{scope}: {len(items)} turns worth a decision, best first" if items else \
            f"review{scope}: nothing waiting; every logged turn has a decision"
        self.query_one("#review-title", Label).update(escape(title))
        self._highlighted()

    def selected(self) -> "Item | None":
        """The item under the cursor."""
        table = self.query_one(DataTable)
        if not self.items or table.cursor_row is None or table.cursor_row >= len(self.items):
            return None
        return self.items[table.cursor_row]

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        item = self.selected()
        if item:
            second = f" (then {item.second})" if item.second else ""
            self._say(f"[b]{escape(item.label or '-')}[/]{escape(second)} · {escape(item.reason)}\n{escape(item.text)}\n"
                      "[dim]c confirms the guess · l corrects it · o out of scope (teaches the fallback)[/]")

    def action_decide(self, decision: str, label: str | None = None) -> None:
        """Store a decision on the selected turn; it leaves the queue."""
        item = self.selected()
        if item is not None:
            self._decide(item, decision, label)

    def action_correct(self) -> None:
        """Choose the right label for the selected turn."""
        item = self.selected()
        if item is None:
            return
        labels = self.session.labels(item.plugin)

        def chosen(label: str | None) -> None:
            if label:
                self._decide(item, "correct", label)

        self.app.push_screen(Picker(f"correct turn {item.turn_id} ({item.label})", labels), chosen)

    @work(thread=True, group="review-decide", exit_on_error=False)
    def _decide(self, item: "Item", decision: str, label: str | None) -> None:
        """Store it off the UI thread."""
        try:
            self.session.decide(item.turn_id, decision, label)
        except Exception as exc:  # noqa: BLE001 - shown to the person
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._decided, item, decision, label)

    def _decided(self, item: "Item", decision: str, label: str | None) -> None:
        what = {"confirm": f"confirmed {item.label}", "out_of_scope": "out of scope"}.get(decision, f"label {label}")
        self.notify(f"turn {item.turn_id}: {what}")
        if not self.is_attached or item not in self.items:
            return
        row = self.items.index(item)
        self.items.remove(item)
        self.query_one(DataTable).remove_row(str(item.turn_id))
        if self.items:
            self.query_one(DataTable).move_cursor(row=min(row, len(self.items) - 1))
        else:
            self._show([])
