"""Replay throughput against the raw batched encoder, measured in one run.

Two inputs, both built in a scratch folder from ../shared/data (never copied into the project):
  1. the user turns of the Taskmaster-4 coffee dialogues (CC BY 4.0), as a replay script, one
     conversation per dialogue;
  2. a --turns (default 100,000) turn log: BANKING77 train (CC BY 4.0), Bitext (CDLA-Sharing 1.0) and
     Taskmaster-4 user turns, cycled, in conversations of 5 turns.
Each is replayed with the real `agent replay` command (a scratch home, the bundled plugins; logged
unless --dry-run), and the same texts are encoded by the raw encoder in batches of 64, in this process.
Reports turns/s of both, their ratio, and the replay's peak memory.
Usage: python bench/replay.py [--turns 100000] [--engine local|ray] [--dry-run] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def taskmaster_dialogues() -> list[tuple[str, list[str]]]:
    """(conversation id, user turns) of every Taskmaster-4 coffee dialogue."""
    out = []
    for f in sorted((DATA / "taskmaster4_coffee").glob("data_*.json")):
        for dlg in json.loads(f.read_text(encoding="utf-8")):
            turns = [u["text"] for u in dlg["utterances"] if u["speaker"] == "user" and u["text"].strip()]
            if turns:
                out.append((dlg["conversation_id"], turns))
    return out


def pool_texts(dialogues: list[tuple[str, list[str]]]) -> list[str]:
    """BANKING77 train, Bitext and Taskmaster-4 user texts."""
    with open(DATA / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    with open(DATA / "bitext_customer_service" / "Bitext_Sample_Customer_Service_Training_Dataset.csv", newline="", encoding="utf-8") as fh:
        texts += [r["utterance"] for r in csv.DictReader(fh)]
    return texts + [t for _, turns in dialogues for t in turns]


def write_script(path: Path, conversations: list[tuple[str, list[str]]]) -> list[str]:
    """A JSONL replay script, one conversation per line; return the texts in order."""
    texts = []
    with open(path, "w", encoding="utf-8") as fh:
        for conv, turns in conversations:
            fh.write(json.dumps({"conversation": conv, "turns": turns}, ensure_ascii=False) + "\n")
            texts += turns
    return texts


def big_log(pool: list[str], n: int) -> list[tuple[str, list[str]]]:
    """n turns cycled from the pool, in conversations of 5."""
    texts = [pool[i % len(pool)] for i in range(n)]
    return [(f"c{i // 5}", texts[i : i + 5]) for i in range(0, n, 5)]


def encoder_rate(texts: list[str]) -> float:
    """Raw batched encoder throughput (texts/s) over these texts."""
    from agent.models.encoder import shared_encoder

    enc = shared_encoder("cpu")
    enc.encode(texts[:256])  # warm up
    start = time.perf_counter()
    enc.encode(texts, batch_size=64)
    return len(texts) / (time.perf_counter() - start)


def replay_rate(script: Path, home: Path, args: argparse.Namespace) -> dict:
    """Run `agent replay` on the script; its JSON summary."""
    cmd = [sys.executable, "-m", "agent", "--home", str(home), "--device", "cpu", "replay", str(script), "--json", "-",
           "--engine", args.engine, "--batch-size", str(args.batch_size), *(["--dry-run"] if args.dry_run else [])]
    env = {**os.environ, "AGENT_PLUGINS_PATH": ""}
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)["summary"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--keep", type=Path, help="Folder for the scripts and the home (default: a temporary one).")
    parser.add_argument("--skip-taskmaster", action="store_true")
    args = parser.parse_args()
    if not (DATA / "taskmaster4_coffee").is_dir():
        sys.exit(f"{DATA} is missing: this benchmark needs ../shared/data")
    work = args.keep or Path(tempfile.mkdtemp(prefix="agent-replay-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    dialogues = taskmaster_dialogues()
    inputs = [] if args.skip_taskmaster else [("taskmaster4_coffee", dialogues)]
    inputs.append((f"log_{args.turns}", big_log(pool_texts(dialogues), args.turns)))
    results = {}
    for name, conversations in inputs:
        script = work / f"{name}.jsonl"
        texts = write_script(script, conversations)
        summary = replay_rate(script, work / "home", args)
        raw = encoder_rate(texts)
        results[name] = {"turns": summary["turns"], "conversations": summary["conversations"],
                         "replay_turns_per_s": summary["turns_per_s"], "encoder_texts_per_s": round(raw, 1),
                         "ratio": round(summary["turns_per_s"] / raw, 3), "replay_peak_rss_mb": summary["peak_rss_mb"],
                         "replay_seconds": summary["seconds"], "errors": summary["errors"], "bad_lines": summary["bad_lines"],
                         "engine": args.engine, "dry_run": args.dry_run}
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
