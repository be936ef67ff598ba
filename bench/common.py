"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

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
