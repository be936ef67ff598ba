"""The inbox: each conversation's handoff state in the home's database, the operator's actions on it (take, reply,
release, label), and the events a customer's page reads. Every front end (the command line, the chat app, the HTTP
API) calls these functions; the state lives in SQLite, so it survives a restart and is shared between processes."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from agent.errors import InputError

if TYPE_CHECKING:
    from agent.store import Store

HELD = ("waiting", "taken")  # a person has the conversation: the agent answers nothing of its own
EVENT_KEYS = ("id", "kind", "author", "text", "at")
KINDS = ("waiting", "taken", "message", "reply", "released")


class HandoffError(InputError):
    """An operator's action that does not fit the conversation's state (`status`: 404 unknown, 409 wrong state)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def state(store: "Store", conversation: str) -> dict[str, Any] | None:
    """The conversation's handoff row (state waiting, taken or released), or None if no person was ever asked for."""
    rows = store.query("SELECT * FROM handoffs WHERE conversation_id = ?", [conversation])
    return rows[0] if rows else None


def is_held(store: "Store", conversation: str) -> bool:
    """Whether a person has the conversation now."""
    row = state(store, conversation)
    return row is not None and row["state"] in HELD


def open_handoff(store: "Store", conversation: str, plugin: str | None, reason: str) -> dict[str, Any] | None:
    """Hand the conversation to a person (state waiting); its row when this opened it, None if a person already has it."""

    def write(conn: sqlite3.Connection) -> dict[str, Any] | None:
        row = _row(conn, conversation)
        if row is not None and row["state"] in HELD:
            return None
        stamp = _now()
        values = {"plugin": plugin, "state": "waiting", "reason": reason, "opened_at": stamp, "taken_at": None,
                  "operator": None, "released_at": None, "notified": 0}
        _upsert(conn, conversation, row, values)
        _event(conn, conversation, "waiting", "agent", reason, stamp)
        return _row(conn, conversation)

    return store.transaction(write)


def take(store: "Store", conversation: str, operator: str, force: bool = False) -> dict[str, Any]:
    """An operator takes the conversation (waiting, or one the agent still answers); refused if another has it,
    unless `force` (a supervisor taking it over). A conversation the agent was answering is published as a handoff."""

    def write(conn: sqlite3.Connection) -> tuple[dict[str, Any], bool]:
        row = _row(conn, conversation)
        if row is None and not conn.execute("SELECT 1 FROM turns WHERE conversation_id = ? LIMIT 1", [conversation]).fetchone():
            raise HandoffError(f"no conversation '{conversation}' in this home; list those waiting with: agent handoff list", 404)
        if row is not None and row["state"] == "taken" and row["operator"] == operator:
            return row, False
        if row is not None and row["state"] == "taken" and not force:
            raise HandoffError(f"conversation '{conversation}' is already taken by {row['operator']}; they release it with: "
                               f"agent handoff release {conversation} (or take it over: agent handoff take {conversation} --force)")
        stamp = _now()
        values = {"state": "taken", "taken_at": stamp, "operator": operator, "released_at": None}
        if row is None or row["state"] == "released":
            values |= {"reason": f"taken by {operator}", "opened_at": stamp, "notified": 0,
                       "plugin": _last_plugin(conn, conversation)}
        _upsert(conn, conversation, row, values)
        _event(conn, conversation, "taken", operator, "a person is answering", stamp)
        return _row(conn, conversation), row is None or row["state"] == "released"

    taken, opened = store.transaction(write)
    if opened:
        _publish(store, taken)
    return taken


def _publish(store: "Store", row: dict[str, Any]) -> None:
    """Tell the outlets (webhooks, commands) that a handoff started."""
    from agent.outlets import publish

    publish(store, "handoff", {"conversation_id": row["conversation_id"], "plugin": row["plugin"], "reason": row["reason"],
                               "opened_at": row["opened_at"], "text": None}, row["plugin"])


def reply(store: "Store", conversation: str, text: str, operator: str, privacy: Any = None) -> dict[str, Any]:
    """The operator's reply to the customer, stored (redacted as the plugin's [privacy] says) as an event they receive."""
    from agent.text.guard import clean, redact_for

    text = clean(text, 4000)
    stored, _ = redact_for(text, privacy)

    def write(conn: sqlite3.Connection) -> dict[str, Any]:
        row = _held_by(conn, conversation, "reply to")
        if row["state"] != "taken":
            raise HandoffError(f"nobody has taken conversation '{conversation}' yet; take it first: agent handoff take {conversation}")
        _holder(row, operator, "reply to")
        return _event(conn, conversation, "reply", operator, stored, _now())

    return store.transaction(write)


def release(store: "Store", conversation: str, operator: str) -> dict[str, Any]:
    """Give the conversation back to the agent, which answers the next message; refused unless a person has it."""

    def write(conn: sqlite3.Connection) -> dict[str, Any]:
        row = _held_by(conn, conversation, "release")
        _holder(row, operator, "release")
        stamp = _now()
        _upsert(conn, conversation, row, {"state": "released", "released_at": stamp})
        _event(conn, conversation, "released", operator, "the agent answers again", stamp)
        return _row(conn, conversation)  # type: ignore[return-value]

    return store.transaction(write)


def customer_message(store: "Store", conversation: str, text: str) -> bool | None:
    """Log a message the customer sent while a person has the conversation (text already redacted); whether the
    customer still has to be told that a person will reply (True once per handoff), or None when nobody has it now."""

    def write(conn: sqlite3.Connection) -> bool | None:
        row = _row(conn, conversation)
        if row is None or row["state"] not in HELD:
            return None
        _event(conn, conversation, "message", "customer", text, _now())
        told = conn.execute("UPDATE handoffs SET notified = 1 WHERE id = ? AND notified = 0", [row["id"]])
        return told.rowcount == 1

    return store.transaction(write)


def fallbacks_before(store: "Store", conversation: str, limit: int) -> int:
    """How many of the conversation's last logged turns (up to `limit`, none from before its last release) fell back
    in a row; logged turns count, so the streak holds across processes (`agent ask -c`, a restarted server)."""
    row = state(store, conversation)
    since = (row or {}).get("released_at") or ""
    rows = store.query("SELECT fallback_reason FROM turns WHERE conversation_id = ? AND created_at > ? ORDER BY id DESC LIMIT ?",
                       [conversation, since, limit]) if limit > 0 else []
    n = 0
    for r in rows:
        if r["fallback_reason"] is None:
            break
        n += 1
    return n


def undelivered(store: "Store", conversation: str) -> list[dict[str, Any]]:
    """The person's replies the customer's channel has not returned yet, oldest first; they count as delivered now."""
    row = state(store, conversation)
    if row is None or not events(store, conversation, row["delivered"] or 0, ("reply",), 1):
        return []  # the common case reads, and writes nothing

    def write(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        found = _events(conn, conversation, row["delivered"] or 0, kinds=("reply",))
        if found:
            conn.execute("UPDATE handoffs SET delivered = ? WHERE id = ? AND delivered < ?", [found[-1]["id"], row["id"], found[-1]["id"]])
        return found

    return store.transaction(write)


def events(store: "Store", conversation: str, after: int = 0, kinds: tuple[str, ...] = KINDS, limit: int = 200) -> list[dict[str, Any]]:
    """What happened in the conversation's handoffs since event `after` (of these kinds), oldest first."""
    marks = ", ".join("?" * len(kinds))
    return store.query(f"SELECT {', '.join(EVENT_KEYS)} FROM handoff_events WHERE conversation_id = ? AND id > ? AND kind IN ({marks}) "
                       "ORDER BY id LIMIT ?", [conversation, after, *kinds, limit])


def waiting(store: "Store") -> list[dict[str, Any]]:
    """Conversations a person has, oldest first: reason, state, operator, seconds waited, messages, the last one."""
    rows = store.query(
        "SELECT h.conversation_id, h.plugin, h.state, h.reason, h.operator, h.opened_at, "
        "(SELECT COUNT(*) FROM handoff_events e WHERE e.conversation_id = h.conversation_id AND e.kind = 'message' "
        " AND e.at >= h.opened_at) AS messages, "
        "(SELECT text FROM turns t WHERE t.conversation_id = h.conversation_id ORDER BY t.id DESC LIMIT 1) AS last "
        "FROM handoffs h WHERE h.state IN ('waiting', 'taken') ORDER BY h.opened_at, h.id")
    stamp = datetime.now(timezone.utc)
    for row in rows:
        row["waited_s"] = round((stamp - datetime.fromisoformat(row["opened_at"])).total_seconds(), 1)
    return rows


def show(store: "Store", conversation: str, turns: int = 50) -> dict[str, Any]:
    """The conversation for an operator: its handoff row, its last turns (with predictions) and the person's replies."""
    row = state(store, conversation)
    logged = store.turns(conversation=conversation, limit=turns)
    if row is None and not logged:
        raise HandoffError(f"no conversation '{conversation}' in this home; list those waiting with: agent handoff list", 404)
    return {"conversation_id": conversation, "handoff": row, "turns": [store.turn(t["id"]) for t in reversed(logged)],
            "replies": store.query("SELECT id, author, text, at FROM handoff_events WHERE conversation_id = ? AND kind = 'reply' "
                                   "ORDER BY id", [conversation])}


def privacy_of(agent: Any, conversation: str) -> Any:
    """The [privacy] settings of the plugin the conversation was handed over from (the defaults when unknown)."""
    row = state(agent.store, conversation)
    return agent.privacy(row["plugin"] if row else None)


def label(agent: Any, conversation: str, turn_id: int, value: str, operator: str, new_label: bool = False) -> int:
    """Label a customer's message of a handed-over conversation: a correction like any other (`agent finetune`,
    `agent review` and the proposals learn it); the feedback id."""
    turn = agent.store.turn(turn_id)
    if turn is None or turn["conversation_id"] != conversation:
        raise HandoffError(f"no turn {turn_id} in conversation '{conversation}'; `agent handoff show {conversation}` lists them", 404)
    if state(agent.store, conversation) is None:
        raise HandoffError(f"conversation '{conversation}' was never with a person; label it with: agent feedback {turn_id} --label L")
    return agent.feedback(turn_id, label=value, note=f"handoff: labelled by {operator}", new_label=new_label)


def _held_by(conn: sqlite3.Connection, conversation: str, action: str) -> dict[str, Any]:
    """The row of a conversation a person has, or the error that says why there is nothing to `action`."""
    row = _row(conn, conversation)
    if row is None:
        known = conn.execute("SELECT 1 FROM turns WHERE conversation_id = ? LIMIT 1", [conversation]).fetchone()
        why = "was never handed to a person" if known else "is not in this home"
        raise HandoffError(f"cannot {action} conversation '{conversation}': it {why}; list those waiting with: agent handoff list",
                           409 if known else 404)
    if row["state"] not in HELD:
        raise HandoffError(f"cannot {action} conversation '{conversation}': it is already back with the agent (released at "
                           f"{row['released_at']}); to answer it again, take it: agent handoff take {conversation}")
    return row


def _holder(row: dict[str, Any], operator: str, action: str) -> None:
    """Refuse an operator who does not hold a taken conversation."""
    if row["state"] == "taken" and row["operator"] != operator:
        raise HandoffError(f"cannot {action} conversation '{row['conversation_id']}': {row['operator']} has it; "
                           f"take it over first: agent handoff take {row['conversation_id']} --force")


def _row(conn: sqlite3.Connection, conversation: str) -> dict[str, Any] | None:
    """The handoff row, read inside the transaction."""
    cur = conn.execute("SELECT * FROM handoffs WHERE conversation_id = ?", [conversation])
    found = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], found)) if found else None


def _upsert(conn: sqlite3.Connection, conversation: str, row: dict[str, Any] | None, values: dict[str, Any]) -> None:
    """Insert the conversation's row, or set columns of it."""
    if row is None:
        values = {"conversation_id": conversation, "notified": 0, "delivered": 0, **values}
        conn.execute(f"INSERT INTO handoffs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", list(values.values()))
    else:
        conn.execute(f"UPDATE handoffs SET {', '.join(c + ' = ?' for c in values)} WHERE id = ?", [*values.values(), row["id"]])


def _event(conn: sqlite3.Connection, conversation: str, kind: str, author: str, text: str, stamp: str) -> dict[str, Any]:
    """Append an event; it as the events route gives it."""
    cur = conn.execute("INSERT INTO handoff_events (conversation_id, at, kind, author, text) VALUES (?, ?, ?, ?, ?)",
                       [conversation, stamp, kind, author, text])
    return {"id": int(cur.lastrowid), "kind": kind, "author": author, "text": text, "at": stamp}  # type: ignore[arg-type]


def _events(conn: sqlite3.Connection, conversation: str, after: int, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """Events of some kinds after an id, inside the transaction."""
    marks = ", ".join("?" * len(kinds))
    cur = conn.execute(f"SELECT {', '.join(EVENT_KEYS)} FROM handoff_events WHERE conversation_id = ? AND id > ? AND kind IN ({marks}) "
                       "ORDER BY id", [conversation, after, *kinds])
    return [dict(zip(EVENT_KEYS, r)) for r in cur.fetchall()]


def _last_plugin(conn: sqlite3.Connection, conversation: str) -> str | None:
    """The plugin that answered the conversation's last turn."""
    found = conn.execute("SELECT plugin FROM turns WHERE conversation_id = ? ORDER BY id DESC LIMIT 1", [conversation]).fetchone()
    return found[0] if found else None


def _now() -> str:
    """The store's timestamp format."""
    from agent.store import now

    return now()
