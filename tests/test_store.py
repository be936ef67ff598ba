"""The SQLite log: migrations, full-text search, export, and damaged or locked files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.errors import StoreError
from agent.plugin import contributions
from agent.reply.agent import Agent
from agent.scenarios.recommend.events import ItemStore
from agent.store import MIGRATIONS, Store


def test_migrations_run_once_and_are_recorded(tmp_path: Path) -> None:
    Store(tmp_path / "a.db").close()
    store = Store(tmp_path / "a.db")
    names = [r["name"] for r in store.db["_migrations"].rows]
    assert names == [name for name, _ in MIGRATIONS] + [m.name for m in contributions.migrations()]
    assert "recommend.m008_items" in names and "monitor.m007_monitor" in names  # plugins' migrations, namespaced
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_search_and_export(agent: Agent) -> None:
    a = agent.reply("I lost my card", conversation_id="c1")
    agent.reply("when do you open on sunday", conversation_id="c2")
    agent.reply("my refund has not arrived", conversation_id="c1")
    found = agent.store.turns(query="card")
    assert [t["id"] for t in found] == [a.turn_id]
    assert [t["conversation_id"] for t in agent.store.turns(conversation="c1")] == ["c1", "c1"]
    assert agent.store.turns(query='"; DROP TABLE turns; --') == []
    exported = list(agent.store.export())
    assert [t["conversation_id"] for t in exported] == ["c1", "c1", "c2"]
    assert exported[0]["predictions"] and exported[0]["hits"]


def test_damaged_database_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match=r"agent.db is damaged .* move it aside"):
        Store(path)
    assert path.read_bytes().startswith(b"this is not a database")


def test_locked_database_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "agent.db")
    store.db.execute("PRAGMA busy_timeout = 50")
    blocker = sqlite3.connect(tmp_path / "agent.db")
    blocker.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr("agent.store.time.sleep", lambda s: None)
    monkeypatch.setattr("agent.store.BUSY_SECONDS", 2.0)  # the retry deadline; the default minute would only slow the suite
    with pytest.raises(StoreError, match="is locked by another process"):
        store.log_turn({"conversation_id": "c", "text": "hi"}, [], [])
    blocker.rollback()
    assert store.log_turn({"conversation_id": "c", "text": "hi"}, [], []) == 1


def test_a_database_from_before_items_keeps_its_turns_and_gains_item_feedback(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.store as store_module

    before = [m for m in MIGRATIONS if m[0] < "m008"]
    monkeypatch.setattr(store_module, "MIGRATIONS", before)
    plugins = contributions.migrations()
    monkeypatch.setattr(contributions, "migrations", lambda: [m for m in plugins if m.legacy and m.legacy < "m008"])
    old = Store(tmp_path / "old.db")
    old.db.execute("INSERT INTO conversations (id, started_at, last_at) VALUES ('c', 'then', 'then')")
    old.db.execute("INSERT INTO turns (conversation_id, created_at, text, reply, plugin, label, timings) "
                   "VALUES ('c', 'then', 'I lost my card', 'Freeze it.', 'shop', 'card_lost', '{}')")
    assert "items" not in old.db["turns"].columns_dict
    old.close()
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    monkeypatch.setattr(contributions, "migrations", lambda: plugins)
    store = Store(tmp_path / "old.db")
    items = ItemStore(store)
    turn = store.turn(1)
    assert turn["text"] == "I lost my card" and turn["extras"] == {} and items.turn_feedback(1) == []
    items.add_item_feedback(1, "travel-card", "like")
    assert [(f["item_id"], f["kind"]) for f in items.turn_feedback(1)] == [("travel-card", "like")]
    names = [r["name"] for r in store.db["_migrations"].rows]
    pending = ["m010_turn_extras", "m011_turn_choices", "m012_finetune_trigger", "m013_api_keys", "recommend.m008_items",
               "recommend.m009_item_users", "recommend.m010_items_in_extras", "recommend.m011_user_requests_index"]
    assert [n for n in names if n in pending] == pending  # in this order; other kinds' new tables (handoff, outlets) come too
    assert store.turn(1)["user_id"] == "c" and items.item_events("shop", "c")[0]["item_id"] == "travel-card"


def test_a_users_latest_requests_are_read_through_an_index_not_every_turn(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    plan = store.db.execute("EXPLAIN QUERY PLAN SELECT text FROM turns WHERE user_id = ? AND plugin = ? "
                            "AND label = 'recommend' ORDER BY id DESC LIMIT 5", ["u", "shop"]).fetchall()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX" in detail and "user_id" in detail, detail
