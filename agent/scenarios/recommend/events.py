"""The recommender's own tables: item feedback (likes, dislikes, clicks), and the items shown in turns."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.store import Store

KINDS = ("like", "dislike", "click")
NAMESPACE = "recommend"


def m008_items(db: Any) -> None:
    """People's likes, dislikes and clicks on the items a turn recommended, with who gave them."""
    db["item_feedback"].create(
        {"id": int, "turn_id": int, "conversation_id": str, "plugin": str, "item_id": str, "kind": str, "created_at": str,
         "user_id": str}, pk="id", foreign_keys=[("turn_id", "turns", "id")])
    db["item_feedback"].create_index(["plugin", "item_id"])
    db["item_feedback"].create_index(["conversation_id"])
    db["item_feedback"].create_index(["user_id", "plugin"])


def m009_item_users(db: Any) -> None:
    """Item feedback from before user ids: the conversation was the user."""
    if "user_id" not in db["item_feedback"].columns_dict:
        db["item_feedback"].add_column("user_id", str)
        db["item_feedback"].create_index(["user_id", "plugin"])
    db.execute("UPDATE item_feedback SET user_id = conversation_id WHERE user_id IS NULL")


def m010_items_in_extras(db: Any) -> None:
    """Items logged in the old `turns.items` column move into the turn's extras, under its plugin."""
    if "items" not in db["turns"].columns_dict:
        return
    db.execute("UPDATE turns SET extras = json_object(plugin, json_object('items', json(items))) "
               "WHERE items IS NOT NULL AND items != '[]' AND extras IS NULL")
    db.execute("ALTER TABLE turns DROP COLUMN items")  # copied above, in the same transaction


def m011_user_requests_index(db: Any) -> None:
    """A user's latest requests are found by an index, not by reading every turn (each recommendation asks)."""
    db["turns"].create_index(["user_id", "plugin", "label"], if_not_exists=True)


def shown_items(turn: dict[str, Any]) -> list[dict[str, Any]]:
    """The items a logged turn showed (from its plugin's extras)."""
    extras = turn.get("extras") or {}
    return list((extras.get(turn.get("plugin") or "") or {}).get("items") or [])


class ItemStore:
    """Item feedback and shown items, read and written through the agent's store."""

    def __init__(self, store: "Store") -> None:
        self.store = store

    def add_item_feedback(self, turn_id: int, item_id: str, kind: str) -> int:
        """Record a like, dislike or click on an item recommended in a turn."""
        from agent.errors import StoreError
        from agent.store import now

        turn = self.store.turn(turn_id)
        if turn is None:
            raise StoreError(f"no turn {turn_id} in {self.store.path}; list turns with: agent logs")
        row = {"turn_id": turn_id, "conversation_id": turn["conversation_id"],
               "user_id": turn.get("user_id") or turn["conversation_id"], "plugin": turn["plugin"], "item_id": item_id,
               "kind": kind, "created_at": now()}
        return self.store.insert("item_feedback", [row], ids=True, redacted=True)[0]  # ids, as the turn stores them

    def item_events(self, plugin: str, user: str | None = None) -> list[dict[str, Any]]:
        """Likes, dislikes and clicks on a plugin's items, oldest first (one user's, or everyone's)."""
        sql = "SELECT user_id, item_id, kind, created_at FROM item_feedback WHERE plugin = ?"
        args: list[Any] = [plugin]
        if user is not None:
            sql += " AND user_id = ?"
            args.append(user)
        return self.store.query(sql + " ORDER BY id", args)

    def turn_feedback(self, turn_id: int) -> list[dict[str, Any]]:
        """The item feedback given on one turn, oldest first."""
        return self.store.query("SELECT item_id, kind, created_at FROM item_feedback WHERE turn_id = ? ORDER BY id", [turn_id])

    def last_turns_with_items(self, conversation: str, plugin: str, limit: int = 5) -> list[dict[str, Any]]:
        """The latest turns of a conversation that showed a plugin's items, newest first, items decoded."""
        path = f'$."{plugin}".items'
        rows = self.store.query("SELECT id, text, label, extras FROM turns WHERE conversation_id = ? AND plugin = ? "
                                "AND json_array_length(json_extract(extras, ?)) > 0 ORDER BY id DESC LIMIT ?",
                                [conversation, plugin, path, limit])
        return [{"id": r["id"], "text": r["text"], "label": r["label"], "items": json.loads(r["extras"])[plugin]["items"]}
                for r in rows]

    def user_requests(self, user: str, plugin: str, limit: int = 5) -> list[str]:
        """What a user last asked a recommending plugin for (their 'recommend' turns), newest first."""
        rows = self.store.query("SELECT text FROM turns WHERE user_id = ? AND plugin = ? AND label = 'recommend' "
                                "ORDER BY id DESC LIMIT ?", [user, plugin, limit])
        return [r["text"] for r in rows]

    def last_request(self, conversation: str, plugin: str) -> str | None:
        """The latest 'recommend' turn's text in a conversation."""
        rows = self.store.query("SELECT text FROM turns WHERE conversation_id = ? AND plugin = ? AND label = 'recommend' "
                                "ORDER BY id DESC LIMIT 1", [conversation, plugin])
        return rows[0]["text"] if rows else None


def item_feedback(agent: Any, turn_id: int, item_id: str, kind: str) -> int:
    """Store a like, dislike or click on an item recommended in a logged turn (`agent feedback --like`, `/like`)."""
    from agent.errors import InputError

    if kind not in KINDS:
        raise InputError(f"'{kind}' is not item feedback; use one of: {', '.join(KINDS)}")
    turn = agent.store.turn(turn_id)
    if turn is None:
        raise InputError(f"no turn {turn_id} in {agent.settings.db_path}; list turns with: agent logs")
    shown = [str(item.get("id")) for item in shown_items(turn)]
    if item_id not in shown:
        have = f"its items: {', '.join(shown)}" if shown else "it recommended no items"
        raise InputError(f"item '{item_id}' was not recommended in turn {turn_id}; {have}")
    return ItemStore(agent.store).add_item_feedback(turn_id, item_id, kind)
