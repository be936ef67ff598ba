"""The review queue: what it ranks first, how similar messages are grouped, and the decisions a person makes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import agent.cli.review  # noqa: F401  (registers the command)
from agent.cli.main import cli
from agent.errors import InputError
from agent.learn import trainset
from agent.learn.trainset import logged_rows
from agent.reply.agent import Agent
from agent.review import queue as review
from agent.settings import Settings

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
    sure = [i for i in items if i.turn_id in clear]
    assert all(i.score < items[0].score and not i.fallback_reason and i.similar == 1 for i in sure)
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
    queue = json.loads(listed.stdout)
    assert [q["turn_id"] for q in queue][0] == ids[0] and {"reason", "similar", "score", "label"} <= set(queue[0])
    decided = CliRunner().invoke(cli, ["--device", "cpu", "review", "shop", "--decide"], env=env, input="o\nweather\nrefund\n")
    assert decided.exit_code == 0, decided.output
    assert "not a label of plugin shop" in decided.output and "2 decisions stored" in decided.output
    both = CliRunner().invoke(cli, ["--device", "cpu", "review", "shop", "--decide", "--json"], env=env)
    assert both.exit_code == 2 and "--decide asks for decisions one by one" in both.output
    kinds = {t: [(f["kind"], f["label"]) for f in agent.store.turn(t)["feedback"]] for t in ids}
    assert kinds == {ids[0]: [("out_of_scope", None)], ids[1]: [("label", "refund")]}
    more = log(agent, UNSURE[1:3])
    ended = CliRunner().invoke(cli, ["--device", "cpu", "review", "shop", "--decide"], env=env, input="o\n")  # then EOF
    assert ended.exit_code == 0 and "1 decision stored" in ended.output and "Aborted" not in ended.output
    assert sum(bool(agent.store.turn(t)["feedback"]) for t in more) == 1
    unknown = CliRunner().invoke(cli, ["--device", "cpu", "review", "nosuch"], env=env)
    assert unknown.exit_code == 2 and "no responder plugin named 'nosuch'" in unknown.output


def test_feedback_out_of_scope_from_the_command_line(settings: Settings, agent: Agent) -> None:
    [turn] = log(agent, UNSURE[:1])
    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(settings.plugin_paths[0])}
    done = CliRunner().invoke(cli, ["feedback", str(turn), "--out-of-scope"], env=env)
    assert done.exit_code == 0, done.output
    assert agent.store.turn(turn)["feedback"][0]["kind"] == "out_of_scope"


TRAM = ["is the tram strike on tomorrow", "is there a tram strike tomorrow?", "tram strike tomorrow, is it on",
        "will the trams run during the strike", "are tram drivers on strike this week"]
CRYPTO = ["can I buy bitcoin with my account", "do you sell bitcoin", "I want to buy some crypto like bitcoin",
          "how do I purchase bitcoin here", "bitcoin buying in the app?"]


def test_proposals_group_unknown_questions_and_accepting_labels_them(agent: Agent, settings: Settings) -> None:
    from agent.review import proposals

    tram, crypto = log(agent, TRAM), log(agent, CRYPTO)
    log(agent, ["I lost my card, please block it"])  # answered surely: not an unknown question
    found = proposals.propose(agent, "shop")
    groups = [set(p.turn_ids) for p in found]
    assert all(g <= set(tram) or g <= set(crypto) for g in groups), groups  # no group mixes the two questions
    assert any(len(g & set(tram)) >= 3 for g in groups) and any(len(g & set(crypto)) >= 3 for g in groups), groups
    tram_p = next(p for p in found if set(p.turn_ids) <= set(tram))
    assert ("tram" in tram_p.name or "strike" in tram_p.name) and len(tram_p.examples) == min(5, tram_p.size)
    assert tram_p.nearest_label in ("card_lost", "opening_hours", "refund")
    done = proposals.accept(agent, tram_p)
    assert done["merged"] is False and done["turns"] == tram_p.size
    assert {agent.store.turn(t)["feedback"][0]["label"] for t in tram_p.turn_ids} == {tram_p.name}
    stub = (settings.home / "proposals" / "shop" / "faq_stub.csv").read_text().splitlines()
    assert stub[0] == "id,question,answer,label" and stub[1].endswith(f",,{tram_p.name}")
    assert not any(set(p.turn_ids) & set(tram_p.turn_ids) for p in proposals.propose(agent, "shop"))  # decided turns leave
    crypto_p = next(p for p in proposals.propose(agent, "shop") if set(p.turn_ids) <= set(crypto))
    into_taught = proposals.accept(agent, crypto_p, tram_p.name)  # a label taught, not yet trained: a merge
    assert into_taught["merged"] is True and into_taught["faq_stub"] is None
    assert len((settings.home / "proposals" / "shop" / "faq_stub.csv").read_text().splitlines()) == 2  # no second stub
    agent.feedback(crypto_p.turn_ids[0], label=tram_p.name)  # a taught label needs no "new" any more
    agent.feedback(tram_p.turn_ids[0], label="refund")  # a person looked at this one
    rows = trainset.build([], logged_rows(agent.store, "shop"), ["refund", tram_p.name], holdout=0.0).train
    counts = {t: sum(r.source == f"log:{t}" for r in rows) for t in tram_p.turn_ids}
    assert counts[tram_p.turn_ids[0]] == trainset.LOG_REPEAT  # decided one by one: counts three times
    assert set(list(counts.values())[1:]) == {1}  # labelled with the whole group: counts once


def test_review_proposals_on_the_command_line_list_accept_and_merge(settings: Settings, agent: Agent) -> None:
    crypto = log(agent, CRYPTO)
    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(settings.plugin_paths[0])}
    listed = CliRunner().invoke(cli, ["--device", "cpu", "review", "shop", "--proposals", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [proposal] = json.loads(listed.stdout)
    stale = CliRunner().invoke(cli, ["--device", "cpu", "review", "shop", "--accept", "00000000"], env=env)
    assert stale.exit_code == 1 and "no proposal 00000000 for shop now" in stale.output
    merged = CliRunner().invoke(cli, ["--device", "cpu", "review", "shop", "--accept", proposal["id"], "--label", "refund"],
                                env=env)
    assert merged.exit_code == 0, merged.output
    assert f"{len(proposal['turn_ids'])} turns labelled: merged into refund" in merged.output
    assert {agent.store.turn(t)["feedback"][0]["label"] for t in proposal["turn_ids"]} == {"refund"}
    assert set(proposal["turn_ids"]) <= set(crypto)
    assert not (settings.home / "proposals").exists()  # a merge needs no FAQ stub
