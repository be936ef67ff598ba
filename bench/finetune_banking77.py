"""BANKING77 fine-tuning: `agent new-plugin` from train.csv (or N examples per intent), `agent finetune`,
then `agent eval` on test.csv, before and after. Real commands, in a scratch folder outside the project.
Prints the fine-tune's wall time and its peak memory (RSS; on CUDA also the peak GPU memory torch allocated).

Usage: python bench/finetune_banking77.py [--shots 10] [--seed 0] [--work DIR] [-- extra finetune options]
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

from common import SHARED_DATA, run

DATA = SHARED_DATA / "banking77"


def sample(shots: int, seed: int, out: Path) -> Path:
    """`shots` training rows per intent, drawn with a fixed seed, written to a scratch CSV."""
    with open(DATA / "train.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_label: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_label.setdefault(r["category"], []).append(r)
    rng = random.Random(seed)
    picked = [r for label in sorted(by_label) for r in rng.sample(by_label[label], shots)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["text", "category"])
        w.writeheader()
        w.writerows(picked)
    return out


def evaluate(plugin: Path, report: Path, env: dict[str, str]) -> tuple[dict, float]:
    """`agent eval` on test.csv; the JSON report and the wall time."""
    t = run(["agent", "eval", str(plugin), "--data", str(DATA / "test.csv"), "--label-column", "category",
             "--json", str(report)], env)
    return json.loads(report.read_text()), t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shots", type=int, default=0, help="examples per intent (0: the whole train.csv)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("finetune_args", nargs="*", help="passed to agent finetune (after --)")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/banking77 beside the project")
    work = args.work or Path(tempfile.gettempdir()) / f"agent-bench-ft-banking77-{args.shots or 'all'}"
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "AGENT_HOME": str(work / "home")}
    train = sample(args.shots, args.seed, work / "train.csv") if args.shots else DATA / "train.csv"
    plugin = work / "plugins" / "banking77"
    run(["agent", "new-plugin", str(plugin), "--examples", str(train), "--label-column", "category"], env)
    before, _ = evaluate(plugin, work / "eval-before.json", env)
    t_ft = run(["agent", "finetune", str(plugin), "--json", *args.finetune_args], env)
    after, t_eval = evaluate(plugin, work / "eval-after.json", env)
    version = (work / "home" / "models" / plugin.name / "current").read_text().strip()
    ft = json.loads((work / "home" / "models" / plugin.name / version / "report.json").read_text())
    summary = {
        "train_rows": ft["data"]["train_rows"], "holdout_rows": ft["data"]["holdout_rows"], "shots": args.shots or None,
        "mode": ft["run"]["mode"], "device": ft["run"]["device"], "epochs": ft["run"]["epochs"], "steps": ft["run"].get("steps"),
        "finetune_seconds_wall": round(t_ft, 1), "training_seconds": ft["run"].get("train_seconds"),
        "finetune_seconds_inside": ft["run"].get("seconds"),
        "finetune_peak_rss_mb": ft["run"].get("peak_rss_mb"), "finetune_peak_gpu_mb": ft["run"].get("peak_gpu_mb"),
        "test_accuracy_before": before["accuracy"], "test_macro_f1_before": before["macro_f1"],
        "test_accuracy_after": after["accuracy"], "test_macro_f1_after": after["macro_f1"],
        "eval_seconds_wall": round(t_eval, 1), "eval_rows_per_second": after["rows_per_second"],
        "holdout_accuracy": ft["evaluation"]["candidate"]["accuracy"], "status": ft["status"],
    }
    print(json.dumps(summary, indent=2))
    (work / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
