"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import csv
import subprocess
import time
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def run(cmd: list[str], env: dict[str, str]) -> float:
    """Run a command, echo it, return its wall time in seconds."""
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - start


def write_pairs(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A text,label CSV in a scratch folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path
