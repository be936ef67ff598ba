"""A surge spread over every topic: does the all-topics series alert, in time, and stay quiet otherwise?

The feed: 60 items an hour, `--calm` calm hours, then 4 surge hours, then `--after` calm hours. Each
item is a sentence drawn from a pool written for this benchmark (an opener, an event about one of
the bank's or the shop's topics, a closer), negative with probability 15% in calm hours and 70% in
the surge, about a topic drawn uniformly; the feed names no topic, so the monitor assigns them. It
is written to a scratch folder and scored by the real `agent monitor` with the bundled
sentiment_monitor (1-hour windows, as shipped).

Printed: the all-topics alerts and the window of each relative to the surge start (0 = its first
hour), false alerts in calm hours (all-topics and per topic), the per-topic alerts (what the monitor
raised before it had the all-topics series), how many per-topic windows of the surge were too thin
to judge, and the measured negative share of the all-topics windows, calm and surge.

Usage: python bench/monitor_surge.py [--calm 100] [--after 20] [--per-hour 60] [--seed 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "sentiment_monitor"
T0 = 1795392000  # 2026-11-23T00:00:00Z
SURGE_HOURS = 4

# Per topic: (bad events, other events). Written for this benchmark; not taken from any data set.
EVENTS = {
    "cards": (["my debit card got declined at the supermarket till", "the replacement card still hasn't turned up after ten days",
               "contactless stopped working on my card for no reason"],
              ["the new card came with a nicer design", "how do I change the PIN on my credit card",
               "tapped my card on the bus and it went through"]),
    "payments": (["the rent transfer bounced and now I owe a late fee", "my salary payment is two days late",
                  "a direct debit went out twice this month"],
                 ["the money I sent to Spain arrived in minutes", "how long does a standing order take to set up",
                  "a payment to my landlord went through this morning"]),
    "fees": (["they charged me five pounds just for going a penny overdrawn", "a surprise monthly fee appeared on my account",
              "the exchange rate mark-up on holiday was shocking"],
             ["no fee for using the cash machine abroad", "what is the charge for a paper statement",
              "the account fee was dropped for students"]),
    "loans": (["my mortgage application was turned down with no explanation", "the loan rate went up after I signed",
               "waited a month for a loan decision and heard nothing"],
              ["got the personal loan approved in a day", "can I pay off my car loan early",
               "the overdraft limit was raised when I asked"]),
    "app": (["the banking app logged me out in the middle of a transfer", "since the update the app won't open at all",
             "face login fails every single time on my phone"],
            ["the app shows my spending by category now", "where in the app do I find my sort code",
             "the new dark mode in the app looks good"]),
    "branches": (["my local branch is closing and the next one is an hour away", "queued forty minutes in branch for a simple deposit",
                  "the cash machine outside the branch is broken again"],
                 ["the branch staff sorted my paperwork quickly", "is the high street branch open on Saturdays",
                  "the branch has a new coin counting machine"]),
    "savings": (["the savings rate was cut without any notice", "my ISA transfer has been stuck for three weeks",
                 "interest on my savings is a pittance"],
                ["my savings goal filled up faster than planned", "what is the rate on the easy access saver",
                 "moved some money into the ISA today"]),
    "support": (["an hour on hold and then the line went dead", "the chat agent was rude and closed my complaint",
                 "nobody replies to my complaint emails"],
                ["the phone agent was really patient with me", "what number do I call about a complaint",
                 "the chat answered within a minute"]),
    "delivery": (["the parcel is a week late and tracking says nothing", "courier claims he delivered but nothing came",
                  "my package turned up soaked and torn"],
                 ["the parcel came a day early", "can I pick a delivery slot for the weekend",
                  "the courier left the box with my neighbour as asked"]),
    "returns": (["still no refund three weeks after they got my return", "the returns label link doesn't work",
                 "they refused my return of a broken lamp"],
                ["the refund for my return landed the next day", "how many days do I have to return shoes",
                 "dropped off the return at the corner shop"]),
    "orders": (["my order was cancelled after they took the money", "got the wrong size for the third time",
                "half the items in my order were missing"],
               ["my order was packed and shipped the same day", "can I add a scarf to my order",
                "changed the colour on my order online"]),
}
OPENERS = ["", "update: ", "fyi ", "just to say, ", "so, "]
BAD_CLOSERS = ["", " again", ", not happy at all", " #fail", ", really fed up"]
OTHER_CLOSERS = ["", ", thanks", " :)", " today", ", cheers"]


def sentence(rng: random.Random, bad: bool) -> str:
    """One feed text: an opener, an event about a random topic, a closer."""
    events = EVENTS[rng.choice(sorted(EVENTS))][0 if bad else 1]
    return rng.choice(OPENERS) + rng.choice(events) + rng.choice(BAD_CLOSERS if bad else OTHER_CLOSERS)


def write_feed(path: Path, calm: int, after: int, per_hour: int, seed: int) -> None:
    """The JSONL feed: calm hours, the surge, calm hours, `per_hour` items an hour in time order."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for hour in range(calm + SURGE_HOURS + after):
            share = 0.70 if calm <= hour < calm + SURGE_HOURS else 0.15
            for i in range(per_hour):
                stamp = T0 + hour * 3600 + (i + rng.random()) * 3600 / per_hour
                fh.write(json.dumps({"text": sentence(rng, rng.random() < share), "timestamp": round(stamp, 3),
                                     "source": "bench-surge"}) + "\n")


def analyse(db: Path, run_id: int, calm: int) -> dict[str, object]:
    """Alerts and windows of the run, relative to the surge."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    surge = range(calm, calm + SURGE_HOURS)
    hour = lambda start: int((start - T0) // 3600)
    alerts = [(r["topic"], hour(r["window_start"])) for r in con.execute(
        "SELECT topic, window_start FROM alerts WHERE run_id = ? ORDER BY id", [run_id])]
    windows = [dict(r) for r in con.execute("SELECT topic, start, n, hits, state FROM monitor_windows WHERE run_id = ?", [run_id])]
    total = [w for w in windows if w["topic"] == "all"]
    in_surge = [w for w in windows if w["topic"] != "all" and hour(w["start"]) in surge]
    share = lambda ws: round(sum(w["hits"] for w in ws) / max(sum(w["n"] for w in ws), 1), 4)
    calm_alerts = [(t, h) for t, h in alerts if h not in surge]
    return {
        "all_topics_alerts": [{"window_hour": h, "relative_to_surge_start": h - calm} for t, h in alerts if t == "all"],
        "false_alerts_in_calm_hours": {"all_topics": sum(t == "all" for t, _ in calm_alerts),
                                       "per_topic": sum(t != "all" for t, _ in calm_alerts), "list": calm_alerts},
        "per_topic_alerts": [{"topic": t, "relative_to_surge_start": h - calm} for t, h in alerts if t != "all"],
        "calm_hours": sum(1 for w in total if hour(w["start"]) not in surge),
        "per_topic_windows_in_surge": {"judged": sum(w["state"] != "thin" for w in in_surge),
                                       "thin": sum(w["state"] == "thin" for w in in_surge)},
        "all_topics_negative_share": {"calm": share([w for w in total if hour(w["start"]) not in surge]),
                                      "surge": share([w for w in total if hour(w["start"]) in surge])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calm", type=int, default=100, help="calm hours before the surge")
    parser.add_argument("--after", type=int, default=20, help="calm hours after it")
    parser.add_argument("--per-hour", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-surge")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    plugins = args.work / "plugins"
    shutil.copytree(PLUGIN, plugins / "sentiment_monitor", ignore=shutil.ignore_patterns("model", "__pycache__"))
    feed = args.work / "surge.jsonl"
    write_feed(feed, args.calm, args.after, args.per_hour, args.seed)
    env = {**os.environ, "AGENT_HOME": str(args.work / "home"), "AGENT_PLUGINS_PATH": str(plugins),
           "AGENT_LOAD_PLUGINS": "sentiment_monitor", "COLUMNS": "120"}
    out = subprocess.run(["agent", "monitor", str(feed), "--json", "--quiet"], env=env, check=True, capture_output=True, text=True)
    summary = json.loads(out.stdout)
    result = {"items": summary["items"], "windows": summary["windows"], "items_per_s": summary["items_per_s"],
              "topics": summary["topics"], **analyse(args.work / "home" / "agent.db", summary["run_id"], args.calm)}
    print(json.dumps(result, indent=2))
    report = subprocess.run(["agent", "monitor", "--report"], env=env, check=True, capture_output=True, text=True)
    print("\n".join(report.stdout.splitlines()[:8]))
    (args.work / "summary.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
