"""Outlets, the places events go: a webhook (an http(s) URL, POSTed to) or a command (a shell line that reads the
event on stdin). Added, listed and removed here; `agent alerts` and plugin.toml's [[outlets]] call these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.errors import InputError

if TYPE_CHECKING:
    import sqlite3

    from agent.store import Store

KINDS = ("webhook", "command")
FORMATS = ("json", "slack")  # the event as JSON, or a chat message: {"text": "..."} (Slack's incoming webhooks)
SHOWN = "id, kind, target, plugin, format, source, created_at, secret IS NOT NULL OR secret_env IS NOT NULL AS signed, secret_env"


def check_url(url: str, where: str = "the URL") -> str:
    """The URL when it is http(s) with a host (and a valid port); else an InputError that says what to give."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise InputError(f"{where} {url!r} cannot be read ({exc}); give one like https://hooks.example.com/agent") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise InputError(f"{where} {url!r} is not an http:// or https:// URL with a host; give one like "
                         "https://hooks.example.com/agent")
    return url


def check_command(command: str, where: str = "the command") -> str:
    """The shell line when it has something to run; else an InputError."""
    if not command.strip() or "\x00" in command:
        raise InputError(f"{where} {command!r} is empty; give a shell line that reads the event on stdin, "
                         "like 'mail -s \"agent alert\" ops@example.com'")
    return command


def check_target(kind: str, target: str, where: str = "") -> str:
    """A webhook's URL or a command's line, checked for its kind."""
    if kind == "webhook":
        return check_url(target, where or "the URL")
    if kind == "command":
        return check_command(target, where or "the command")
    raise InputError(f"unknown outlet kind {kind!r}; expected one of {', '.join(KINDS)}")


def add(store: "Store", kind: str, target: str, *, secret: str | None = None, secret_env: str | None = None,
        plugin: str | None = None, fmt: str = "json", source: str | None = None) -> int:
    """Store a new outlet (nothing is stored when the target is refused); its id."""
    from agent.store import now

    check_target(kind, target)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    row = {"kind": kind, "target": target, "secret": secret or None, "secret_env": secret_env, "plugin": plugin or None,
           "format": fmt, "source": source, "created_at": now()}
    return store.insert("outlets", [row], ids=True, redacted=True)[0]  # a URL or a secret is configuration, not customer text


def active(store: "Store", kind: str | None = None) -> list[dict[str, Any]]:
    """The outlets in use (of one kind, when given), oldest first; secrets are not read, only whether there is one."""
    where, args = ("AND kind = ?", [kind]) if kind else ("", [])
    return store.query(f"SELECT {SHOWN} FROM outlets WHERE removed_at IS NULL {where} ORDER BY id", args)


def remove(store: "Store", outlet_id: int, kind: str) -> dict[str, Any]:
    """Stop using an outlet added with `agent alerts` (its deliveries not yet sent are cancelled); the row."""
    from agent.store import now

    def write(conn: "sqlite3.Connection") -> dict[str, Any]:
        row = _row(conn, outlet_id)
        if row is None or row["removed_at"]:
            raise InputError(f"no {kind} {outlet_id}; see `agent alerts {kind} list` for the ids")
        if row["kind"] != kind:
            raise InputError(f"outlet {outlet_id} is a {row['kind']}; remove it with `agent alerts {row['kind']} remove {outlet_id}`")
        if row["source"]:
            raise InputError(f"{kind} {outlet_id} is declared in {row['source']} ([[outlets]]); remove it there")
        retire(conn, outlet_id, now())
        return row

    return store.transaction(write)


def retire(conn: "sqlite3.Connection", outlet_id: int, stamp: str) -> None:
    """Mark an outlet removed and cancel what it had still to send (inside the caller's transaction)."""
    conn.execute("UPDATE outlets SET removed_at = ? WHERE id = ?", (stamp, outlet_id))
    conn.execute("UPDATE deliveries SET state = 'cancelled', next_at = NULL, last_error = 'the outlet was removed' "
                 "WHERE outlet_id = ? AND state IN ('queued', 'sending', 'failed')", (outlet_id,))


def _row(conn: "sqlite3.Connection", outlet_id: int) -> dict[str, Any] | None:
    """One outlet as a dict, or None."""
    cur = conn.execute("SELECT id, kind, target, source, removed_at FROM outlets WHERE id = ?", (outlet_id,))
    found = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], found)) if found else None
