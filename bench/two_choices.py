"""Two likely labels: how often a reply offers two, and how often the right label is among them.

BANKING77 with SHOTS examples per intent from train.csv (a plugin made with `agent new-plugin`), every
test.csv message answered in a dry run by `Agent.replies`. For the turns that would have fallen back,
and the answered turns that offered a second label, the figures say how many offered two and how
often the true label was one of them (the person's pick then answers and teaches the right label).

Usage: python bench/two_choices.py [--shots 10] [--seed 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

from common import SHARED_DATA, run, write_pairs

DATA = SHARED_DATA / "banking77"


def sample(shots: int, seed: int) -> list[tuple[str, str]]:
    """SHOTS rows per intent of train.csv, with a fixed seed."""
    with open(DATA / "train.csv", newline="", encoding="utf-8") as fh:
        by_label: dict[str, list[str]] = {}
        for r in csv.DictReader(fh):
            by_label.setdefault(r["category"], []).append(r["text"])
    rng = random.Random(seed)
    return [(t, label) for label in sorted(by_label) for t in rng.sample(by_label[label], shots)]


def score(plugin: Path, home: Path) -> dict[str, object]:
    """Answer every test message (dry run) and count what was offered."""
    from agent.reply.agent import Agent, Message
    from agent.settings import Settings

    with open(DATA / "test.csv", newline="", encoding="utf-8") as fh:
        test = [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    agent = Agent(Settings(home=home, plugin_paths=[plugin]), device="cpu")
    counts = {"n": len(test), "answered": 0, "answered_right": 0, "fell_back": 0, "fell_back_offering_two": 0,
              "offered_two_right_among_them": 0, "fell_back_top1_right": 0, "answered_offering_second": 0,
              "answered_wrong_second_right": 0}
    for start in range(0, len(test), 64):
        batch = test[start: start + 64]
        replies = agent.replies([Message(text, f"b{start + i}") for i, (text, _) in enumerate(batch)], log=False)
        for (_, truth), reply in zip(batch, replies):
            offered = [c["label"] for c in getattr(reply, "choices", [])]
            if reply.fallback_reason is None:
                counts["answered"] += 1
                counts["answered_right"] += reply.label == truth
                counts["answered_offering_second"] += bool(offered)
                counts["answered_wrong_second_right"] += bool(offered) and reply.label != truth and offered[1] == truth
            else:
                counts["fell_back"] += 1
                counts["fell_back_top1_right"] += reply.label == truth
                counts["fell_back_offering_two"] += bool(offered)
                counts["offered_two_right_among_them"] += truth in offered
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-two-choices")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/banking77 beside the project")
    shutil.rmtree(args.work, ignore_errors=True)
    home, plugin = args.work / "home", args.work / "plugins" / "banking77"
    env = {**os.environ, "AGENT_HOME": str(home)}
    train = write_pairs(args.work / "train.csv", sample(args.shots, args.seed))
    run(["agent", "new-plugin", str(plugin), "--examples", str(train)], env)
    counts = score(plugin, home)
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
