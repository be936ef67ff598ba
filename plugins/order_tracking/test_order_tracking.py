"""Tests of the order_tracking plugin with the real encoder: python -m pytest plugins/order_tracking

Put messages the plugin must get right in CASES; `agent finetune` must keep them right.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.plugin.manifest import load_manifest
from agent.reply.agent import Agent
from agent.settings import Settings

HERE = Path(__file__).resolve().parent
NAME = "order_tracking"
CASES = [
    ("any news on when my order will turn up?", "order_status"),
    ("the parcel arrived soaking wet and the book is ruined", "delivery_problem"),
    ("I ordered a black mug and got a white one", "wrong_or_missing_item"),
    ("these trainers are too small, how do I send them back?", "return_item"),
    ("you got my returned parcel a week ago, where is my money?", "refund_status"),
    ("can you deliver to my work address instead?", "change_delivery"),
    ("please cancel the order I just placed", "cancel_order"),
    ("do you deliver to Spain and how much is it?", "delivery_options"),
]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory):
    """This plugin alone, loaded with a temporary home (indexes and log)."""
    agent = Agent(Settings(home=tmp_path_factory.mktemp("home"), plugin_paths=[HERE]), device="cpu")
    assert NAME not in {s.name for s in agent.skipped}, [s.reason for s in agent.skipped if s.name == NAME]
    return agent.load_runtime(HERE)


def test_manifest_is_valid() -> None:
    assert load_manifest(HERE).name == NAME


@pytest.mark.parametrize(("text", "label"), CASES)
def test_classifies(runtime, text: str, label: str) -> None:
    vectors = runtime.encoder.encode([text])
    probs = runtime.classify(vectors, [text])[0]
    assert runtime.labels[int(probs.argmax())] == label
