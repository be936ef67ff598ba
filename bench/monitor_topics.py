"""Topics of the sentiment monitor: held-out accuracy, and where off-domain messages land, before and after.

"before" is the bundled sentiment_monitor as it was: one flat [topics] table of the 8 bank topics,
their sentences only, and a bare similarity floor (topic_coverage = 0, min_topic_similarity = 0.15).
"after" is the plugin as shipped: bank and shop domains, per-topic thresholds calibrated on each
topic's own examples, and `[monitor] domains` mapping each responder to its domain.

Measured two ways, each for both versions:
  * feed: the monitor's scorer, as `agent monitor` scores a feed (no responder: all topics compete);
  * chat: the full Agent with the bundled customer_service, order_tracking and sentiment_monitor,
    where each turn's topic comes from its answering plugin's domain.
On plugins/sentiment_monitor/heldout.csv (bank topics) and on 32 off-domain messages written for
this benchmark (12 about parcels and orders, 20 about weather, small talk and other things): the
shop ones count as landing well in `other` or a shop topic, the rest only in `other`.

Usage: python bench/monitor_topics.py [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
SHOP = [
    "where is my parcel? it was due yesterday", "the courier left my package at the wrong house",
    "my order still says processing after a week", "the box arrived crushed and the mug inside was broken",
    "can I change the delivery address for my order?", "I ordered a blue jumper and got a green one",
    "how do I send back a pair of shoes that don't fit", "the tracking number you sent doesn't work",
    "is next-day delivery available to Scotland?", "my refund for the returned kettle hasn't shown up",
    "the delivery driver never rang the bell, just left a card", "please cancel my order before it ships",
]
ELSEWHERE = [
    "it's pouring with rain again today", "what a lovely sunny morning", "the forecast says snow this weekend",
    "so windy out there the bins blew over", "hottest day of the year, I'm melting",
    "fog was so thick I couldn't see the end of the street", "hi there, how are you doing?", "thanks, have a nice weekend",
    "good morning!", "haha that's funny", "what's your name?", "I'm just bored, tell me a joke", "ok cool", "nice to meet you",
    "who won the football last night?", "what's a good recipe for banana bread?", "my cat knocked a plant off the shelf",
    "can you recommend a good film to watch tonight?", "the train was cancelled so I walked home",
    "I need to book a dentist appointment",
]
SHOP_TOPICS = {"delivery", "returns", "orders"}


def before_plugin(folder: Path) -> None:
    """Turn a copy of the shipped plugin into the version before domains and calibration."""
    toml = folder / "plugin.toml"
    text = toml.read_text()
    text = re.sub(r"^\[topics\.shop\].*?(?=^\[monitor\])", "", text, flags=re.S | re.M).replace("[topics.bank]", "[topics]")
    text = re.sub(r"^domains = .*\n", "", text, flags=re.M)
    text = re.sub(r"^topic_coverage = .*$", "topic_coverage = 0", text, flags=re.M)
    toml.write_text(text)
    with open(folder / "sentences.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["topic"] not in SHOP_TOPICS]
    with open(folder / "sentences.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["text", "label", "topic"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def agent_over(work: Path, version: str, encoder: object) -> object:
    """An Agent over scratch copies of the three bundled plugins (the monitor as `version`)."""
    from agent.reply.agent import Agent
    from agent.settings import Settings

    root = work / version / "plugins"
    shutil.rmtree(work / version, ignore_errors=True)
    for name in ("customer_service", "order_tracking", "sentiment_monitor"):
        shutil.copytree(PLUGINS / name, root / name, ignore=shutil.ignore_patterns("model", "__pycache__", "test_*"))
    if version == "before":
        before_plugin(root / "sentiment_monitor")
    return Agent(Settings(home=work / version / "home", plugin_paths=[root]), encoder=encoder)


def landed(topics: list[str]) -> dict[str, object]:
    """Where the off-domain messages went: how many landed well, and each one's topic."""
    shop, rest = topics[: len(SHOP)], topics[len(SHOP):]
    return {"shop_in_other_or_shop_topic": f"{sum(t == 'other' or t in SHOP_TOPICS for t in shop)}/{len(shop)}",
            "elsewhere_in_other": f"{sum(t == 'other' for t in rest)}/{len(rest)}",
            "all_landed_well": f"{sum(t == 'other' or t in SHOP_TOPICS for t in shop) + sum(t == 'other' for t in rest)}/{len(topics)}"}


def measure(agent: object, held: list[dict[str, str]]) -> dict[str, object]:
    """Feed and chat figures for one agent's monitor."""
    from agent.reply.agent import Message
    from agent.scenarios.monitor.scorer import Scorer

    off = SHOP + ELSEWHERE
    scorer = Scorer(agent.observers["sentiment_monitor"])  # type: ignore[attr-defined]
    feed_held = [s.topic for s in scorer.score([r["text"] for r in held])]
    feed_off = [s.topic for s in scorer.score(off)]
    replies = agent.replies([Message(t) for t in [r["text"] for r in held] + off], log=False)  # type: ignore[attr-defined]
    chat = [r.annotations["sentiment_monitor"]["topic"] for r in replies]
    chat_held, chat_off = chat[: len(held)], chat[len(held):]
    return {
        "feed": {"heldout_topic_accuracy": round(sum(t == r["topic"] for t, r in zip(feed_held, held)) / len(held), 4),
                 "heldout_in_other": feed_held.count("other"), **landed(feed_off)},
        "chat": {"heldout_topic_accuracy": round(sum(t == r["topic"] for t, r in zip(chat_held, held)) / len(held), 4),
                 "heldout_in_other": chat_held.count("other"), **landed(chat_off)},
        "off_domain": [{"text": t, "feed": f, "chat": c, "answered_by": r.plugin}
                       for t, f, c, r in zip(off, feed_off, chat_off, replies[len(held):])],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-topics")
    args = parser.parse_args()
    from agent.models.encoder import shared_encoder

    encoder = shared_encoder("cpu")
    with open(PLUGINS / "sentiment_monitor" / "heldout.csv", newline="", encoding="utf-8") as fh:
        held = list(csv.DictReader(fh))
    result = {version: measure(agent_over(args.work, version, encoder), held) for version in ("before", "after")}
    for version in ("before", "after"):
        print(version, json.dumps({k: result[version][k] for k in ("feed", "chat")}))
    for b, a in zip(result["before"]["off_domain"], result["after"]["off_domain"]):
        print(f"  {a['answered_by'] or '-':17} feed {b['feed']:>9} -> {a['feed']:<9} chat {b['chat']:>9} -> {a['chat']:<9} {a['text']}")
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "summary.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
