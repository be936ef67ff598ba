"""The bundled customer_service plugin answers banking questions and admits what it does not know."""

from __future__ import annotations

import pytest

from agent.models.encoder import Encoder
from agent.plugin.data import read_rows
from agent.plugin.manifest import load_manifest
from agent.reply.agent import Agent
from agent.settings import PACKAGE_ROOT, Settings

PLUGIN = PACKAGE_ROOT / "plugins" / "customer_service"


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Agent:
    """An agent over the bundled plugins only, with a temporary home."""
    return Agent(Settings(home=tmp_path_factory.mktemp("home"), plugin_paths=[PACKAGE_ROOT / "plugins"]), encoder=encoder)


def test_data_meets_the_plugin_contract() -> None:
    m = load_manifest(PLUGIN)
    examples = read_rows(PLUGIN / m.examples, ["text", "label"])
    faq = read_rows(PLUGIN / m.retrieval.corpus, ["id", "question", "answer", "label"])
    per_label = {label: sum(r["label"] == label for r in examples) for label in m.labels}
    assert len(per_label) >= 30 and min(per_label.values()) >= 15
    assert len(faq) >= 60 and {r["label"] for r in faq} == set(m.labels)


@pytest.mark.parametrize("question, label", [
    ("I lost my card, can you block it?", "card_lost_or_stolen"),
    ("how do I block my card?", "card_lost_or_stolen"),
    ("my new card still hasn't come in the post", "card_not_arrived"),
    ("how do I change my PIN?", "card_pin_change"),
    ("I don't recognise a payment on my statement", "unrecognised_transaction"),
])
def test_answers_banking_questions(bank: Agent, question: str, label: str) -> None:
    reply = bank.reply(question)
    assert (reply.plugin, reply.label, reply.fallback_reason) == ("customer_service", label, None)
    faq_labels = {h["label"] for h in reply.hits}
    assert label in faq_labels and reply.text


@pytest.mark.parametrize("question", ["what's the weather on Mars tomorrow?", "write me a poem about penguins"])
def test_out_of_scope_falls_back(bank: Agent, question: str) -> None:
    reply = bank.reply(question)
    assert reply.fallback_reason is not None
    assert "person" in reply.text
