"""Recommender replies: an item the person names is part of the answer, headers are sentences, reasons are whole."""

from __future__ import annotations

import re
import shutil

import pytest

from agent.reply.agent import Agent, Reply
from agent.scenarios.recommend.events import item_feedback
from agent.scenarios.recommend.model import avoided_terms
from agent.settings import Settings
from conftest import REPO

FOLLOW_UPS = {"more_like_this", "not_this", "like_this"}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, encoder) -> Agent:
    """The bundled recommender (a copy) with a real database; each test talks as its own user."""
    root = tmp_path_factory.mktemp("replies")
    shutil.copytree(REPO / "plugins" / "recommender", root / "plugins" / "recommender",
                    ignore=shutil.ignore_patterns("interest", "__pycache__"))
    return Agent(Settings(home=root / "home", plugin_paths=[root / "plugins"]), encoder=encoder)


def ask(agent: Agent, text: str, user: str) -> tuple[Reply, list[str]]:
    """One request in a fresh conversation: the reply and the ids it shows."""
    reply = agent.reply(text, f"{user}-{text}", "recommender", user=user)
    return reply, [i["id"] for i in reply.extra("items")]


def reason_parts(reply: Reply) -> list[str]:
    """Every reason of every item, one phrase each."""
    return [part for item in reply.extra("items") for part in item["reason"].split("; ")]


def is_sentences(header: str) -> bool:
    """Capitalised sentences ending in '.' or ':', the last one with ':' (the items follow)."""
    return re.fullmatch(r"(?:[A-Z][^.:]*[^ .:][.:] )*[A-Z][^.:]*[^ .:]:", header) is not None


@pytest.mark.parametrize("text, named, title", [
    ("any good savings account for a student?", "student-account", "Northwind Student Account"),
    ("recommend me a travel card with no foreign fees", "travel-card", "Northwind Travel Card"),
    ("I'd like the joint account for me and my partner", "joint-account", "Northwind Joint Account"),
])
def test_a_named_item_comes_first_and_the_header_says_so(agent: Agent, text: str, named: str, title: str) -> None:
    reply, ids = ask(agent, text, "ann")
    assert ids[0] == named and ids.count(named) == 1 and len(ids) == 3
    assert reply.text.startswith(title) and is_sentences(reply.text)
    assert reply.extra("items")[0]["reason"].startswith("the one you asked about")
    assert all(f"similar to {title}" in i["reason"] for i in reply.extra("items")[1:])


def test_avoided_phrases_are_kept_whole_in_the_header_and_the_reasons(agent: Agent) -> None:
    reply, ids = ask(agent, "recommend me a travel card with no foreign fees", "bo")
    assert reply.text.endswith("without foreign fees:") and "without foreign:" not in reply.text
    assert not reply.text.startswith("Northwind Travel Card fits")  # the card charges abroad: it is not said to fit
    reasons = reason_parts(reply)
    assert "no foreign" not in reasons and all(r.startswith("no foreign fees") for r in reasons if r.startswith("no "))
    assert sum(r == "no foreign fees" for r in reasons) == 2  # both other cards say they have no foreign fees
    monthly, _ = ask(agent, "a current account with no monthly fee", "bo")
    assert monthly.text == "Here are some ideas without monthly fee or foreign fees:"  # bo's earlier wish still holds
    assert all("no monthly fee" in i["reason"] for i in monthly.extra("items"))


def test_asking_for_something_like_or_other_than_an_item_leaves_it_out(agent: Agent) -> None:
    like, ids = ask(agent, "something like the travel card", "cy")
    assert "travel-card" not in ids and len(ids) == 3 and like.text == "Here are some ideas similar to Northwind Travel Card:"
    other, ids = ask(agent, "other than the student account, what do you have for students?", "cy")
    assert "student-account" not in ids and other.text == "Here are some alternatives to Northwind Student Account:"
    for text, named in (("a card similar to the voyager credit card", "voyager-credit-card"),
                        ("alternatives to the regular saver", "regular-saver"),
                        ("instead of the travel card plus, anything cheaper?", "travel-card-plus")):
        reply, ids = ask(agent, text, "cy")
        assert named not in ids and len(ids) == 3 and is_sentences(reply.text), text


def test_a_named_item_with_what_they_avoid_comes_last_and_says_why(agent: Agent) -> None:
    reply, ids = ask(agent, "a travel card without fees", "dee")
    assert ids[-1] == "travel-card" and len(ids) == 3
    assert reply.text == "Northwind Travel Card is listed last, as it mentions fees. Here are some ideas without fees:"
    assert reply.extra("items")[-1]["reason"] == "the one you asked about; mentions fees, which you asked to avoid"
    assert all(i["reason"].startswith("no fees") for i in reply.extra("items")[:-1])


def test_a_rejected_item_stays_out_even_when_named(agent: Agent) -> None:
    shown, ids = ask(agent, "a travel card please", "eve")
    assert ids[0] == "travel-card"
    item_feedback(agent, shown.turn_id, "travel-card", "dislike")
    again, ids = ask(agent, "a travel card please", "eve")
    assert "travel-card" not in ids and again.text == "You turned down Northwind Travel Card before, so here are some other ideas:"


def test_a_follow_up_naming_an_item_not_shown_is_a_request(agent: Agent) -> None:
    """'not the travel card' as the first message is read as a follow-up; it names an item, so it is answered."""
    reply, ids = ask(agent, "not the travel card", "fay")
    assert reply.label in FOLLOW_UPS  # the head reads it as a follow-up: without the item name it would ask "which one?"
    assert "travel-card" not in ids and len(ids) == 3
    assert reply.text == "Here are some alternatives to Northwind Travel Card:"  # and "travel card" is not an avoided term


def test_no_item_named_gives_plain_sentences(agent: Agent) -> None:
    for text in ("I want to save for a house", "a credit card with no annual fee please"):
        reply, ids = ask(agent, text, "gus")
        assert len(ids) == 3 and reply.text.startswith("Here are some ideas") and is_sentences(reply.text)
    assert reply.text == "Here are some ideas without annual fee:"
    assert all(r != "no annual" for r in reason_parts(reply))


def test_avoided_terms_are_whole_phrases() -> None:
    assert avoided_terms("recommend me a travel card with no foreign fees") == ["foreign fees"]
    assert avoided_terms("no foreign transaction fees please") == ["foreign transaction fees"]
    assert avoided_terms("without any fees at all, for a student") == ["fees"]
    assert avoided_terms("no monthly fee and no overdraft") == ["monthly fee", "overdraft"]
    assert avoided_terms("not too expensive, and not that one") == []
