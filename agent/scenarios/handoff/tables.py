"""The handoff kind's database tables: one row per conversation a person has or had, and its events."""

from __future__ import annotations

from typing import Any


def m001_handoffs(db: Any) -> None:
    """Handoffs (the state of each conversation a person was asked for) and their events, numbered in one sequence."""
    db["handoffs"].create(
        {"id": int, "conversation_id": str, "plugin": str, "state": str, "reason": str, "opened_at": str, "taken_at": str,
         "operator": str, "released_at": str, "notified": int, "delivered": int}, pk="id")
    db["handoffs"].create_index(["conversation_id"], unique=True)
    db["handoffs"].create_index(["state", "opened_at"])
    db["handoff_events"].create(
        {"id": int, "conversation_id": str, "at": str, "kind": str, "author": str, "text": str, "turn_id": int}, pk="id")
    db["handoff_events"].create_index(["conversation_id", "id"])
