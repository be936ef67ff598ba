"""Publishing an event: one queued delivery per outlet that takes it, in one transaction. Nothing is sent here;
a `Deliverer` sends (and in this process, it is woken at once)."""

from __future__ import annotations

import json
import threading
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from agent.errors import InputError

if TYPE_CHECKING:
    import sqlite3

    from agent.store import Store

EVENTS = ("alert", "handoff")
_listeners: "weakref.WeakSet[threading.Event]" = weakref.WeakSet()  # the running deliverers' wake-up events


def publish(store: "Store", kind: str, payload: dict[str, Any], plugin: str | None = None) -> list[int]:
    """Queue `payload` for every outlet that takes events of `plugin` (those without a plugin take all); the
    deliveries' ids. Text in the payload is redacted as the log's is; nothing is sent here."""
    from agent.store import now
    from agent.text.guard import redact_tree

    if kind not in EVENTS:
        raise InputError(f"unknown event kind {kind!r}; expected one of {', '.join(EVENTS)}")
    data, stamp = redact_tree(payload), now()

    def write(conn: "sqlite3.Connection") -> list[int]:
        outlets = conn.execute("SELECT id, format FROM outlets WHERE removed_at IS NULL AND (plugin IS NULL OR plugin = ?)",
                               (plugin,)).fetchall()
        return [_queue(conn, outlet_id, fmt, kind, plugin, stamp, data) for outlet_id, fmt in outlets]

    ids = store.transaction(write)
    if ids:
        wake()
    return ids


def _queue(conn: "sqlite3.Connection", outlet_id: int, fmt: str, kind: str, plugin: str | None, stamp: str,
           data: Any) -> int:
    """Insert one delivery, due now; its id."""
    uid = uuid.uuid4().hex
    body = render(fmt, uid, kind, plugin, stamp, data)
    cur = conn.execute("INSERT INTO deliveries (uid, outlet_id, event, plugin, body, state, attempts, next_at, created_at) "
                       "VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?)", (uid, outlet_id, kind, plugin, body, time.time(), stamp))
    return int(cur.lastrowid)


def render(fmt: str, uid: str, kind: str, plugin: str | None, stamp: str, data: Any) -> str:
    """The body an outlet receives: the event as JSON, or a chat message ({"text": ...}) for format 'slack'."""
    if fmt == "slack":
        return json.dumps({"text": summary(kind, plugin, data)}, ensure_ascii=False)
    return json.dumps({"delivery": uid, "event": kind, "plugin": plugin, "created_at": stamp, "data": data},
                      ensure_ascii=False, default=str)


def summary(kind: str, plugin: str | None, data: Any) -> str:
    """One line for a person: an alert's message; a handoff's reason, conversation and the customer's words; else the data."""
    head = f"[agent] {kind} from {plugin or 'the agent'}: "
    if not isinstance(data, dict) or not any(data.get(k) for k in ("message", "reason", "text")):
        return head + json.dumps(data, ensure_ascii=False, default=str)[:500]
    line = str(data.get("message") or data.get("reason") or "")
    if data.get("conversation_id"):
        line += f" (conversation {data['conversation_id']})"
    if data.get("text") and not data.get("message"):
        line += f': "{str(data["text"])[:300]}"'
    return head + line.strip()


def listen(event: threading.Event) -> None:
    """Set `event` whenever this process publishes (a deliverer's wake-up)."""
    _listeners.add(event)


def wake() -> None:
    """Wake this process's deliverers."""
    for event in list(_listeners):
        event.set()


def unlisten(event: threading.Event) -> None:
    """Stop setting `event` (a deliverer that stopped)."""
    _listeners.discard(event)
