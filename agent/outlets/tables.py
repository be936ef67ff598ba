"""The outlets' database tables (a migration of the outlets feature)."""

from __future__ import annotations

from typing import Any


def m001_outlets(db: Any) -> None:
    """Where events go (webhooks and commands), one delivery per event and outlet, and every attempt to send one."""
    db["outlets"].create(
        {"id": int, "kind": str, "target": str, "secret": str, "secret_env": str, "plugin": str, "format": str,
         "source": str, "created_at": str, "removed_at": str}, pk="id")
    db["deliveries"].create(
        {"id": int, "uid": str, "outlet_id": int, "event": str, "plugin": str, "body": str, "state": str, "attempts": int,
         "next_at": float, "created_at": str, "delivered_at": str, "last_error": str},
        pk="id", foreign_keys=[("outlet_id", "outlets", "id")])
    db["deliveries"].create_index(["state", "next_at"])
    db["deliveries"].create_index(["outlet_id"])
    db["delivery_attempts"].create(
        {"id": int, "delivery_id": int, "at": str, "ok": int, "status": int, "error": str, "ms": float},
        pk="id", foreign_keys=[("delivery_id", "deliveries", "id")])
    db["delivery_attempts"].create_index(["delivery_id"])
