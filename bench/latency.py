"""Latency of Agent.reply against one encoder forward pass, on the same single messages, in one run.

Messages: BANKING77 test questions (from ../shared/data) sent to the bundled customer_service plugin,
with a scratch home so the project's own log is untouched. Reports p50 / p99 of both and their ratio.
Usage: python bench/latency.py [--n 500]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77" / "test.csv"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(agent: object, messages: list[str]) -> dict:
    """p50 / p99 of `agent.reply` and of one pass of the agent's own encoder, interleaved on the same messages."""
    for m in messages[:20]:  # warm up: indexes, head, allocator, database
        agent.reply(m)
        agent.encoder.encode([m])
    enc, rep = [], []
    for m in messages:  # interleaved so both see the same machine state
        t = time.perf_counter()
        agent.encoder.encode([m])
        enc.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        agent.reply(m)
        rep.append((time.perf_counter() - t) * 1000)
    result = {"messages": len(messages)}
    for name, ms in (("encoder_ms", enc), ("reply_ms", rep)):
        result[name] = {"p50": round(percentile(ms, 50), 2), "p99": round(percentile(ms, 99), 2), "mean": round(statistics.mean(ms), 2)}
    result["p50_ratio"] = round(result["reply_ms"]["p50"] / result["encoder_ms"]["p50"], 2)
    result["p99_ratio"] = round(result["reply_ms"]["p99"] / result["encoder_ms"]["p99"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    from agent.models.encoder import shared_encoder
    from agent.reply.agent import Agent
    from agent.settings import PACKAGE_ROOT, Settings

    with open(DATA, newline="", encoding="utf-8") as fh:
        messages = [row["text"] for row in csv.DictReader(fh)][: args.n]
    home = Path(tempfile.mkdtemp(prefix="agent-latency-"))
    agent = Agent(Settings(home=home, plugin_paths=[PACKAGE_ROOT / "plugins"]), encoder=shared_encoder("cpu"))
    result = measure(agent, messages)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
