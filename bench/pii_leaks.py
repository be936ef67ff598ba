"""PII leaks through a real home: N hypothesis cases per kind (card, resident ID, phone, IBAN, account, e-mail),
each a generated value in a random context (glued to words, after any punctuation mark, in Chinese, Arabic or
Cyrillic, in URLs and JSON), answered by a real Agent (batches of 64, each turn logged, a note on each) on the
bundled customer-service plugin; then every file of the home (database, write-ahead log, indexes) is searched for
the value as typed and for its digits without separators. Homes hold 1,000 cases each, to keep the search short.

Usage: python bench/pii_leaks.py [--cases 10000] [--kinds card,id,...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from pii_strategies import VALUES, Planted, placed  # noqa: E402

HOME_CASES, BATCH = 1000, 64


def generate(kind: str, n: int) -> list[Planted]:
    """N cases of one kind, drawn by hypothesis (generation only: nothing fails, so nothing shrinks)."""
    out: list[Planted] = []

    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(placed(kind))
    def collect(planted: Planted) -> None:
        out.append(planted)

    collect()
    return out


def leaks_in_home(cases: list[Planted], encoder: object) -> list[tuple[Planted, str]]:
    """Answer and log the cases in a fresh home, then the (case, form) pairs found in any of its files."""
    from agent.reply.agent import Agent, Message
    from agent.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="agent-bench-pii-"))
    try:
        agent = Agent(Settings(home=home, plugin_paths=[REPO / "plugins" / "customer_service"]), encoder=encoder)
        for i in range(0, len(cases), BATCH):
            batch = cases[i:i + BATCH]
            replies = agent.replies([Message(c.text, conversation_id=f"c{i + j}") for j, c in enumerate(batch)])
            for case, reply in zip(batch, replies):
                agent.feedback(reply.turn_id, rating="bad", note=f"they wrote: {case.text}")
        agent.store.close()
        data = b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())
        return [(c, form) for c in cases for form in c.forms() if form.encode() in data]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000, help="cases per kind")
    parser.add_argument("--kinds", default=",".join(sorted(VALUES)), help="comma-separated kinds")
    args = parser.parse_args()
    from agent.models.encoder import shared_encoder

    encoder = shared_encoder("cpu")
    print("| kind | cases | distinct texts | leaks | seconds |\n|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        start = time.perf_counter()
        cases = generate(kind, args.cases)
        found = [hit for i in range(0, len(cases), HOME_CASES) for hit in leaks_in_home(cases[i:i + HOME_CASES], encoder)]
        print(f"| {kind} | {len(cases):,} | {len({c.text for c in cases}):,} | {len(found)} | {time.perf_counter() - start:.0f} |",
              flush=True)
        for case, form in found[:10]:
            print(f"    leaked {form!r} of {case.text!r}")


if __name__ == "__main__":
    main()
