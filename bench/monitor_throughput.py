"""`agent monitor` throughput over a 100,000-line JSONL feed against the raw batched encoder, in the same run.

The feed cycles Financial PhraseBank sentences (all agreement levels) with timestamps a few seconds
apart and a source; it is written to a scratch folder, never into the project. First the packaged
encoder embeds every feed text in batches of 64 (sorted by length, its fastest order); then the real
command scores the same feed into a scratch home with the bundled sentiment_monitor plugin.

Usage: python bench/monitor_throughput.py [--lines 100000] [--work DIR] [--plugin DIR]
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

from common import SHARED_DATA

DATA = SHARED_DATA / "financial_phrasebank" / "Sentences_50Agree.txt"
REPO = Path(__file__).resolve().parents[1]
T0 = 1795392000  # 2026-11-23T00:00:00Z


def write_feed(path: Path, lines: int) -> list[str]:
    """The feed file; returns its texts in order."""
    sentences = [s.rpartition("@")[0].strip() for s in DATA.read_text(encoding="iso-8859-1").splitlines() if "@" in s]
    texts = [sentences[i % len(sentences)] for i in range(lines)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            fh.write(json.dumps({"text": text, "timestamp": T0 + i * 3, "source": f"news-{i % 7}"}) + "\n")
    return texts


def raw_encoder(texts: list[str]) -> float:
    """Texts per second of the packaged encoder alone, batched (64, sorted by length) on this machine."""
    from agent.models.encoder import Encoder

    enc = Encoder(device="cpu")
    enc.encode(texts[:256])  # warm-up
    start = time.perf_counter()
    enc.encode(texts, batch_size=64)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-monitor")
    parser.add_argument("--plugin", type=Path, default=REPO / "plugins" / "sentiment_monitor", help="the monitoring plugin folder")
    parser.add_argument("--models", type=Path, help="its fine-tuned versions (HOME/models/NAME of the home that trained it)")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/financial_phrasebank beside the project")
    shutil.rmtree(args.work, ignore_errors=True)
    feed = args.work / "feed.jsonl"
    texts = write_feed(feed, args.lines)
    print(f"feed: {args.lines:,} lines, {feed.stat().st_size / 1e6:.1f} MB", flush=True)
    encoder_rate = raw_encoder(texts)
    print(f"raw encoder: {encoder_rate:,.1f} texts/s", flush=True)
    plugins = args.work / "plugins"
    shutil.copytree(args.plugin, plugins / args.plugin.name, ignore=shutil.ignore_patterns("__pycache__"))
    if args.models:  # versions live in the home, not the plugin folder
        shutil.copytree(args.models, args.work / "home" / "models" / args.plugin.name)
    env = {**os.environ, "AGENT_HOME": str(args.work / "home"), "AGENT_PLUGINS_PATH": str(plugins),
           "AGENT_LOAD_PLUGINS": args.plugin.name}
    subprocess.run(["agent", "monitor", "--help"], env=env, check=True, capture_output=True)
    start = time.perf_counter()
    out = subprocess.run(["agent", "monitor", str(feed), "--json", "--quiet"], env=env, check=True,
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads(out.stdout)
    result = {
        "lines": args.lines, "raw_encoder_texts_per_s": round(encoder_rate, 1),
        "monitor_items_per_s": summary["items_per_s"], "monitor_seconds": summary["seconds"],
        "monitor_wall_seconds_with_startup": round(wall, 1), "ratio": round(summary["items_per_s"] / encoder_rate, 3),
        "ratio_with_startup": round(args.lines / wall / encoder_rate, 3), "items": summary["items"],
        "bad_lines": summary["bad_lines"], "alerts": len(summary["alerts"]), "windows": summary["windows"],
    }
    print(json.dumps(result, indent=2))
    (args.work / "summary.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
