"""Crash safety: `kill -9` a process at a random moment while it logs turns, builds indexes or
fine-tunes, then check that the home recovers.

    python bench/crash.py                 # runs until 20 processes were killed mid-run, ~10 minutes on 2 CPUs
    python bench/crash.py --kills 3 --json

After each kill: `PRAGMA integrity_check` is ok, every stored turn has its predictions (no half-written
turn), a fresh process answers with the plugin's current model, and once it has run no partial
version folder or temporary file is left in the home or the plugin folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "customer_service"
TARGETS = ("logging", "index", "finetune")

CHECK = """
import json, sys
from pathlib import Path
from agent.reply.agent import Agent
from agent.settings import Settings
agent = Agent(Settings(home=Path(sys.argv[1]), plugin_paths=[Path(sys.argv[2])]))
reply = agent.reply("I lost my card, please block it", plugin="customer_service")
print(json.dumps({"label": reply.label, "model": agent.runtimes["customer_service"].model_state}))
"""


def script(path: Path, turns: int) -> Path:
    """A replay CSV of the plugin's example texts, conversations of five turns."""
    with open(PLUGIN / "intents.csv", newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["conversation_id", "text"])
        w.writerows([f"c{i // 5}", texts[i % len(texts)]] for i in range(turns))
    return path


def victim(target: str, rng: random.Random, home: Path, plugin: Path, replay: Path) -> tuple[list[str], str, float]:
    """The command to kill, the sign that it is at work, and how long after that sign to kill it."""
    agent = [sys.executable, "-m", "agent", "--device", "cpu"]
    if target == "logging":
        return [*agent, "replay", str(replay), "--batch-size", "8"], "turns", rng.uniform(0, 3)
    if target == "index":
        shutil.rmtree(home / "indexes" / plugin.name, ignore_errors=True)
        return [*agent, "ask", "-p", plugin.name, "I lost my card"], "building index", rng.uniform(0, 1.5)
    mode = rng.choice(["head", "full"])
    extra = ["--epochs", "1"] if mode == "full" else []
    cmd = [*agent, "finetune", str(plugin), "--mode", mode, "--force", *extra]
    return cmd, "partial", rng.uniform(0, 8 if mode == "full" else 1.5)  # its notes reach stderr only at the end


def turn_count(home: Path) -> int:
    """Turns stored so far (0 before the database exists)."""
    try:
        db = sqlite3.connect(f"file:{home / 'agent.db'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT count(*) FROM turns").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def wait_for(proc: subprocess.Popen, sign: str, home: Path, stderr: Path, plugin: Path, limit: float = 120) -> float:
    """Wait until the process shows `sign` (new turns, a partial version folder, or a note on stderr);
    return the seconds waited."""
    start, before = time.perf_counter(), turn_count(home)

    def shown() -> bool:
        if sign == "turns":
            return turn_count(home) > before
        if sign == "partial":
            return any((home / "models" / plugin.name).glob(".partial-*"))
        return sign in stderr.read_text(errors="replace")

    while proc.poll() is None and time.perf_counter() - start < limit:
        if shown():
            break
        time.sleep(0.05)
    return time.perf_counter() - start


def leftovers(*roots: Path) -> list[str]:
    """Partial version folders and temporary files under the roots."""
    found = []
    for root in roots:
        for p in root.rglob("*"):
            if p.name.startswith(".partial-") or p.name.endswith(".tmp"):
                found.append(str(p.relative_to(root.parent)))
    return found


def check(home: Path, plugin: Path, env: dict[str, str]) -> dict[str, object]:
    """The recovery checks after a kill."""
    db = sqlite3.connect(home / "agent.db")
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    orphans = db.execute("SELECT count(*) FROM turns WHERE id NOT IN (SELECT turn_id FROM predictions)").fetchone()[0]
    turns = db.execute("SELECT count(*) FROM turns").fetchone()[0]
    db.close()
    run = subprocess.run([sys.executable, "-c", CHECK, str(home), str(plugin.parent)], env=env,
                         capture_output=True, text=True, timeout=300)
    answer = json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 else {"error": run.stderr[-500:]}
    left = leftovers(home, home / "models" / plugin.name)
    ok = integrity == "ok" and orphans == 0 and answer.get("label") == "card_lost_or_stolen" and not left
    return {"integrity": integrity, "orphan_turns": orphans, "turns": turns, "answer": answer, "leftovers": left, "ok": ok}


def main() -> None:
    """Kill, check, repeat; print a table (or JSON) and exit 1 if any recovery failed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="agent-crash-"))
    home, plugin = scratch / "home", scratch / "plugins" / PLUGIN.name
    shutil.copytree(PLUGIN, plugin, ignore=shutil.ignore_patterns("model"))
    env = {**os.environ, "AGENT_HOME": str(home), "AGENT_PLUGINS_PATH": str(plugin.parent)}
    replay = script(scratch / "replay.csv", 2000)
    subprocess.run([sys.executable, "-m", "agent", "finetune", str(plugin), "--mode", "head"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # a current model to protect
    results: list[dict] = []
    i = 0
    while sum(not r["finished_first"] for r in results) < args.kills and i < 2 * args.kills:  # runs that ended first do not count
        target = TARGETS[i % len(TARGETS)]
        i += 1
        cmd, sign, after = victim(target, rng, home, plugin, replay)
        with open(scratch / "stderr.txt", "w") as err:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
            waited = wait_for(proc, sign, home, scratch / "stderr.txt", plugin)
            time.sleep(after)
            after += waited
            finished = proc.poll() is not None
            os.kill(proc.pid, signal.SIGKILL) if not finished else None
            proc.wait()
        lines = [line for line in (scratch / "stderr.txt").read_text(errors="replace").strip().splitlines()
                 if "is not used" not in line]
        result = {"kill": i, "target": target, "after_s": round(after, 1), "finished_first": finished,
                  "last_note": lines[-1][:80] if lines else "", **check(home, plugin, env)}
        results.append(result)
        if not args.json:
            print(f"{result['kill']:>2} {target:<9} {result['after_s']:>5} s  {'finished first' if finished else 'killed':<14} ok={result['ok']}  "
                  f"turns={result['turns']:<6} model={result['answer'].get('model', '-')!s:<12} {result['last_note']}", flush=True)
    recovered = sum(r["ok"] for r in results)
    killed = sum(not r["finished_first"] for r in results)
    summary = {"kills": killed, "runs": len(results), "recovered": recovered, "results": results}
    print(json.dumps(summary) if args.json else f"{recovered} of {len(results)} recovered ({killed} killed mid-run)")
    shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(0 if recovered == len(results) else 1)


if __name__ == "__main__":
    main()
