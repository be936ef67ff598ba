"""Peak memory of `agent finetune` in the default mode, on CPU, with the bundled plugins in the home, measured
with `/usr/bin/time -v` around the command alone (its maximum resident set size) next to its wall time.

Cases: `10shot` (BANKING77, 10 rows per intent, seed 0), `full` (BANKING77 train.csv), `150` (150 intents of up to
110 rows each, 15,051 rows: BANKING77's 77, MASSIVE zh-CN's 60 and 13 of Bitext's customer-service intents). The two
BANKING77 cases then run `agent eval` on test.csv (not timed) for the accuracy beside the figures.

Usage: python bench/finetune_memory.py CASE [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SHARED_DATA, write_pairs
from finetune_banking77 import evaluate, sample

PER_LABEL = 110  # rows per intent in the 150-intent plugin (15,051 rows: a few MASSIVE intents have fewer)


def _rows(path: Path, text: str, label: str, prefix: str, **kw: str) -> dict[str, list[str]]:
    """A CSV's texts by label, labels prefixed with the data set's name."""
    with open(path, newline="", encoding=kw.get("encoding", "utf-8")) as fh:
        by: dict[str, list[str]] = {}
        for r in csv.DictReader(fh):
            by.setdefault(prefix + r[label].strip(), []).append(r[text])
    return by


def mix150(out: Path, seed: int = 0) -> Path:
    """150 intents, up to PER_LABEL rows each, from three data sets (English and Chinese)."""
    rng = random.Random(seed)
    parts = [_rows(SHARED_DATA / "banking77" / "train.csv", "text", "category", "bank_"),
             _rows(SHARED_DATA / "massive_zh" / "train.csv", "text", "label_text", "zh_")]
    bitext = _rows(SHARED_DATA / "bitext_customer_service" / "Bitext_Sample_Customer_Service_Training_Dataset.csv",
                   "utterance", "intent", "cs_", encoding="utf-8-sig")
    parts.append({k: bitext[k] for k in sorted(bitext)[: 150 - sum(len(p) for p in parts)]})
    pairs = [(t, label) for p in parts for label in sorted(p) for t in rng.sample(p[label], min(PER_LABEL, len(p[label])))]
    return write_pairs(out, pairs)


def timed(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run a command under /usr/bin/time -v; its wall seconds and maximum resident set size (MB)."""
    print("$ /usr/bin/time -v", " ".join(cmd), flush=True)
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, stderr=subprocess.PIPE, text=True, check=True)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr)
    if rss is None or wall is None:
        sys.exit(f"no figures from /usr/bin/time -v:\n{done.stderr[-2000:]}")
    clock = [float(x) for x in wall.group(1).split(":")]
    return {"max_rss_kb": int(rss.group(1)),
            "wall_seconds": round(sum(x * 60 ** i for i, x in enumerate(reversed(clock))), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=["10shot", "full", "150"])
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    if not SHARED_DATA.is_dir():
        sys.exit(f"{SHARED_DATA} not found: this benchmark needs ../shared/data beside the project")
    if not Path("/usr/bin/time").exists():
        sys.exit("/usr/bin/time not found: install GNU time (apt-get install time)")
    work = args.work or Path(tempfile.gettempdir()) / f"agent-bench-ft-memory-{args.case}"
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "AGENT_HOME": str(work / "home")}
    if args.case == "150":
        train, column = mix150(work / "train.csv"), "label"
    else:
        train = sample(10, 0, work / "train.csv") if args.case == "10shot" else SHARED_DATA / "banking77" / "train.csv"
        column = "category"
    plugin = work / "plugins" / f"mem{args.case}"
    subprocess.run(["agent", "new-plugin", str(plugin), "--examples", str(train), "--label-column", column],
                   env=env, check=True)
    figures = timed(["agent", "finetune", str(plugin), "--device", "cpu", "--json"], env)
    version = (work / "home" / "models" / plugin.name / "current").read_text().strip()
    report = json.loads((work / "home" / "models" / plugin.name / version / "report.json").read_text())
    test = {} if args.case == "150" else {"test_accuracy": evaluate(plugin, work / "eval.json", env)[0]["accuracy"]}
    print(json.dumps({"case": args.case, **figures, **test, "train_rows": report["data"]["train_rows"],
                      "peak_rss_mb_reported": report["run"].get("peak_rss_mb"), "steps": report["run"].get("steps"),
                      "holdout_accuracy": report["evaluation"]["candidate"]["accuracy"], "status": report["status"]},
                     indent=2))


if __name__ == "__main__":
    main()
