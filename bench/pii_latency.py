"""Does redaction slow a turn? `Agent.reply` p50 with today's redaction against an earlier pii.py, alternated in blocks
on the same agent and the same messages, in one process; and `redact()` alone, per message.

Messages: BANKING77 test questions (few hold digits) and generated messages that each hold a personal number
(tests/pii_strategies.py), sent to the bundled customer_service plugin in a scratch home.
Usage: git show REV:agent/pii.py > /tmp/pii_old.py && python bench/pii_latency.py --old /tmp/pii_old.py [--n 300] [--rounds 6]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from pii_false_positives import load_redact  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "banking77" / "test.csv"


def generated(n: int) -> list[str]:
    """N messages holding a personal number of some kind, in random contexts."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from pii_strategies import VALUES, placed

    out: list[str] = []

    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(sorted(VALUES)).flatmap(placed))
    def collect(p: object) -> None:
        out.append(p.text)  # type: ignore[attr-defined]

    collect()
    return out


def timed_replies(agent: object, messages: list[str]) -> list[float]:
    """Milliseconds of each `agent.reply`."""
    out = []
    for m in messages:
        start = time.perf_counter()
        agent.reply(m)  # type: ignore[attr-defined]
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", type=Path, required=True, help="an earlier agent/pii.py")
    parser.add_argument("--n", type=int, default=300, help="messages of each set")
    parser.add_argument("--rounds", type=int, default=6, help="alternations of old and today's")
    args = parser.parse_args()
    from agent.reply.agent import Agent
    from agent.settings import Settings
    from agent.text import guard

    with open(DATA, newline="", encoding="utf-8") as fh:
        sets = {"BANKING77 test": [r["text"] for r in csv.DictReader(fh)][: args.n], "with a personal number": generated(args.n)}
    impls = {"before": load_redact(args.old), "today": guard.redact}
    agent = Agent(Settings(home=Path(tempfile.mkdtemp(prefix="agent-bench-pii-lat-")),
                           plugin_paths=[REPO / "plugins" / "customer_service"]))
    timed_replies(agent, sets["BANKING77 test"][:30])  # warm up
    print("| messages | redaction | Agent.reply p50 ms | redact() mean µs |\n|---|---|---|---|")
    for name, messages in sets.items():
        times: dict[str, list[float]] = {who: [] for who in impls}
        for _ in range(args.rounds):
            for who, fn in impls.items():
                guard.redact = fn  # what Agent.reply calls (through guard.redact_for)
                times[who] += timed_replies(agent, messages)
        for who, fn in impls.items():
            start = time.perf_counter()
            for m in messages * 5:
                fn(m)
            alone = (time.perf_counter() - start) / (len(messages) * 5) * 1e6
            print(f"| {name} | {who} | {statistics.median(times[who]):.2f} | {alone:.1f} |", flush=True)
    guard.redact = impls["today"]


if __name__ == "__main__":
    main()
