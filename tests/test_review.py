"""The review queue: what it ranks first, how similar messages are grouped, and the decisions a person makes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import agent.cli_review  # noqa: F401  (registers the command)
from agent import review
from agent.cli import cli
from agent.core import Agent
from agent.errors import InputError
from agent.settings import Settings
from agent.trainset import logged_rows

CLEAR = ["I lost my card, please block it", "what are your opening hours", "I want a refund for my order"]
UNSURE = ["is the tram strike on tomorrow", "is there a tram strike tomorrow?", "tram strike tomorrow, is it on"]


def log(agent: Agent, texts: list[str]) -> list[int]:
    """Ask each message in its own conversation; the logged turn ids."""
    return [agent.reply(t, conversation_id=f"r{n}-{t[:8]}").turn_id for n, t in enumerate(texts)]


def test_unsure_turns_with_many_similar_messages_come_first_once_per_group(agent: Agent) -> None:
    clear, unsure = log(agent, CLEAR), log(agent, UNSURE)
    items = review.build(agent, limit=10)
    assert items[0].turn_id in unsure and items[0].fallback_reason and items[0].similar == 3
    assert "2 similar messages waiting" in items[0].reason
    assert sum(i.turn_id in unsure for i in items) == 1  # the group is shown once
    shown = [i.turn_id for i in items]
    assert all(shown.index(items[0].turn_id) < shown.index(c) for c in clear if c in shown)
    assert [i.score for i in items] == sorted((i.score for i in items), reverse=True)


def test_decisions_leave_the_queue_and_out_of_scope_teaches_no_label(agent: Agent) -> None:
    clear, unsure = log(agent, CLEAR[:2]), log(agent, UNSURE[:1])
    review.decide(agent, unsure[0], "out_of_scope")
    review.decide(agent, clear[0], "confirm")
    review.decide(agent, clear[1], "correct", "refund")
    assert review.build(agent, limit=10) == []
    rows = {r.text: r.label for r in logged_rows(agent.store, "shop")}
    assert rows == {CLEAR[0]: agent.store.turn(clear[0])["label"], CLEAR[1]: "refund"}
    review.decide(agent, clear[1], "out_of_scope")  # a later "out of scope" overrules the correction
    assert CLEAR[1] not in {r.text for r in logged_rows(agent.store, "shop")}
    with pytest.raises(InputError, match="not a review decision"):
        review.decide(agent, clear[0], "maybe")
    with pytest.raises(InputError, match="not a label of plugin shop"):
        review.decide(agent, clear[0], "correct", "weather")


def test_review_json_and_one_key_decisions_in_the_terminal(settings: Settings, agent: Agent) -> None:
    ids = log(agent, UNSURE[:1] + CLEAR[:1])
    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(settings.plugin_paths[0])}
    listed = CliRunner().invoke(cli, ["--device", "cpu", "review", "shop", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    queue = json.loads(listed.output)
    assert [q["turn_id"] for q in queue][0] == ids[0] and {"reason", "similar", "score", "label"} <= set(queue[0])
    decided = CliRunner().invoke(cli, ["--device", "cpu", "review", "shop", "--decide"], env=env, input="o\nweather\nrefund\n")
    assert decided.exit_code == 0, decided.output
    assert "not a label of plugin shop" in decided.output
    kinds = {t: [(f["kind"], f["label"]) for f in agent.store.turn(t)["feedback"]] for t in ids}
    assert kinds == {ids[0]: [("out_of_scope", None)], ids[1]: [("label", "refund")]}
    unknown = CliRunner().invoke(cli, ["--device", "cpu", "review", "nosuch"], env=env)
    assert unknown.exit_code == 2 and "no responder plugin named 'nosuch'" in unknown.output


def test_feedback_out_of_scope_from_the_command_line(settings: Settings, agent: Agent) -> None:
    [turn] = log(agent, UNSURE[:1])
    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(settings.plugin_paths[0])}
    done = CliRunner().invoke(cli, ["feedback", str(turn), "--out-of-scope"], env=env)
    assert done.exit_code == 0, done.output
    assert agent.store.turn(turn)["feedback"][0]["kind"] == "out_of_scope"
