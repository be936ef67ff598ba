"""Out of scope: BANKING77 with some intents held out of training entirely; their test rows must fall back.

`agent new-plugin` from train.csv without the hidden intents (or N examples of each other intent),
then test.csv answered by the plugin before and after `agent finetune`: in-scope accuracy (the right
label, not a fallback) and out-of-scope recall (a fallback), at the plugin's thresholds, at the
min_confidence the fine-tune suggests (accepted with `agent finetune --accept-threshold`), and along
the whole min_confidence curve, compared at equal in-scope accuracy.

Usage: python bench/out_of_scope.py [--hidden 10] [--shots 0] [--seed 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path

from common import SHARED_DATA, run

DATA = SHARED_DATA / "banking77"
NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
LEVELS = (0.80, 0.85, 0.90, 0.93)


def read(name: str) -> list[tuple[str, str]]:
    """(text, intent) rows of a BANKING77 file."""
    with open(DATA / name, newline="", encoding="utf-8") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def training_rows(hidden: set[str], shots: int, seed: int) -> list[tuple[str, str]]:
    """train.csv without the hidden intents; `shots` rows of each other intent when given."""
    rows = [r for r in read("train.csv") if r[1] not in hidden]
    if not shots:
        return rows
    by: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        by.setdefault(r[1], []).append(r)
    rng = random.Random(seed)
    return [r for lab in sorted(by) for r in rng.sample(by[lab], shots)]


def answers(home: Path, plugins: Path, test: list[tuple[str, str]]) -> list[dict]:
    """The plugin's answer to every test row (nothing logged): label, confidence, fallback."""
    from agent.reply.agent import Agent, Message
    from agent.settings import Settings

    agent = Agent(Settings(home=home, plugin_paths=[plugins]))
    out = []
    for s in range(0, len(test), 128):
        chunk = test[s : s + 128]
        for reply, (_, gold) in zip(agent.replies([Message(t, None, "banking77") for t, _ in chunk], log=False), chunk):
            out.append({"gold": gold, "label": reply.label, "confidence": float(reply.confidence or 0.0),
                        "fallback": reply.fallback_reason is not None})
    agent.store.close()
    return out


def scores(rows: list[dict], hidden: set[str], threshold: float | None = None) -> dict[str, float]:
    """In-scope accuracy and out-of-scope recall, as answered (or with min_confidence = threshold)."""
    def falls(r: dict) -> bool:
        return r["fallback"] if threshold is None else r["confidence"] < threshold

    inside = [r for r in rows if r["gold"] not in hidden]
    outside = [r for r in rows if r["gold"] in hidden]
    return {"in_scope_accuracy": round(sum(not falls(r) and r["label"] == r["gold"] for r in inside) / len(inside), 4),
            "out_of_scope_recall": round(sum(falls(r) for r in outside) / len(outside), 4)}


def at_equal_accuracy(rows: list[dict], hidden: set[str]) -> dict[str, float | None]:
    """The best out-of-scope recall of any min_confidence that keeps in-scope accuracy at each level."""
    cuts = sorted({0.0, *(r["confidence"] for r in rows)})
    curve = [scores(rows, hidden, t) for t in cuts[:: max(1, len(cuts) // 400)]]
    return {f"{level:.2f}": max((c["out_of_scope_recall"] for c in curve if c["in_scope_accuracy"] >= level), default=None)
            for level in LEVELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=10)
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-out-of-scope")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/banking77 beside the project")
    shutil.rmtree(args.work, ignore_errors=True)
    home, plugins = args.work / "home", args.work / "plugins"
    env = {**os.environ, "AGENT_HOME": str(home)}
    intents = sorted({lab for _, lab in read("train.csv")})
    hidden = set(random.Random(args.seed).sample([i for i in intents if NAME.fullmatch(i)], args.hidden))
    train = args.work / "train.csv"
    train.parent.mkdir(parents=True, exist_ok=True)
    with open(train, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        w.writerows(training_rows(hidden, args.shots, args.seed))
    test = read("test.csv")
    run([sys.executable, "-m", "agent", "new-plugin", str(plugins / "banking77"), "--examples", str(train),
         "--label-column", "category"], env)
    os.environ["AGENT_HOME"] = str(home)
    before = answers(home, plugins, test)
    seconds = run([sys.executable, "-m", "agent", "finetune", str(plugins / "banking77"), "--json"], env)
    after = answers(home, plugins, test)
    version = (home / "models" / "banking77" / "current").read_text().strip()
    suggested = json.loads((home / "models" / "banking77" / version / "report.json").read_text())["evaluation"]["suggested_min_confidence"]
    run([sys.executable, "-m", "agent", "finetune", str(plugins / "banking77"), "--accept-threshold"], env)
    accepted = answers(home, plugins, test)
    result = {"hidden": sorted(hidden), "finetune_seconds": round(seconds, 1), "suggested_min_confidence": suggested,
              "before_at_plugin_thresholds": scores(before, hidden), "after_at_plugin_thresholds": scores(after, hidden),
              "before_at_suggested": scores(before, hidden, suggested), "after_with_suggested_accepted": scores(accepted, hidden),
              "oos_recall_at_equal_in_scope_accuracy": {"before": at_equal_accuracy(before, hidden),
                                                        "after": at_equal_accuracy(after, hidden)}}
    print(json.dumps(result, indent=2))
    (args.work / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
