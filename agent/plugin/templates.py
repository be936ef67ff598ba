"""The files `agent new-plugin NAME` writes: a commented manifest, sample data, hooks.py and a test."""

from __future__ import annotations

MANIFEST_HEAD = '''# {name}: a scenario plugin. `agent plugins` lists it; `agent ask --plugin {name} "..."` talks to it.
# Every key is explained here. A mistake is reported with this file's path, the key and the fix.

name = {name_q}          # letters, digits, '_' or '-'; unique among the plugins
description = {description}
role = "{role}"          # responder: answers the turns routed to it; observer: labels every turn, never answers
version = "0.1.0"

# The labels this plugin tells apart, each with a one-line description. Descriptions alone already
# classify (by similarity, zero-shot); examples in [data] make it better; `agent finetune` takes it
# the rest of the way. A label used in examples.csv must be listed here.
[labels]
{labels}
'''

DATA = '''
# Labelled examples: CSV or JSONL with a text and a label column. Delete this table to start from the
# label descriptions alone.
[data]
examples = "examples.csv"
text_column = "text"
label_column = "label"
'''

RETRIEVAL = '''
# Answers: the reply is the best entry of this corpus for the predicted label (an entry without a
# label can answer any). Delete this table and the agent says which label it understood instead.
[retrieval]
corpus = "faq.csv"
id_column = "id"
text_columns = ["question"]   # what a message is compared with
answer_column = "answer"
label_column = "{label_column}"
top_k = 3                     # entries shown as sources
'''

THRESHOLDS = '''
# When the agent would rather not guess (each from 0 to 1).
[thresholds]
min_confidence = 0.40   # below this top probability: fall back
min_margin = 0.05       # top two closer than this: ambiguous, fall back
min_similarity = 0.35   # nearest example less similar than this: out of scope, fall back
two_choices = 0.5       # a fallback whose second label is at least this share of the first offers both
second_choice = 0.8     # an answer whose second label comes this close also offers the second
'''

FALLBACK = '''
# What a fallback says.
[fallback]
message = "I'm not sure I understood that, so I'd rather not guess."
handoff = "Would you like me to pass you to a person?"
'''

SAMPLES = {
    "responder": {
        "labels": {
            "opening_hours": "When we are open, today or on holidays",
            "talk_to_person": "Asking to talk to a person instead of the bot",
            "give_feedback": "Praise, a suggestion or a review of our service",
        },
        "examples": [
            ("when are you open today?", "opening_hours"), ("are you open on sundays", "opening_hours"),
            ("what time do you close tonight", "opening_hours"), ("opening hours over the holidays?", "opening_hours"),
            ("can I talk to a real person", "talk_to_person"), ("put me through to someone please", "talk_to_person"),
            ("I want a human, not a bot", "talk_to_person"), ("is there anyone I can call?", "talk_to_person"),
            ("I'd like to leave a review", "give_feedback"), ("your staff were really helpful", "give_feedback"),
            ("I have a suggestion for your service", "give_feedback"), ("how can I rate my experience", "give_feedback"),
        ],
        "faq": [
            ("hours", "When are you open?", "We are open 9:00 to 17:30, Monday to Saturday.", "opening_hours"),
            ("person", "Can I talk to a person?", "Of course: call 0800 000 000 or reply 'call me' for a callback.", "talk_to_person"),
            ("feedback", "Where can I leave feedback?", "Thank you! Please leave it at example.com/feedback.", "give_feedback"),
        ],
        "cases": [("are you open on saturday morning?", "opening_hours"),
                  ("let me speak to an actual human", "talk_to_person"),
                  ("I want to write a review of your shop", "give_feedback")],
    },
    "observer": {
        "labels": {
            "urgent": "Something is wrong now and the person needs help fast",
            "routine": "An ordinary question with no hurry",
        },
        "examples": [
            ("my card was stolen, block it now", "urgent"), ("someone is taking money from my account", "urgent"),
            ("I'm locked out and need to pay rent today", "urgent"), ("this is an emergency, call me back", "urgent"),
            ("what are your opening hours", "routine"), ("how do I change my address", "routine"),
            ("can I order a new cheque book", "routine"), ("where do I find my statements", "routine"),
        ],
        "faq": [],
        "cases": [("help, fraud on my account right now!", "urgent"), ("how do I update my phone number", "routine")],
    },
}

HOOKS = '''"""Optional Python hooks for the {name} plugin: delete this file if the manifest is enough.

A function marked @hookimpl is called by the agent; it takes any of the arguments its hook offers,
by name. The hooks: build_reply, observe_turn, cli_commands, tui_panels (the "Plugin hooks" table of
docs/plugins.md lists their arguments). A hook that raises is reported and skipped; the agent keeps working.
Uncomment one to try it.
"""

from agent import hookimpl  # noqa: F401


# @hookimpl
# def build_reply(label, answer, fallback_reason):
#     """Return the text to send for a turn this plugin answers, or None to keep `answer`."""
#     return None if fallback_reason else answer + " Is there anything else?"


# @hookimpl
# def observe_turn(text, reply, annotation):
#     """Called for every turn; return a dict stored with it under this plugin's name, or None."""
#     return {{"length": len(text)}}


# @hookimpl
# def cli_commands():
#     """Return click commands to add to `agent`."""
#     import click
#
#     @click.command("{name}-hello")
#     def hello():
#         """Say hello from {name}."""
#         click.echo("hello from {name}")
#
#     return [hello]
'''

TEST = '''"""Tests of the {name} plugin with the real encoder: python -m pytest {folder}

Put messages the plugin must get right in CASES; `agent finetune` must keep them right.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.reply.agent import Agent
from agent.plugin.manifest import load_manifest
from agent.settings import Settings

HERE = Path(__file__).resolve().parent
NAME = {name_q}
CASES = {cases}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory):
    """This plugin alone, loaded with a temporary home (indexes and log)."""
    agent = Agent(Settings(home=tmp_path_factory.mktemp("home"), plugin_paths=[HERE]), device="cpu")
    assert NAME not in {{s.name for s in agent.skipped}}, [s.reason for s in agent.skipped if s.name == NAME]
    return agent.load_runtime(HERE)


def test_manifest_is_valid() -> None:
    assert load_manifest(HERE).name == NAME


@pytest.mark.parametrize(("text", "label"), CASES)
def test_classifies(runtime, text: str, label: str) -> None:
    vectors = runtime.encoder.encode([text])
    probs = runtime.classify(vectors, [text])[0]
    assert runtime.labels[int(probs.argmax())] == label
'''
