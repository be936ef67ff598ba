"""The review screen (the logged turns a decision would teach most, one key per decision) and the proposals
screen (new labels from groups of similar unknown questions)."""

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
    from tui.session import Session


class _ListScreen(Screen[None]):
    """A title, a table of rows read off the UI thread, a detail line for the row under the cursor."""

    NAME = ""
    COLUMNS: tuple[str, ...] = ()

    def __init__(self, session: "Session", plugin: str | None = None) -> None:
        super().__init__()
        self.session, self.plugin = session, plugin
        self.rows: list[Any] = []

    def compose(self) -> ComposeResult:
        yield Label(f"{self.NAME}: reading the logged turns…", id=f"{self.NAME}-title")
        table: DataTable[Any] = DataTable(id=f"{self.NAME}-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.COLUMNS)
        yield table
        yield Static("", id=f"{self.NAME}-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.load()
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        """Read the rows again."""
        self.load()

    def fetch(self) -> list[Any]:
        """The rows (on a worker thread)."""
        raise NotImplementedError

    def cells(self, row: Any) -> tuple[tuple[str, ...], str]:
        """A row's cells and its key."""
        raise NotImplementedError

    def heading(self, rows: list[Any]) -> str:
        """The title over these rows."""
        raise NotImplementedError

    def detail(self, row: Any) -> str:
        """Markup for the row under the cursor."""
        raise NotImplementedError

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        """Read off the UI thread (it embeds the waiting messages), then show the rows."""
        try:
            rows = self.fetch()
        except Exception as exc:  # noqa: BLE001 - a locked database is shown, not raised
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[Any]) -> None:
        if not self.is_attached:
            return
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            cells, key = self.cells(r)
            table.add_row(*(Text(c) for c in cells), key=key)
        self.query_one(f"#{self.NAME}-title", Label).update(escape(self.heading(rows)))
        self._highlighted()

    def selected(self) -> Any:
        """The row under the cursor, or None."""
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        row = self.selected()
        if row is not None and self.is_attached:
            self.query_one(f"#{self.NAME}-detail", Static).update(self.detail(row))


class ReviewScreen(_ListScreen):
    """Confirm, correct or mark out of scope the turns worth a person's decision, best first."""

    NAME = "review"
    COLUMNS = ("turn", "plugin", "guess", "why", "message")
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Back"),
        Binding("c", "decide('confirm')", "Confirm"),
        Binding("l", "correct", "Correct"),
        Binding("o", "decide('out_of_scope')", "Out of scope"),
        Binding("r", "reload", "Refresh"),
        Binding("p", "proposals", "Proposals"),
    ]

    def __init__(self, session: "Session", plugin: str | None = None) -> None:
        super().__init__(session, plugin)
        self.deciding: set[int] = set()  # turns whose decision is being stored: a second key on them does nothing

    @property
    def items(self) -> list[Any]:
        """The queue as shown."""
        return self.rows

    def fetch(self) -> list[Any]:
        return self.session.review(self.plugin)

    def cells(self, i: Any) -> tuple[tuple[str, ...], str]:
        return (str(i.turn_id), i.plugin or "-", i.label or "-", i.reason, _one_line(i.text)), str(i.turn_id)

    def heading(self, rows: list[Any]) -> str:
        scope = f" of {self.plugin}" if self.plugin else ""
        return f"review{scope}: {len(rows)} turns worth a decision, best first" if rows else \
            f"review{scope}: nothing waiting; every logged turn has a decision"

    def detail(self, i: Any) -> str:
        second = f" (then {i.second})" if i.second else ""
        return (f"[b]{escape(i.label or '-')}[/]{escape(second)} · {escape(i.reason)}\n{escape(i.text)}\n"
                "[dim]c confirms the guess · l corrects it · o out of scope (trains no label) · "
                "p new labels proposed from unknown questions[/]")

    def action_proposals(self) -> None:
        """New labels proposed from the unknown questions; the queue is ranked again on return."""
        self.app.push_screen(ProposalsScreen(self.session, self.plugin), lambda _: self.load())

    def action_decide(self, decision: str, label: str | None = None) -> None:
        """Store a decision on the selected turn; it leaves the queue."""
        item = self.selected()
        if item is not None and item.turn_id not in self.deciding:
            self.deciding.add(item.turn_id)
            self._decide(item, decision, label)

    def action_correct(self) -> None:
        """Choose the right label for the selected turn."""
        item = self.selected()
        if item is not None:
            self.app.push_screen(Picker(f"correct turn {item.turn_id} ({item.label})", self.session.labels(item.plugin)),
                                 lambda label: self.action_decide("correct", label) if label else None)

    @work(thread=True, group="review-decide", exit_on_error=False)
    def _decide(self, item: Any, decision: str, label: str | None) -> None:
        """Store it off the UI thread."""
        try:
            self.session.decide(item.turn_id, decision, label)
        except Exception as exc:  # noqa: BLE001 - shown to the person
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            self.deciding.discard(item.turn_id)
            return
        self.app.call_from_thread(self._decided, item, decision, label)

    def _decided(self, item: Any, decision: str, label: str | None) -> None:
        what = {"confirm": f"confirmed {item.label}", "out_of_scope": "out of scope"}.get(decision, f"label {label}")
        self.notify(f"turn {item.turn_id}: {what}")
        _check_policy(self.app, item.plugin)
        if not self.is_attached or item not in self.rows:
            return
        row = self.rows.index(item)
        self.rows.remove(item)
        self.query_one(DataTable).remove_row(str(item.turn_id))
        if self.rows:
            self.query_one(DataTable).move_cursor(row=min(row, len(self.rows) - 1))
        else:
            self._show([])


class ProposalsScreen(_ListScreen):
    """New labels proposed from groups of similar unknown messages: accept one, or merge it into a label."""

    NAME = "proposals"
    COLUMNS = ("suggested label", "plugin", "messages", "nearest label", "examples")
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Back"),
        Binding("a", "accept", "Accept"),
        Binding("m", "merge", "Merge into…"),
        Binding("r", "reload", "Refresh"),
    ]

    @property
    def proposals(self) -> list[Any]:
        """The proposals as shown."""
        return self.rows

    def fetch(self) -> list[Any]:
        return self.session.proposals(self.plugin)

    def cells(self, p: Any) -> tuple[tuple[str, ...], str]:
        near = f"{p.nearest_label} ({p.nearest_similarity:.2f})" if p.nearest_label else "-"
        return (p.name, p.plugin, str(p.size), near, _one_line(" · ".join(p.examples))), p.id

    def heading(self, rows: list[Any]) -> str:
        return f"proposals: {len(rows)} groups of similar unknown questions" if rows else \
            "proposals: none; too few similar unknown questions waiting"

    def detail(self, p: Any) -> str:
        return escape("\n".join(f"• {e}" for e in p.examples)) + "\n[dim]a accepts it as a new label · m merges it into one[/]"

    def action_accept(self) -> None:
        """Label the group's turns with the suggested name."""
        p = self.selected()
        if p is not None:
            self._accept(p, None)

    def action_merge(self) -> None:
        """Label the group's turns with an existing label (the nearest first)."""
        p = self.selected()
        if p is None:
            return
        labels = self.session.labels(p.plugin)
        if p.nearest_label in labels:
            labels.remove(p.nearest_label)
            labels.insert(0, p.nearest_label)
        self.app.push_screen(Picker(f"merge '{p.name}' ({p.size} messages) into", labels),
                             lambda label: self._accept(p, label) if label else None)

    def _accept(self, proposal: Any, label: str | None) -> None:
        """Take the proposal off the list at once (no second key on it), then store it."""
        if proposal in self.rows:
            self.rows.remove(proposal)
            self.query_one(DataTable).remove_row(proposal.id)
        self._store(proposal, label)

    @work(thread=True, group="proposals-accept", exit_on_error=False)
    def _store(self, proposal: Any, label: str | None) -> None:
        """Store it off the UI thread, then group again."""
        try:
            done = self.session.accept(proposal, label)
        except Exception as exc:  # noqa: BLE001 - shown to the person
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        how = f"merged into {done['label']}" if done["merged"] else f"new label {done['label']}"
        stub = f"; FAQ stub in {done['faq_stub']}" if done["faq_stub"] else ""
        self.app.call_from_thread(self.notify, f"{done['turns']} turns labelled: {how}{stub}")
        self.app.call_from_thread(_check_policy, self.app, proposal.plugin)
        self.app.call_from_thread(self.load)


def _check_policy(app: Any, plugin: str | None) -> None:
    """Labels stored here count towards the plugin's own fine-tune policy, as in the chat."""
    check = getattr(app, "check_policy", None)
    if callable(check):
        check(plugin)
