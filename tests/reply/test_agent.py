"""Agent.reply end to end on a tiny real plugin: real encoder, real FAISS, real SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.errors import InputError
from agent.models.encoder import Encoder
from agent.reply.agent import Agent
from agent.settings import Settings
from conftest import make_plugin


def count_turns(settings: Settings) -> int:
    """Turns stored in the database file, read with plain sqlite3."""
    with sqlite3.connect(settings.db_path) as conn:
        return conn.execute("SELECT count(*) FROM turns").fetchone()[0]


def test_answers_logs_turn_predictions_and_hits(agent: Agent) -> None:
    reply = agent.reply("help, somebody stole my card")
    assert (reply.plugin, reply.label, reply.fallback_reason) == ("shop", "card_lost", None)
    assert reply.text in {"Freeze it in the app under Cards > Freeze.", "Call us on 0800 000 000 to cancel it."}
    assert len(reply.hits) == 2 and reply.hits[0]["score"] >= reply.hits[1]["score"]
    assert set(reply.timings_ms) == {"encode", "route", "classify", "retrieve", "respond", "observe", "log", "total"}
    row = agent.store.turn(reply.turn_id)
    assert (row["text"], row["label"], row["conversation_id"]) == ("help, somebody stole my card", "card_lost", reply.conversation_id)
    assert row["predictions"][0]["label"] == "card_lost" and len(row["predictions"]) == 3
    assert [h["id"] for h in row["hits"]] == [h["id"] for h in reply.hits]


def test_answer_is_the_best_entry_of_the_predicted_label(agent: Agent) -> None:
    reply = agent.reply("how long until my refund arrives?")
    assert reply.label == "refund"
    assert reply.text == "Refunds arrive within 5 working days."


def test_out_of_scope_falls_back_with_reason(agent: Agent) -> None:
    reply = agent.reply("what's the weather on Mars tomorrow?")
    assert reply.fallback_reason is not None and reply.fallback_reason.startswith("out_of_scope ")
    assert "pass you to a person" in reply.text
    assert agent.store.turn(reply.turn_id)["fallback_reason"] == reply.fallback_reason


def test_low_confidence_and_ambiguous_reasons(agent: Agent) -> None:
    import numpy as np

    rt = agent.runtimes["shop"]
    assert rt.decide(np.array([0.34, 0.33, 0.33]), 0.30).fallback_reason == "out_of_scope 0.30 < 0.40"
    rt.manifest.thresholds.min_confidence = 0.40
    assert rt.decide(np.array([0.34, 0.33, 0.33]), 0.9).fallback_reason == "low_confidence 0.34 < 0.40"
    assert rt.decide(np.array([0.3996, 0.3, 0.3004]), 0.9).fallback_reason == "low_confidence 0.3996 < 0.40"  # not 0.40 < 0.40
    rt.manifest.thresholds.min_margin = 0.10
    assert rt.decide(np.array([0.50, 0.45, 0.05]), 0.9).fallback_reason == "ambiguous 0.50 vs 0.45"
    assert rt.decide(np.array([0.80, 0.15, 0.05]), 0.9).fallback_reason is None


def test_message_is_encoded_once(agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    agent.reply("warm up")
    calls: list[int] = []
    original = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, texts, **kw: calls.append(len(texts)) or original(self, texts, **kw))
    agent.reply("are you open on saturday?")
    assert calls == [1]


@pytest.mark.parametrize("message, pattern", [
    ("", "empty"),
    ("   \n\t  ", "empty"),
    ("x" * 1_000_000, "1,000,000 characters; the limit is"),
    (b"\xff\xfe\x00\x81\x90\xa0\xc3" * 50, "does not look like text"),
    (bytes(range(256)) * 10, "does not look like text"),
])
def test_bad_input_is_refused_and_nothing_is_lost(agent: Agent, message: str | bytes, pattern: str) -> None:
    agent.reply("I lost my card")
    with pytest.raises(InputError, match=pattern):
        agent.reply(message)
    assert count_turns(agent.settings) == 1


def test_invalid_utf8_inside_text_is_tolerated(agent: Agent) -> None:
    reply = agent.reply(b"I lost my card \xff\xfe yesterday")
    assert reply.label == "card_lost"


def test_stored_text_is_redacted(agent: Agent) -> None:
    reply = agent.reply("I lost my card 4111 1111 1111 1111, write to jo@example.com")
    stored = agent.store.turn(reply.turn_id)["text"]
    assert "4111" not in stored and "jo@example.com" not in stored
    assert "<CARD>" in stored and "<EMAIL>" in stored


def test_routing_picks_nearest_plugin_and_use_forces(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    make_plugin(root, "shop")
    travel = root / "travel"
    travel.mkdir()
    (travel / "examples.csv").write_text("text,label\nbook a flight to rome,flight\nI need a plane ticket,flight\n"
                                         "reserve a hotel room,hotel\nfind me a hotel in paris,hotel\n")
    (travel / "plugin.toml").write_text('name = "travel"\ndescription = "trips"\n[data]\nexamples = "examples.csv"\n')
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[root]), encoder=encoder)
    flight = agent.reply("book me a flight to Rome please")
    assert flight.plugin == "travel" and flight.label == "flight" and flight.route_confidence > 0.5
    assert agent.reply("I lost my card").plugin == "shop"
    switched = agent.reply("/use travel", conversation_id="c1")
    assert switched.text == "Now using travel." and switched.turn_id is None
    assert agent.reply("I lost my card", conversation_id="c1").plugin == "travel"
    assert agent.reply("I lost my card", plugin="travel").plugin == "travel"
    with pytest.raises(InputError, match="no responder plugin named 'nope'"):
        agent.reply("/use nope")


def test_feedback_is_validated_and_stored(agent: Agent) -> None:
    reply = agent.reply("I lost my card")
    agent.feedback(reply.turn_id, label="refund")
    agent.feedback(reply.turn_id, rating="good")
    kinds = [(f["kind"], f["label"]) for f in agent.store.turn(reply.turn_id)["feedback"]]
    assert kinds == [("label", "refund"), ("good", None)]
    with pytest.raises(InputError, match="'flying' is not a label of plugin shop; choose one of: card_lost"):
        agent.feedback(reply.turn_id, label="flying")
    with pytest.raises(InputError, match="no turn 999"):
        agent.feedback(999, rating="bad")


def test_broken_plugin_is_skipped_others_load(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    make_plugin(root, "shop")
    (root / "broken").mkdir()
    (root / "broken" / "plugin.toml").write_text('name = "broken"\ndescription = [\n')
    (root / "badcsv").mkdir()
    (root / "badcsv" / "examples.csv").write_text("utterance,intent\nhi,greet\n")
    (root / "badcsv" / "plugin.toml").write_text('name = "badcsv"\ndescription = "d"\n[data]\nexamples = "examples.csv"\n')
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[root]), encoder=encoder)
    assert agent.reply("I lost my card").plugin == "shop"
    reasons = {s.path.name: s.reason for s in agent.skipped}
    assert "plugin.toml: invalid TOML" in reasons["broken"]
    assert "expected columns ['text', 'label']" in reasons["badcsv"] and "found ['utterance', 'intent']" in reasons["badcsv"]


def test_a_plugin_without_a_labels_table_takes_corrections_to_any_label_of_its_examples(tmp_path: Path, encoder) -> None:
    from conftest import DESK, two_plugin_home

    agent = Agent(two_plugin_home(tmp_path, DESK), encoder=encoder)
    first = agent.reply("I forgot my password", "c", plugin="desk").turn_id
    second = agent.reply("where is my parcel", "c", plugin="desk").turn_id
    agent.feedback(first, label="invoice_copy")
    agent.feedback(second, label="delivery_time")  # refused before: only the label taught first counted
    with pytest.raises(InputError, match="not a label of plugin desk"):
        agent.feedback(second, label="opening_hours")
