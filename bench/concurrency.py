"""Concurrent writers on one home: W processes x N turns each through Agent.reply, optionally with an
`agent replay` and an `agent finetune` running on the same home at the same time.

    python bench/concurrency.py                      # 4 writers x 1,000 turns
    python bench/concurrency.py --mixed              # ... plus a replay and a fine-tune at once

Prints one JSON object: turns stored, errors, seconds, and `PRAGMA integrity_check`.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "customer_service"


def messages() -> list[str]:
    """The bundled customer-service plugin's example texts."""
    with open(PLUGIN / "intents.csv", newline="", encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


def writer(home: str, plugins: str, worker: int, turns: int, out: "mp.Queue[dict]") -> None:
    """One chat process: `turns` replies, conversations of five turns, errors counted, not raised."""
    from agent.errors import AgentError
    from agent.reply.agent import Agent
    from agent.settings import Settings

    agent = Agent(Settings(home=Path(home), plugin_paths=[Path(plugins)]))
    texts, errors, ids = messages(), [], []
    for i in range(turns):
        try:
            ids.append(agent.reply(texts[(worker * 7919 + i) % len(texts)], conversation_id=f"w{worker}-{i // 5}").turn_id)
        except AgentError as exc:
            errors.append(str(exc))
    out.put({"worker": worker, "turns": len(ids), "errors": errors[:5], "error_count": len(errors), "ids": len(set(ids))})


def side_jobs(home: Path, plugins: Path, scratch: Path) -> list[subprocess.Popen]:
    """An `agent replay` of a 500-turn CSV and a head-only `agent finetune`, started in the background."""
    script = scratch / "replay.csv"
    with open(script, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["conversation_id", "text"])
        for i, text in enumerate(messages()[:500]):
            w.writerow([f"r{i // 5}", text])
    env = {**os.environ, "AGENT_HOME": str(home), "AGENT_PLUGINS_PATH": str(plugins)}
    agent = [sys.executable, "-m", "agent"]
    return [
        subprocess.Popen([*agent, "replay", str(script), "--batch-size", "64"], env=env, stdout=subprocess.DEVNULL),
        subprocess.Popen([*agent, "finetune", str(plugins / PLUGIN.name), "--mode", "head"], env=env, stdout=subprocess.DEVNULL),
    ]


def main() -> None:
    """Run the writers (and side jobs), then count what was stored."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--turns", type=int, default=1000)
    ap.add_argument("--mixed", action="store_true", help="also run a replay and a fine-tune on the same home")
    ap.add_argument("--scratch", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = ap.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="agent-concurrency-"))
    home, plugins = scratch / "home", scratch / "plugins"
    shutil.copytree(PLUGIN, plugins / PLUGIN.name, ignore=shutil.ignore_patterns("model"), dirs_exist_ok=True)
    from agent.reply.agent import Agent
    from agent.settings import Settings

    Agent(Settings(home=home, plugin_paths=[plugins])).reply("warm up: build the index once")
    ctx = mp.get_context("spawn")
    out: "mp.Queue[dict]" = ctx.Queue()
    start = time.perf_counter()
    side = side_jobs(home, plugins, scratch) if args.mixed else []
    procs = [ctx.Process(target=writer, args=(str(home), str(plugins), w, args.turns, out)) for w in range(args.writers)]
    for p in procs:
        p.start()
    results = sorted((out.get() for _ in procs), key=lambda r: r["worker"])
    for p in procs:
        p.join()
    side_codes = [p.wait() for p in side]
    seconds = time.perf_counter() - start
    db = sqlite3.connect(home / "agent.db")
    stored = db.execute("SELECT count(*) FROM turns WHERE conversation_id LIKE 'w%'").fetchone()[0]
    print(json.dumps({
        "writers": args.writers, "turns_each": args.turns, "stored": stored,
        "errors": sum(r["error_count"] for r in results), "error_samples": [e for r in results for e in r["errors"]][:5],
        "seconds": round(seconds, 1), "turns_per_s": round(stored / seconds, 1),
        "integrity": db.execute("PRAGMA integrity_check").fetchone()[0],
        "side_jobs_exit_codes": side_codes,
        "replayed": db.execute("SELECT count(*) FROM turns WHERE conversation_id LIKE 'replay%'").fetchone()[0],
        "finetune_runs": db.execute("SELECT count(*) FROM finetune_runs").fetchone()[0] if args.mixed else None,
    }))
    if args.scratch is None:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
