"""Personal numbers wherever they stand: generated values of every kind, in random contexts, never reach a file of the
home; ordinary numbers are left alone; `agent logs redact` cleans turns stored before a kind was known.
(`bench/pii_leaks.py` runs the same strategies with 10,000 cases per kind.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from pii_strategies import VALUES, Planted, ordinary, placed

from agent.cli.main import cli
from agent.models.encoder import Encoder
from agent.reply.agent import Agent
from agent.settings import Settings
from agent.text.guard import redact
from conftest import make_plugin

CASES = 25  # per kind in the suite; the bench runs 10,000


def home_bytes(home: Path) -> bytes:
    """Every file of the home (the database, its write-ahead log, indexes, models), concatenated."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def leaks(planted: Planted, data: bytes) -> list[str]:
    """The forms of a planted value found in `data`."""
    return [form for form in planted.forms() if form.encode() in data]


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_no_generated_value_of_any_kind_reaches_the_home(kind: str, tmp_path: Path, encoder: Encoder) -> None:
    make_plugin(tmp_path / "plugins")
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"]), encoder=encoder)

    @settings(max_examples=CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(placed(kind))
    def check(planted: Planted) -> None:
        reply = agent.reply(planted.text, conversation_id="c1")
        agent.feedback(reply.turn_id, rating="bad", note=f"customer said {planted.text}")
        assert not leaks(planted, home_bytes(agent.settings.home)), planted

    check()


@settings(max_examples=200, deadline=None, database=None)
@given(ordinary())
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert redact(text) == (text, 0)


@pytest.mark.parametrize("text, expected", [
    ("Card no.4539.1488.0343.6467 was stolen", "Card no.<CARD> was stolen"),
    ("card no.4539148803436467", "card no.<CARD>"),
    ("Card nr.4539-1488-0343-6467", "Card nr.<CARD>"),
    ("nº4539148803436467, Nr:4539 1488 0343 6467, 卡号4539148803436467", "nº<CARD>, Nr:<CARD>, 卡号<CARD>"),
    ("身份证 11010519491231002X", "身份证 <ID>"),
    ("手机13812345678", "手机<PHONE>"),
    ("联系电话：+86 138-1234-5678，谢谢", "联系电话：<PHONE>，谢谢"),
    ("旧身份证110105491231002号", "旧身份证<ID>号"),
    ("银联卡６２２２０２１２３４５６７８９０１２８", "银联卡<CARD>"),
    ("ibanDE89370400440532013000thanks", "iban<IBAN>thanks"),
    ("sha256 5d8f6cce532a7aeb57196be62344095936793400b3aeb3580d248b17d5518a86",
     "sha256 5d8f6cce532a7aeb57196be62344095936793400b3aeb3580d248b17d5518a86"),
    ("筹码888888888，手动10000000000000个赞", "筹码888888888，手动10000000000000个赞"),
])
def test_the_reported_cases_and_their_neighbours(text: str, expected: str) -> None:
    assert redact(text)[0] == expected


def test_logs_redact_cleans_turns_stored_in_clear_and_is_safe_twice(tmp_path: Path, encoder: Encoder) -> None:
    make_plugin(tmp_path / "plugins")
    settings_ = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    agent = Agent(settings_, encoder=encoder)
    raw = ["Card no.4539.1488.0343.6467 lost", "身份证 11010519491231002X", "手机13812345678 call me"]
    ids = [agent.reply(text).turn_id for text in raw]
    old = agent.store.db.conn  # what an earlier version wrote: the texts as typed
    for turn_id, text in zip(ids, raw):
        old.execute("UPDATE turns SET text = ?, extras = ? WHERE id = ?", (text, json.dumps({"shop": {"echo": text}}), turn_id))
    old.execute("UPDATE feedback SET note = ?", (raw[0],))
    agent.feedback(ids[0], rating="bad")
    old.execute("UPDATE feedback SET note = ?", (raw[0],))
    learned = settings_.models_root / "shop" / "v1" / "learned.jsonl"
    learned.parent.mkdir(parents=True)
    learned.write_text(json.dumps({"text": raw[1], "label": "card_lost", "source": "turn 1"}) + "\n")
    export = tmp_path / "turns.jsonl"
    export.write_text("".join(json.dumps(agent.store.turn(i), ensure_ascii=False) + "\n" for i in ids), encoding="utf-8")
    assert b"13812345678" in home_bytes(settings_.home) and b"13812345678" in export.read_bytes()
    agent.store.close()

    env = {"AGENT_HOME": str(settings_.home), "AGENT_PLUGINS_PATH": str(tmp_path / "plugins")}
    first = CliRunner().invoke(cli, ["logs", "redact", str(export)], env=env)
    assert first.exit_code == 0, first.output
    assert "turns 3" in first.output and "feedback 1" in first.output and "learned 1" in first.output, first.output
    assert f"{export} 3" in first.output and "integrity check: ok" in first.output, first.output
    data = home_bytes(settings_.home) + export.read_bytes()
    for value in ["4539.1488.0343.6467", "4539148803436467", "11010519491231002X", "13812345678"]:  # long: no chance hit in binary pages
        assert value.encode() not in data, value
    db = sqlite3.connect(settings_.home / "agent.db")
    assert [r[0] for r in db.execute("SELECT text FROM turns ORDER BY id")] == ["Card no.<CARD> lost", "身份证 <ID>", "手机<PHONE> call me"]
    fts = "SELECT count(*) FROM turns_fts WHERE turns_fts MATCH ?"
    assert db.execute(fts, ['"13812345678"']).fetchone()[0] == 0 and db.execute(fts, ["ID"]).fetchone()[0] == 1
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()

    second = CliRunner().invoke(cli, ["logs", "redact", str(export)], env=env)
    counts = dict(part.rsplit(" ", 1) for part in second.output.split(" changed;")[0].split(", "))
    assert second.exit_code == 0 and set(counts.values()) == {"0"} and {"turns", "feedback", "learned", str(export)} <= set(counts)


def test_what_a_plugin_stores_is_redacted_but_its_ids_and_json_stay_usable(tmp_path: Path) -> None:
    from agent.store import Store

    store = Store(tmp_path / "agent.db")
    store.db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, conversation_id TEXT, body TEXT, payload TEXT)")
    row_id = store.insert("notes", [{"conversation_id": "13812345678", "body": "call 13812345678",
                                     "payload": json.dumps({"amount": 12345678, "ts": 1710489600, "said": "卡号4539148803436467"})}],
                          ids=True)[0]
    row = store.query("SELECT * FROM notes WHERE id = ?", [row_id])[0]
    assert row["conversation_id"] == "13812345678" and row["body"] == "call <PHONE>"
    assert json.loads(row["payload"]) == {"amount": "<ACCOUNT>", "ts": 1710489600, "said": "卡号<CARD>"}
    store.update("notes", row_id, {"body": "mail jo@example.com"})
    assert store.query("SELECT body FROM notes")[0]["body"] == "mail <EMAIL>"


def test_logs_redact_refuses_to_report_success_while_another_reader_holds_old_pages(tmp_path: Path) -> None:
    from agent.errors import StoreError
    from agent.store import Store
    from agent.text.scrub import scrub_home

    store = Store(tmp_path / "agent.db")
    store.log_turn({"conversation_id": "c1", "text": "card 4539148803436467", "plugin": "shop"}, [], [])
    reader = sqlite3.connect(tmp_path / "agent.db")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM turns").fetchone()
    with pytest.raises(StoreError, match="open in another program"):
        scrub_home(store, tmp_path / "models", lambda plugin: None)
    reader.rollback()
    reader.close()
    assert scrub_home(store, tmp_path / "models", lambda plugin: None)["turns"] == 0  # done the first time; now the log is clean too
    assert b"4539148803436467" not in (tmp_path / "agent.db").read_bytes() + (tmp_path / "agent.db-wal").read_bytes()
