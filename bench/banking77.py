"""BANKING77: build a plugin from train.csv with `agent new-plugin`, evaluate on test.csv with `agent eval`.

Runs the real commands in a scratch home outside the project (the data is never copied into it).
Usage: python bench/banking77.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77"


def run(cmd: list[str], env: dict[str, str]) -> float:
    """Run a command, echo it, return its wall time in seconds."""
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - start


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
