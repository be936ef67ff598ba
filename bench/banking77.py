"""BANKING77: build a plugin from train.csv with `agent new-plugin`, evaluate on test.csv with `agent eval`.

Runs the real commands in a scratch home outside the project (the data is never copied into it).
Usage: python bench/banking77.py [--work DIR]
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

DATA = SHARED_DATA / "banking77"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-banking77")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/banking77 beside the project")
    shutil.rmtree(args.work, ignore_errors=True)
    env = {**os.environ, "AGENT_HOME": str(args.work / "home")}
    plugin, report = args.work / "plugins" / "banking77", args.work / "eval.json"
    t_build = run(["agent", "new-plugin", str(plugin), "--examples", str(DATA / "train.csv"), "--label-column", "category"], env)
    t_eval = run(["agent", "eval", str(plugin), "--data", str(DATA / "test.csv"), "--label-column", "category",
                  "--json", str(report)], env)
    r = json.loads(report.read_text())
    summary = {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "n": r["n"], "model": r["model"],
               "new_plugin_seconds": round(t_build, 1), "eval_seconds_wall": round(t_eval, 1),
               "eval_seconds_inside": r["seconds"], "rows_per_second": r["rows_per_second"]}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
