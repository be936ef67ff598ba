"""Two likely labels: a close call offers both (numbered in plain chat, buttons in the app), and the pick is learned."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.errors import PluginError
from agent.learn.trainset import logged_rows
from agent.models.encoder import Encoder
from agent.plugin.loaded import Decision
from agent.plugin.manifest import Thresholds, load_manifest
from agent.reply import offers as two
from agent.reply.agent import Agent
from agent.settings import PACKAGE_ROOT, Settings
from conftest import make_plugin

PLUGIN = PACKAGE_ROOT / "plugins" / "customer_service"
TWO_THINGS = "my card got eaten by the atm and the app says I was charged twice"
BOTH = "I lost my card and I want to close my account"


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Agent:
    """The bundled customer_service plugin alone, with a temporary home (each test has its own conversations)."""
    return Agent(Settings(home=tmp_path_factory.mktemp("home"), plugin_paths=[PLUGIN]), encoder=encoder)


def stored_feedback(agent: Agent) -> int:
    """How many feedback rows the log holds."""
    return len(agent.store.query("SELECT id FROM feedback")) if agent.settings.db_path.exists() else 0


def faq_answers(label: str) -> set[str]:
    """The answers the bundled FAQ gives for a label."""
    import csv

    with open(PLUGIN / "faq.csv", encoding="utf-8") as fh:
        return {r["answer"] for r in csv.DictReader(fh) if r["label"] == label}


def test_a_fallback_between_two_labels_offers_both_and_the_pick_is_learned(bank: Agent) -> None:
    first = bank.reply(TWO_THINGS, "c1")
    assert first.fallback_reason is not None and [c["label"] for c in first.choices] == [p["label"] for p in first.predictions[:2]]
    assert "1. Report a lost or stolen card" in first.text and "\n2. " in first.text
    assert bank.store.turn(first.turn_id)["choices"][1]["label"] == first.choices[1]["label"]
    second = first.choices[1]["label"]
    picked = bank.reply("2", "c1")
    assert (picked.label, picked.fallback_reason, picked.choices) == (second, None, [])
    assert picked.text in faq_answers(second)
    feedback = bank.store.turn(first.turn_id)["feedback"]
    assert [(f["kind"], f["label"]) for f in feedback] == [("label", second)]
    assert (TWO_THINGS, second) in [(r.text, r.label) for r in logged_rows(bank.store, "customer_service")]
    assert bank.store.turn(picked.turn_id)["feedback"] == []  # the "2" itself teaches nothing ...
    bank.feedback(picked.turn_id, rating="good")
    assert "2" not in [r.text for r in logged_rows(bank.store, "customer_service")]  # ... even when rated good
    assert bank.store.turn(picked.turn_id)["picked_from"] == first.turn_id and bank.store.turn(picked.turn_id)["forced"] is None


def test_only_the_first_message_of_a_conversation_in_a_batch_picks(bank: Agent) -> None:
    first = bank.reply(TWO_THINGS, "c6")
    replies = bank.replies([_msg("2", "c6"), _msg("1", "c6")])
    assert replies[0].label == first.choices[1]["label"] and replies[1].fallback_reason is not None
    assert [f["label"] for f in bank.store.turn(first.turn_id)["feedback"]] == [first.choices[1]["label"]]


def test_a_switch_closes_the_offer(bank: Agent) -> None:
    bank.reply(TWO_THINGS, "c7")
    before = stored_feedback(bank)
    bank.reply("/use customer_service", "c7")
    after = bank.reply("2", "c7")
    assert after.fallback_reason is not None and stored_feedback(bank) == before


def test_an_answer_with_a_close_second_offers_the_second(bank: Agent) -> None:
    reply = bank.reply(BOTH, "c2")
    assert reply.fallback_reason is None and reply.answer_id is not None
    assert reply.text.split("\n\n")[0] in faq_answers(reply.label) and reply.text.endswith("reply 2.")
    assert [c["label"] for c in reply.choices] == ["card_lost_or_stolen", "account_close"]
    picked = bank.reply("the second one", "c2")
    assert picked.label == "account_close" and picked.text in faq_answers("account_close")


def test_a_pick_only_counts_right_after_the_offer(bank: Agent) -> None:
    bank.reply(TWO_THINGS, "c3")
    before = stored_feedback(bank)
    other = bank.reply("how do I change my PIN?", "c3")
    assert other.label == "card_pin_change" and not other.choices
    again = bank.reply("2", "c3")  # the last turn offered nothing: "2" is just a message
    assert not bank.store.turn(again.turn_id)["feedback"] and bank.store.turn(other.turn_id)["feedback"] == []
    lone = bank.reply("2", "c-new")
    assert lone.turn_id is not None and stored_feedback(bank) == before


def test_the_offer_survives_a_new_process(tmp_path: Path, encoder: Encoder) -> None:
    settings = Settings(home=tmp_path / "home", plugin_paths=[PLUGIN])
    first = Agent(settings, encoder=encoder).reply(TWO_THINGS, "c4")
    picked = Agent(settings, encoder=encoder).reply("1", "c4")  # e.g. agent ask -c c4 1
    assert picked.label == first.choices[0]["label"] and picked.fallback_reason is None


def test_a_dry_run_picks_but_stores_nothing(bank: Agent) -> None:
    before = stored_feedback(bank)
    first, = bank.replies([_msg(TWO_THINGS, "c5")], log=False)
    assert first.choices and first.turn_id is None
    picked, = bank.replies([_msg("2", "c5")], log=False)
    assert picked.label == first.choices[1]["label"]
    assert stored_feedback(bank) == before


def _msg(text: str, conversation: str) -> object:
    from agent.reply.agent import Message

    return Message(text, conversation)


def test_plain_chat_numbers_the_choices_and_takes_a_number(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "chat", "--plain"],
                                input=f"{TWO_THINGS}\n2\n", env={"AGENT_LOAD_PLUGINS": "customer_service"})
    assert result.exit_code == 0, result.output
    assert "1. Report a lost or stolen card and block it" in result.output and "Reply 1 or 2" in result.output
    assert "I don't recognise this" in result.output  # the answer for the second label


@pytest.mark.parametrize("text, n", [("1", 0), ("2", 1), ("2.", 1), ("#2", 1), ("the second one", 1), ("First", 0),
                                     ("option 2", 1), ("i meant the first one", 0), ("account close", 1),
                                     ("close an account", 1), ("3", None), ("2 cards", None), ("I need help", None)])
def test_what_counts_as_a_pick(text: str, n: int | None) -> None:
    offered = [two.Choice("card_lost_or_stolen", 0.4, "Report a lost or stolen card"), two.Choice("account_close", 0.3, "Close an account")]
    got = two.pick(text, offered)
    assert got is (offered[n] if n is not None else None)


def test_when_two_are_offered() -> None:
    th = Thresholds()
    top = [("a", 0.2), ("b", 0.15), ("c", 0.1)]
    assert two.offer(Decision("a", 0.2, top, "low_confidence 0.20 < 0.40"), th) is two.Offer.ASK
    assert two.offer(Decision("a", 0.2, [("a", 0.2), ("b", 0.05)], "low_confidence 0.20 < 0.40"), th) is two.Offer.NONE
    assert two.offer(Decision("a", 0.2, top, "out_of_scope 0.20 < 0.40"), th) is two.Offer.NONE
    assert two.offer(Decision("a", 0.5, [("a", 0.5), ("b", 0.45)], None), th) is two.Offer.ALSO
    assert two.offer(Decision("a", 0.6, [("a", 0.6), ("b", 0.3)], None), th) is two.Offer.NONE
    assert two.offer(Decision("a", 0.2, top, "low_confidence"), Thresholds(two_choices=1.0)) is two.Offer.NONE


def test_thresholds_are_checked(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path)
    toml = folder / "plugin.toml"
    toml.write_text(toml.read_text().replace("min_similarity = 0.40", "min_similarity = 0.40\ntwo_choices = 1.5"))
    with pytest.raises(PluginError, match="two_choices"):
        load_manifest(folder)
    toml.write_text(toml.read_text().replace("two_choices = 1.5", "two_choices = 1.0\nsecond_choice = 0.9"))
    th = load_manifest(folder).thresholds
    assert (th.two_choices, th.second_choice) == (1.0, 0.9)


def test_the_app_shows_the_choices_as_buttons_and_a_click_picks(tmp_path: Path, encoder: Encoder) -> None:
    import asyncio

    from test_tui import SIZE, app_for, send, until
    from textual.widgets import Button

    from tui.widgets import AgentMessage

    settings = Settings(home=tmp_path / "home", plugin_paths=[PLUGIN])

    async def go() -> None:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            message = await send(pilot, app, TWO_THINGS)
            offered = app.last.choices
            buttons = list(message.query(".choice").results(Button))
            assert [str(b.label) for b in buttons] == [f"{n}. {c['about']}" for n, c in enumerate(offered, 1)]
            before = len(app.query(AgentMessage))
            await pilot.click(f"#{buttons[1].id}")
            await until(pilot, lambda: len(app.query(AgentMessage)) > before)
            assert app.last.label == offered[1]["label"] and app.last.fallback_reason is None
            assert all(b.disabled for b in buttons)
            stored = app.session.agent.store.turn(message.reply.turn_id)["feedback"]
            assert [f["label"] for f in stored] == [offered[1]["label"]]

    asyncio.run(go())


def test_a_replay_neither_picks_nor_learns(bank: Agent) -> None:
    from agent.replay.engine import Batch, replay_batch
    from agent.replay.inputs import ReplayTurn

    before = stored_feedback(bank)
    first = replay_batch(bank, Batch(1, [ReplayTurn(1, "r1", TWO_THINGS)]), "", log=True)
    second = replay_batch(bank, Batch(2, [ReplayTurn(2, "r1", "2")]), "", log=True)
    assert first[0]["fallback_reason"] is not None and second[0]["fallback_reason"] is not None  # "2" alone is no question
    assert stored_feedback(bank) == before


def test_a_message_sent_to_another_plugin_does_not_pick(tmp_path: Path, encoder: Encoder) -> None:
    plugins = PACKAGE_ROOT / "plugins"
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[PLUGIN, plugins / "order_tracking"]), encoder=encoder)
    first = agent.reply(TWO_THINGS, "c8", plugin="customer_service")
    assert first.choices
    other = agent.reply("2", "c8", plugin="order_tracking")
    assert other.plugin == "order_tracking" and stored_feedback(agent) == 0


def test_a_switch_later_in_the_batch_still_closes_the_offer(bank: Agent) -> None:
    before = stored_feedback(bank)
    first, _ = bank.replies([_msg(TWO_THINGS, "c9"), _msg("/use customer_service", "c9")])
    assert first.choices
    assert bank.reply("2", "c9").fallback_reason is not None and stored_feedback(bank) == before
