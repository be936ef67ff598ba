"""Short messages without words (":)", "?", "👍"): answered, logged and scored like any other; binary junk is
still refused. Through the real CLI, the real encoder and a real SQLite log; the observer is the bundled
sentiment monitor."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli.main import cli
from agent.plugin.manifest import load_manifest
from agent.reply.agent import Agent
from agent.scenarios.monitor.run import watch
from agent.settings import Settings
from agent.store import Store
from conftest import REPO, make_plugin

BINARY = "the message does not look like text (binary data or invalid UTF-8)"
THANKS, QUESTION, FALLBACK = "thanks", "question", "fallback"
SHORT = [(":)", THANKS), ("?", QUESTION), ("👍", THANKS), ("👍🏽", THANKS), (":-(", FALLBACK), ("¿?", QUESTION),
         ("❤️", THANKS), ("…", FALLBACK)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, encoder: object) -> dict[str, Path]:
    """A home, the tiny shop responder and a copy of the bundled sentiment monitor (an observer)."""
    tmp = tmp_path_factory.mktemp("short")
    root = tmp / "plugins"
    shutil.copytree(REPO / "plugins" / "sentiment_monitor", root / "sentiment_monitor",
                    ignore=shutil.ignore_patterns("model", "__pycache__"))
    make_plugin(root)
    return {"home": tmp / "home", "plugins": root}


def ask(world: dict[str, Path], *args: str, input: bytes | None = None) -> Result:
    """`agent --device cpu ask ARGS` with the world's home and plugins only."""
    env = {"AGENT_HOME": str(world["home"]), "AGENT_PLUGINS_PATH": str(world["plugins"]),
           "AGENT_LOAD_PLUGINS": "shop,sentiment_monitor"}
    return CliRunner().invoke(cli, ["--device", "cpu", "ask", *args], env=env, input=input)


@pytest.mark.parametrize(("message", "kind"), SHORT)
def test_a_short_message_gets_a_reply_is_logged_and_scored(world: dict[str, Path], message: str, kind: str) -> None:
    result = ask(world, "--plugin", "shop", "--json", message)
    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout)
    shop = load_manifest(world["plugins"] / "shop")
    expected = {THANKS: "anything else I can help with", QUESTION: "What would you like to know?",
                FALLBACK: shop.fallback_message}[kind]
    assert expected in reply["text"]
    assert reply["fallback_reason"] == "no_words" and reply["answer_id"] is None  # no corpus answer guessed
    assert reply["annotations"]["sentiment_monitor"]["label"] in ("negative", "neutral", "positive")
    stored = Store(world["home"] / "agent.db").turn(reply["turn_id"])
    assert stored["text"] == message and stored["reply"] == reply["text"] and stored["fallback_reason"] == "no_words"
    assert stored["annotations"]["sentiment_monitor"]["label"] == reply["annotations"]["sentiment_monitor"]["label"]


def test_the_question_back_suggests_one_of_the_plugins_own_examples(world: dict[str, Path]) -> None:
    reply = json.loads(ask(world, "--plugin", "shop", "--json", "??").stdout)
    examples = (world["plugins"] / "shop" / "examples.csv").read_text().splitlines()[1:]
    assert any(f'"{line.rsplit(",", 1)[0]}"' in reply["text"] for line in examples), reply["text"]


def test_messages_with_words_are_answered_as_before(world: dict[str, Path]) -> None:
    for message in ("I lost my card :(", "refund please 👍", "10:30?"):
        reply = json.loads(ask(world, "--plugin", "shop", "--json", message).stdout)
        assert reply["fallback_reason"] != "no_words", message
    reply = json.loads(ask(world, "--plugin", "shop", "--json", "how do I block a lost card? :)").stdout)
    assert reply["label"] == "card_lost" and reply["answer_id"] == "lost-1"


@pytest.mark.parametrize("message", ["\ufffd" * 8, "\ue000\ue001\ue002", "\U000f0000 \U000f0001", "\ufffe",
                                     "\udcff\udcfe\udcfd\udc80"])  # the last: invalid bytes, as argv decodes them
def test_binary_junk_is_still_refused(world: dict[str, Path], message: str) -> None:
    result = ask(world, "--plugin", "shop", message)
    assert result.exit_code == 1 and BINARY in result.output


@pytest.mark.parametrize("data", [b"\x00\x01\xff\xfe", os.urandom(64), bytes(range(256)), b"\x00\x01\x02\x03\x04"])
def test_binary_junk_on_stdin_is_refused_and_nothing_is_logged(world: dict[str, Path], data: bytes) -> None:
    db = world["home"] / "agent.db"
    before = len(Store(db).turns(limit=10_000)) if db.exists() else 0
    result = ask(world, "--plugin", "shop", "-", input=data)
    assert result.exit_code == 1 and BINARY in result.output
    assert (len(Store(db).turns(limit=10_000)) if db.exists() else 0) == before


def test_a_feed_scores_short_items_instead_of_skipping_them(world: dict[str, Path], encoder: object) -> None:
    agent = Agent(Settings(home=world["home"], plugin_paths=[world["plugins"]]), encoder=encoder)  # type: ignore[arg-type]
    texts = [":)", "the app keeps crashing, awful", "👍🏽", "?", "\ufffd\ufffd\ufffd"]
    feed = "".join(json.dumps({"text": t, "timestamp": 1795392000 + i}) + "\n" for i, t in enumerate(texts))
    summary = watch(agent.observers["sentiment_monitor"], agent.store, io.BytesIO(feed.encode()), None)
    assert (summary.items, summary.bad_lines) == (4, 1)
    rows = agent.store.query("SELECT line, text, label FROM feed_items WHERE run_id = ? ORDER BY line", [summary.run_id])
    assert [(r["line"], r["text"]) for r in rows] == [(1, ":)"), (2, texts[1]), (3, "👍🏽"), (4, "?")]
    assert all(r["label"] in ("negative", "neutral", "positive") for r in rows)
