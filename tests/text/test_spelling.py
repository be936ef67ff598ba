"""Emoji the encoder's vocabulary lacks are spelt out, so "👍" and "😡" no longer embed alike."""

from __future__ import annotations

import pytest

from agent.models.encoder import Encoder
from agent.reply.agent import Agent
from agent.settings import PACKAGE_ROOT, Settings
from agent.text.spelling import spelt


def test_pictographs_are_spelt_and_the_rest_is_left_alone(encoder: Encoder) -> None:
    vocab = encoder.tokenizer.vocab
    got = spelt(["👍🏽", "thanks 👍", "£5 or €5 ♥", "plain ascii :)", "🇬🇧", "👨‍👩‍👧", "😡"], vocab)
    assert [" ".join(t.split()) for t in got] == ["thumbs up", "thanks thumbs up", "£5 or €5 ♥", "plain ascii :)",
                                                  "flag flag", "man woman girl", "angry face"]


def test_emoji_embed_apart(encoder: Encoder) -> None:
    v = encoder.encode(["👍", "😡", "😢", "👍🏽"])
    assert float(v[0] @ v[1]) < 0.6 and float(v[0] @ v[2]) < 0.6  # all three were one unknown token: cosine 1.0
    assert float(v[0] @ v[3]) > 0.99  # a skin tone changes nothing


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Agent:
    """customer_service and the sentiment monitor, bundled, with a temporary home."""
    plugins = PACKAGE_ROOT / "plugins"
    return Agent(Settings(home=tmp_path_factory.mktemp("home"), plugin_paths=[plugins / "customer_service",
                                                                             plugins / "sentiment_monitor"]), encoder=encoder)


@pytest.mark.parametrize("text, label", [("👍", "positive"), ("😢", "negative"), ("😡", "negative"), ("😍", "positive")])
def test_an_emoji_alone_is_scored_for_what_it_shows(watched: Agent, text: str, label: str) -> None:
    assert watched.reply(text).annotations["sentiment_monitor"]["label"] == label


def test_encoding_ascii_text_is_unchanged(encoder: Encoder) -> None:
    texts = ["I lost my card", "where is my parcel?"]
    assert spelt(texts, encoder.tokenizer.vocab) == texts
