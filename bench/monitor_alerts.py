"""Spike alerts: the false-alarm rate on pure noise, and detection of injected spikes.

1. Simulated windows (no model), for 8 configurations (base share 5% to 40%, 10 to 80 items a
   window): 10,000 windows of pure noise each (every alert is a false alarm); then 200 streams each
   with a spike of +20, +30 or +50 points over 4 windows: detected within one window, later, or missed.
2. End to end: the real `agent monitor` on a JSONL feed of 10,000 windows of pure noise (items drawn
   at random from the bundled plugin's own sentences, 10 a window, 30-second windows), written to a
   scratch folder; then the same feed with one injected spike.

Usage: python bench/monitor_alerts.py [--windows 10000] [--per-window 10] [--seed 0] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from agent.scenarios.monitor.config import MonitorConfig
from agent.scenarios.monitor.trends import SpikeDetector, Window

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "sentiment_monitor"
T0 = 1795392000


CONFIGS = [(0.05, 10), (0.05, 80), (0.1, 20), (0.15, 40), (0.2, 15), (0.25, 60), (0.3, 30), (0.4, 50)]  # base share, items


def window(rng: random.Random, topic: str, i: int, share: float, size: int) -> Window:
    """One simulated window: about `size` items, each with the watched label at `share`."""
    n = max(1, int(rng.gauss(size, size / 4)))
    return Window(topic, i, i + 1, n, sum(rng.random() < share for _ in range(n)))


def noise(windows: int, seed: int) -> dict:
    """Alerts over `windows` windows of pure noise for each configuration (all are false alarms)."""
    rng, per = random.Random(seed), []
    for base, size in CONFIGS:
        detector = SpikeDetector(MonitorConfig())
        fired = [i for i in range(windows) if detector.judge(window(rng, "t", i, base, size))]
        per.append({"base": base, "items": size, "false_alarms": len(fired)})
    total = sum(p["false_alarms"] for p in per)
    return {"windows": windows * len(CONFIGS), "false_alarms": total, "rate_per_window": total / (windows * len(CONFIGS)),
            "per_config": per}


def spikes(trials: int, rise: float, seed: int, at: int = 60, length: int = 4) -> dict:
    """Per configuration, `trials` streams with a spike of `rise` over `length` windows at window `at`."""
    rng, per = random.Random(seed), []
    for base, size in CONFIGS:
        in_time = late = missed = extra = 0
        for _ in range(trials):
            detector = SpikeDetector(MonitorConfig())
            fired = [i for i in range(at + 30)
                     if detector.judge(window(rng, "t", i, base + (rise if at <= i < at + length else 0.0), size))]
            first = [i for i in fired if at <= i < at + length + 1]
            in_time += bool(first) and first[0] <= at + 1
            late += bool(first) and first[0] > at + 1
            missed += not first
            extra += len(fired) - len(first[:1])
        per.append({"base": base, "items": size, "within_one_window": in_time, "later": late, "missed": missed,
                    "false_alarms": extra})
    return {"rise": rise, "trials_per_config": trials,
            "within_one_window": sum(p["within_one_window"] for p in per) / (trials * len(CONFIGS)),
            "per_config": per}


def noise_feed(path: Path, windows: int, per_window: int, seed: int, spike_at: int | None) -> None:
    """A JSONL feed of one topic ('app'): own sentences drawn at random; a spike swaps in negatives for 4 windows."""
    with open(PLUGIN / "sentences.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    negatives = [r["text"] for r in rows if r["label"] == "negative"]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for w in range(windows):
            for i in range(per_window):
                spiking = spike_at is not None and spike_at <= w < spike_at + 4 and rng.random() < 0.9
                text = rng.choice(negatives) if spiking else rng.choice(rows)["text"]
                fh.write(json.dumps({"text": text, "timestamp": T0 + w * 30 + i * 30 / per_window, "topic": "app"}) + "\n")


def end_to_end(work: Path, windows: int, per_window: int, seed: int, spike_at: int | None) -> dict:
    """Run `agent monitor` on a generated feed with 30-second windows; its summary."""
    plugins = work / "plugins"
    shutil.rmtree(plugins, ignore_errors=True)
    shutil.copytree(PLUGIN, plugins / "sentiment_monitor", ignore=shutil.ignore_patterns("model", "__pycache__"))
    toml = plugins / "sentiment_monitor" / "plugin.toml"
    toml.write_text(re.sub(r'^window = .*$', 'window = "30s"', toml.read_text(), flags=re.M))
    feed = work / f"feed-{'spike' if spike_at is not None else 'noise'}.jsonl"
    noise_feed(feed, windows, per_window, seed, spike_at)
    env = {**os.environ, "AGENT_HOME": str(work / "home"), "AGENT_PLUGINS_PATH": str(plugins),
           "AGENT_LOAD_PLUGINS": "sentiment_monitor"}
    out = subprocess.run(["agent", "monitor", str(feed), "--json", "--quiet"], env=env, check=True, capture_output=True, text=True)
    s = json.loads(out.stdout)
    result = {"windows": s["windows"], "items": s["items"], "alerts": len(s["alerts"]), "items_per_s": s["items_per_s"],
              "alert_windows": [int((a["window_start"] - T0) // 30) for a in s["alerts"]]}
    if spike_at is not None:
        result["spike_at"] = spike_at
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=10_000)
    parser.add_argument("--per-window", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-alerts")
    args = parser.parse_args()
    result = {"simulated_noise": noise(args.windows, args.seed),
              "simulated_spikes": [spikes(200, rise, args.seed + 1) for rise in (0.2, 0.3, 0.5)]}
    print(json.dumps(result, indent=2), flush=True)
    if not args.skip_e2e:
        args.work.mkdir(parents=True, exist_ok=True)
        result["e2e_noise"] = end_to_end(args.work, args.windows, args.per_window, args.seed, None)
        print(json.dumps(result["e2e_noise"]), flush=True)
        result["e2e_spike"] = end_to_end(args.work, 400, args.per_window, args.seed, 250)
        print(json.dumps(result["e2e_spike"]), flush=True)
        (args.work / "summary.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
