"""Bitext customer service (27 intents): zero-shot from label descriptions, 5 and 10 examples per intent,
and `agent finetune` on the whole training split; every stage scored with `agent eval` on the same
held-out 20%. Real commands, in a scratch folder outside the project.

Usage: python bench/bitext.py [--seed 0] [--work DIR] [--skip-finetune] [-- extra finetune options]
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

DATA = SHARED_DATA / "bitext_customer_service" / "Bitext_Sample_Customer_Service_Training_Dataset.csv"
LABELS = Path(__file__).resolve().parent / "bitext_labels.csv"  # our own one-line descriptions of the 27 intents


def split(seed: int, work: Path) -> tuple[dict[str, list[str]], Path]:
    """A stratified 80/20 split with a fixed seed: training texts per intent, and the test CSV."""
    with open(DATA, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    by_label: dict[str, list[str]] = {}
    for r in rows:
        by_label.setdefault(r["intent"], []).append(r["utterance"])
    rng = random.Random(seed)
    train, test = {}, []
    for label in sorted(by_label):
        texts = by_label[label][:]
        rng.shuffle(texts)
        cut = round(len(texts) * 0.2)
        test += [(t, label) for t in texts[:cut]]
        train[label] = texts[cut:]
    return train, write_pairs(work / "test.csv", test)


def stage(name: str, work: Path, test: Path, env: dict[str, str], examples: Path | None) -> tuple[Path, dict]:
    """`agent new-plugin` with the descriptions (and examples), then `agent eval` on the test split."""
    plugin = work / name / "bitext"
    cmd = ["agent", "new-plugin", str(plugin), "--labels", str(LABELS)]
    run(cmd + (["--examples", str(examples)] if examples else []), env)
    return plugin, evaluate(plugin, test, work / f"eval-{name}.json", env)


def evaluate(plugin: Path, test: Path, report: Path, env: dict[str, str]) -> dict:
    """`agent eval`; accuracy and macro-F1."""
    run(["agent", "eval", str(plugin), "--data", str(test), "--json", str(report)], env)
    data = json.loads(report.read_text())
    return {"accuracy": data["accuracy"], "macro_f1": data["macro_f1"], "rows": data["n"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-bitext")
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("finetune_args", nargs="*", help="passed to agent finetune (after --)")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/bitext_customer_service beside the project")
    shutil.rmtree(args.work, ignore_errors=True)
    env = {**os.environ, "AGENT_HOME": str(args.work / "home")}
    train, test = split(args.seed, args.work)
    results = {"zero_shot": stage("zero", args.work, test, env, None)[1]}
    rng = random.Random(args.seed)
    for shots in (5, 10):
        rows = [(t, label) for label in sorted(train) for t in rng.sample(train[label], shots)]
        results[f"{shots}_shot"] = stage(f"shot{shots}", args.work, test, env, write_pairs(args.work / f"train{shots}.csv", rows))[1]
    full = write_pairs(args.work / "train.csv", [(t, label) for label in sorted(train) for t in train[label]])
    plugin, results["all_head"] = stage("all", args.work, test, env, full)
    if not args.skip_finetune:
        seconds = run(["agent", "finetune", str(plugin), "--json", *args.finetune_args], env)
        results["all_finetuned"] = {**evaluate(plugin, test, args.work / "eval-finetuned.json", env),
                                    "finetune_seconds_wall": round(seconds, 1)}
        models = args.work / "home" / "models" / plugin.name  # versions live in the home
        version = (models / "current").read_text().strip() if (models / "current").is_file() else None
        if version:
            ft = json.loads((models / version / "report.json").read_text())
            results["all_finetuned"].update({"mode": ft["run"]["mode"], "device": ft["run"]["device"],
                                             "epochs": ft["run"]["epochs"], "status": ft["status"]})
    print(json.dumps(results, indent=2))
    (args.work / "summary.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
