"""Noisy text on BANKING77: fine-tune with and without `--noise`, then `agent eval --noise` on test.csv,
so each model's accuracy on clean and on perturbed text stands side by side. Real commands, in a
scratch folder outside the project. BANKING77: PolyAI, CC BY 4.0.

Usage: python bench/noise_banking77.py [--rate 0.1] [--mode head] [--shots 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from common import SHARED_DATA, run
from finetune_banking77 import sample

DATA = SHARED_DATA / "banking77"


def trial(work: Path, name: str, train: Path, mode: str, rate: float, noise_training: bool) -> dict:
    """One plugin built from `train`, fine-tuned (with noisy copies or not), evaluated clean and noisy."""
    env = {**os.environ, "AGENT_HOME": str(work / "home")}
    plugin = work / "plugins" / name
    run(["agent", "new-plugin", str(plugin), "--examples", str(train), "--label-column", "category"], env)
    extra = ["--noise", str(rate)] if noise_training else []
    seconds = run(["agent", "finetune", str(plugin), "--mode", mode, "--force", "--json", *extra], env)
    report = work / f"eval-{name}.json"
    run(["agent", "eval", str(plugin), "--data", str(DATA / "test.csv"), "--label-column", "category",
         "--noise", str(rate), "--json", str(report)], env)
    r = json.loads(report.read_text())
    return {"training": f"with --noise {rate}" if noise_training else "clean only", "finetune_seconds": round(seconds, 1),
            "clean_accuracy": r["accuracy"], "clean_macro_f1": r["macro_f1"],
            "noisy_accuracy": r["noisy"]["accuracy"], "noisy_macro_f1": r["noisy"]["macro_f1"]}


def main() -> None:
    """Both trials, printed as JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate", type=float, default=0.1, help="share of characters perturbed (training and test)")
    ap.add_argument("--mode", default="head", choices=["head", "lora", "full"])
    ap.add_argument("--shots", type=int, default=0, help="examples per intent (0: the whole train.csv)")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/banking77 beside the project")
    work = args.work or Path(tempfile.gettempdir()) / "agent-bench-noise-banking77"
    shutil.rmtree(work, ignore_errors=True)
    train = sample(args.shots, 0, work / "train.csv") if args.shots else DATA / "train.csv"
    results = [trial(work, name, train, args.mode, args.rate, noisy) for name, noisy in (("clean", False), ("noisy", True))]
    summary = {"data": "BANKING77 test (3,080 rows)", "mode": args.mode, "rate": args.rate, "results": results}
    print(json.dumps(summary, indent=2))
    (work / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
