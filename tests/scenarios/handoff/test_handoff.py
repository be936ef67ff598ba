"""Handoff: a conversation goes to a person when the customer asks (a [handoff] label), after fallbacks in a row, or
when an operator takes it; the agent stays silent while a person has it, the customer is told once, the person's
replies reach the customer, what the operator labels is a correction, and the state survives a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.errors import PluginError
from agent.models.encoder import Encoder
from agent.reply.agent import Agent
from agent.scenarios.handoff import inbox
from agent.scenarios.handoff.config import NOTICE
from agent.scenarios.handoff.inbox import HandoffError
from agent.settings import Settings
from conftest import make_plugin

HANDOFF = '\n[handoff]\nlabels = ["refund"]\nafter_fallbacks = 2\nnotice = "Someone from the team will answer you here."\n'


@pytest.fixture
def desk(tmp_path: Path, encoder: Encoder) -> Agent:
    """The tiny shop plugin, where asking for a refund goes to a person and two fallbacks in a row do too."""
    folder = make_plugin(tmp_path / "plugins")
    (folder / "plugin.toml").write_text((folder / "plugin.toml").read_text() + HANDOFF)
    return Agent(Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"]), encoder=encoder)


def test_asking_for_a_person_holds_the_conversation_until_it_is_released(desk: Agent) -> None:
    first = desk.reply("I want my money back, refund my order please", "c1")
    assert first.label == "refund" and first.text == "Someone from the team will answer you here."
    assert first.extras["handoff"]["state"] == "waiting" and first.turn_id is not None
    second = desk.reply("when are you open?", "c1")
    assert second.text == "" and second.label == "opening_hours"  # told once; still classified and logged
    assert [r["conversation_id"] for r in inbox.waiting(desk.store)] == ["c1"]

    inbox.take(desk.store, "c1", "ana")
    event = inbox.reply(desk.store, "c1", "Hello, I am Ana. I have refunded order 12.", "ana")
    third = desk.reply("thanks!", "c1")
    assert third.text == "" and [m["text"] for m in third.extras["handoff"]["messages"]] == [event["text"]]
    assert desk.reply("and again", "c1").extras["handoff"]["messages"] == []  # each reply is returned once

    inbox.release(desk.store, "c1", "ana")
    after = desk.reply("what are your opening hours?", "c1")
    assert after.label == "opening_hours" and "9 to 5" in after.text and "handoff" not in after.extras
    kinds = [e["kind"] for e in inbox.events(desk.store, "c1")]
    assert kinds == ["waiting", "message", "message", "taken", "reply", "message", "message", "released"]


def test_fallbacks_in_a_row_hand_over_and_an_answer_between_resets_the_count(desk: Agent, encoder: Encoder) -> None:
    assert desk.reply("zxqv blorp", "c2").fallback_reason is not None
    assert desk.reply("what are your opening hours?", "c2").fallback_reason is None
    assert not inbox.is_held(desk.store, "c2")
    desk.reply("zxqv blorp", "c2")
    later = Agent(desk.settings, encoder=encoder)  # the count is read from the log: another process continues it
    held = later.reply("qwrt plonk", "c2")
    assert held.text == "Someone from the team will answer you here."
    assert inbox.state(desk.store, "c2")["reason"] == "2 fallbacks in a row"
    inbox.release(desk.store, "c2", "ana")
    assert later.reply("zxqv blorp", "c2").text != ""  # the fallbacks before the release no longer count
    assert not inbox.is_held(desk.store, "c2")


def test_an_operator_takes_a_conversation_the_agent_answers(agent: Agent) -> None:
    agent.reply("what are your opening hours?", "c3")
    inbox.take(agent.store, "c3", "ana")
    assert agent.reply("hello?", "c3").text == NOTICE  # a plugin without [handoff]: the default notice, once
    assert agent.reply("anyone?", "c3").text == ""
    inbox.release(agent.store, "c3", "ana")
    assert agent.reply("what are your opening hours?", "c3").text


def test_refusals_change_nothing(desk: Agent) -> None:
    desk.reply("refund my order please", "c4")
    desk.reply("what are your opening hours?", "c5")
    before = inbox.events(desk.store, "c4")
    with pytest.raises(HandoffError, match="nobody has taken conversation 'c4'") as waiting:
        inbox.reply(desk.store, "c4", "hi", "ana")
    assert waiting.value.status == 409
    with pytest.raises(HandoffError, match="not in this home") as unknown:
        inbox.reply(desk.store, "nope", "hi", "ana")
    assert unknown.value.status == 404
    with pytest.raises(HandoffError, match="never handed to a person"):
        inbox.release(desk.store, "c5", "ana")
    inbox.release(desk.store, "c4", "ana")
    with pytest.raises(HandoffError, match=r"already back with the agent \(released at .*\); to answer it again, take it"):
        inbox.release(desk.store, "c4", "ana")
    inbox.take(desk.store, "c4", "ana")
    with pytest.raises(HandoffError, match="already taken by ana"):
        inbox.take(desk.store, "c4", "ben")
    with pytest.raises(HandoffError, match="ana has it; take it over first: agent handoff take c4 --force"):
        inbox.reply(desk.store, "c4", "hi", "ben")
    with pytest.raises(HandoffError, match="ana has it"):
        inbox.release(desk.store, "c4", "ben")
    assert [e["kind"] for e in inbox.events(desk.store, "c4")] == [e["kind"] for e in before] + ["released", "taken"]
    assert inbox.take(desk.store, "c4", "ben", force=True)["operator"] == "ben"
    inbox.reply(desk.store, "c4", "Ben here.", "ben")


def test_a_handoff_table_with_an_unknown_label_is_refused(tmp_path: Path) -> None:
    from agent.plugin.manifest import load_manifest

    folder = make_plugin(tmp_path / "plugins")
    (folder / "plugin.toml").write_text((folder / "plugin.toml").read_text() + '\n[handoff]\nlabels = ["speak_to_human"]\n')
    with pytest.raises(PluginError, match=r"plugin.toml: key 'handoff.labels' must be a list of this plugin's labels "
                                          r"\(card_lost, opening_hours, refund\), found 'speak_to_human'"):
        load_manifest(folder)


def test_the_state_survives_a_restart(desk: Agent, encoder: Encoder) -> None:
    desk.reply("refund my order please", "c6")
    desk.reply("are you there?", "c6")
    desk.store.close()
    again = Agent(desk.settings, encoder=encoder)
    assert [r["conversation_id"] for r in inbox.waiting(again.store)] == ["c6"]
    assert again.reply("hello??", "c6").text == ""  # still held, and the notice is not repeated
    assert len(inbox.show(again.store, "c6")["turns"]) == 3


def test_what_the_operator_labels_is_a_correction(desk: Agent) -> None:
    turn = desk.reply("the parcel never came and I want my money", "c7").turn_id
    inbox.take(desk.store, "c7", "ana")
    assert inbox.label(desk, "c7", turn, "refund", "ana") > 0
    taught = {t["id"]: t["label"] for t in desk.store.labelled_turns("shop")}
    assert taught[turn] == "refund"
    with pytest.raises(HandoffError, match="no turn 999 in conversation 'c7'"):
        inbox.label(desk, "c7", 999, "refund", "ana")


def test_a_person_reply_is_stored_redacted(desk: Agent) -> None:
    desk.reply("refund my order please", "c8")
    inbox.take(desk.store, "c8", "ana")
    sent = inbox.reply(desk.store, "c8", "I emailed ana.smith@example.com about it", "ana", desk.privacy("shop"))
    assert "ana.smith@example.com" not in sent["text"]
    assert "ana.smith@example.com" not in str(desk.store.query("SELECT text FROM handoff_events"))


def test_a_dry_run_or_a_replay_opens_no_handoff(desk: Agent) -> None:
    from agent.reply.agent import Message

    reply = desk.replies([Message("refund my order please", "c9")], log=False)[0]
    assert reply.text != "" and not inbox.is_held(desk.store, "c9")
    replayed = desk.replies([Message("refund my order please", "c9")], picks=False)[0]  # logged, but nobody waits
    assert replayed.turn_id is not None and replayed.text != "" and not inbox.is_held(desk.store, "c9")


def test_the_command_line(desk: Agent) -> None:
    from agent.cli.main import cli

    desk.reply("refund my order please", "c10")
    home = ["--home", str(desk.settings.home)]
    env = {"AGENT_PLUGINS_PATH": str(desk.settings.plugin_paths[0]), "COLUMNS": "200"}
    run = CliRunner().invoke
    listed = run(cli, [*home, "handoff", "list"], env=env)
    assert listed.exit_code == 0 and "c10" in listed.output and "asked for a person (refund)" in listed.output
    refused = run(cli, [*home, "handoff", "reply", "c10", "hello"], env=env)
    assert refused.exit_code == 1 and "take it first: agent handoff take c10" in refused.output
    assert run(cli, [*home, "handoff", "take", "c10", "--as", "ana"], env=env).exit_code == 0
    assert run(cli, [*home, "handoff", "reply", "c10", "Refund done.", "--as", "ana"], env=env).exit_code == 0
    shown = run(cli, [*home, "handoff", "show", "c10"], env=env)
    assert "Refund done." in shown.output and "refund" in shown.output
    assert run(cli, [*home, "handoff", "release", "c10", "--as", "ana"], env=env).exit_code == 0
    twice = run(cli, [*home, "handoff", "release", "c10"], env=env)
    assert twice.exit_code == 1 and "already back with the agent" in twice.output
    assert "No conversation is waiting" in run(cli, [*home, "handoff", "list"], env=env).output


def test_a_handoff_that_starts_is_queued_for_the_outlets_once(desk: Agent) -> None:
    from agent.outlets.targets import add

    add(desk.store, "webhook", "http://127.0.0.1:9/hook")
    desk.reply("refund my order please, my email is ann@example.com", "c11")
    desk.reply("hello?", "c11")  # still the same handoff: nothing new to send
    [row] = desk.store.query("SELECT event, plugin, body, state FROM deliveries")
    assert (row["event"], row["plugin"], row["state"]) == ("handoff", "shop", "queued")
    body = json.loads(row["body"])
    assert body["data"]["conversation_id"] == "c11" and body["data"]["reason"] == "asked for a person (refund)"
    assert "ann@example.com" not in row["body"]
    desk.reply("what are your opening hours?", "c12")
    inbox.take(desk.store, "c12", "ana")  # an operator takes a conversation the agent answers: a handoff starts too
    inbox.take(desk.store, "c12", "ana")
    assert [json.loads(r["body"])["data"]["reason"] for r in desk.store.query("SELECT body FROM deliveries ORDER BY id")] == [
        "asked for a person (refund)", "taken by ana"]


def test_a_plugin_without_declared_labels_has_its_handoff_labels_checked_when_it_loads(tmp_path: Path, encoder: Encoder) -> None:
    from conftest import DESK, two_plugin_home

    settings = two_plugin_home(tmp_path, DESK)
    manifest = settings.plugin_paths[0] / "desk" / "plugin.toml"
    manifest.write_text(manifest.read_text() + '\n[handoff]\nlabels = ["speak_to_human"]\n')
    with pytest.raises(PluginError, match=r"desk/plugin.toml: key 'handoff.labels' must be a list of this plugin's labels "
                                          r"\(.*invoice_copy.*\), found 'speak_to_human'"):
        Agent(settings, encoder=encoder).load_runtime(manifest.parent)
    manifest.write_text(manifest.read_text().replace("speak_to_human", "invoice_copy"))
    agent = Agent(settings, encoder=encoder)
    assert agent.reply("send me a copy of my invoice", "c13", plugin="desk").text == NOTICE
