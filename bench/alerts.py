"""Outlets: delivery through failures, and what a dead receiver costs the monitor.

(a) 1,000 alerts published to one signed webhook on a local receiver that answers 503 to each delivery's
    first 3 attempts and 200 to the 4th: each alert must be received (answered 200) exactly once, every
    signature must verify; reported: the attempts per delivery, requests, wall time.
(b) `agent monitor`-style scoring (`run_items` on the bundled sentiment_monitor plugin, copied to a scratch
    folder, its own sentences with negative spikes in a topic, so alerts are raised) into a home without any
    outlet, and into one with a webhook whose receiver accepts connections and never answers; the two
    alternate, in one process, each round in the other order. Reported: items/s of each run, the medians, and the
    ratio of each round's pair (adjacent in time, so the machine's other load drifts less between them).

Usage: python bench/alerts.py [--alerts 1000] [--items 2000] [--rounds 5] [--skip-feed] [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import json
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "sentiment_monitor"
SECRET = b"bench-secret"
T0 = 1795392000.0  # 2026-11-23T00:00:00Z


class Flaky:
    """A receiver on 127.0.0.1 that answers 503 to each delivery's first `fails` attempts, then 200; it checks signatures."""

    def __init__(self, fails: int = 3) -> None:
        self.fails, self.seen, self.ok, self.bad_signatures, self.requests = fails, Counter(), Counter(), 0, 0
        self.lock, flaky = threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(flaky.answer(self.headers, body))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, headers: Any, body: bytes) -> int:
        """Count the attempt, verify its signature, choose the status."""
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        uid = headers["X-Agent-Delivery"]
        with self.lock:
            self.requests += 1
            self.bad_signatures += not hmac.compare_digest(expected, headers.get("X-Agent-Signature", ""))
            self.seen[uid] += 1
            if self.seen[uid] <= self.fails:
                return 503
            self.ok[uid] += 1
            return 200

    def url(self) -> str:
        """Its URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


class Silent:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock, self.held = socket.create_server(("127.0.0.1", 0)), []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            self.held.append(self.sock.accept()[0])

    def url(self) -> str:
        """Its URL."""
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"


def deliveries(work: Path, n: int) -> dict[str, Any]:
    """(a): n alerts through a receiver that fails each delivery's first three attempts."""
    from agent.outlets import Deliverer, Policy, publish
    from agent.outlets.targets import add
    from agent.store import Store

    store, receiver = Store(work / "a" / "agent.db"), Flaky()
    add(store, "webhook", receiver.url(), secret=SECRET.decode())
    policy = Policy(base=0.05, cap=1.0, tries=8, timeout=5.0)
    deliverer = Deliverer(store.path, policy).start()
    start = time.perf_counter()
    for i in range(n):
        publish(store, "alert", {"id": i, "topic": "app", "message": f"app: negative share 60% (alert {i})"}, plugin="bench")
    published = time.perf_counter() - start
    drained = deliverer.drain(600)
    wall = time.perf_counter() - start
    deliverer.stop()
    hist = {r["attempts"]: r["n"] for r in store.query("SELECT attempts, COUNT(*) AS n FROM deliveries GROUP BY attempts")}
    states = {r["state"]: r["n"] for r in store.query("SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state")}
    return {"alerts": n, "drained": drained, "received_once": sum(v == 1 for v in receiver.ok.values()),
            "received_twice_or_more": sum(v > 1 for v in receiver.ok.values()), "never_received": n - len(receiver.ok),
            "bad_signatures": receiver.bad_signatures, "requests": receiver.requests, "attempts_per_delivery": hist,
            "states": states, "attempt_rows": store.query("SELECT COUNT(*) AS n FROM delivery_attempts")[0]["n"],
            "policy": f"base {policy.base} s doubling to {policy.cap} s, {policy.tries} tries, 4 sending threads",
            "publish_seconds": round(published, 2), "publish_ms_per_alert": round(published / n * 1000, 2),
            "wall_seconds": round(wall, 2)}


def feed(n: int, seed: int = 0) -> list[Any]:
    """n feed items, 60 an hour, from the plugin's own sentences: 15% negative, 80% in 'app' for 3 hours of every 12."""
    from agent.scenarios.monitor.feed import FeedItem

    with open(PLUGIN / "sentences.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    pool: dict[tuple[str, bool], list[str]] = {}
    for r in rows:
        pool.setdefault((r["topic"], r["label"] == "negative"), []).append(r["text"])
    topics = sorted({t for t, _ in pool})
    rng, items = random.Random(seed), []
    for i in range(n):
        hour, topic = i // 60, rng.choice(topics)
        if hour % 12 in (8, 9, 10) and rng.random() < 0.5:
            topic = "app"
        share = 0.8 if topic == "app" and hour % 12 in (8, 9, 10) else 0.15
        items.append(FeedItem(i + 1, rng.choice(pool[topic, rng.random() < share]), T0 + i * 60.0, "bench"))
    return items


def throughput(work: Path, n: int, rounds: int) -> dict[str, Any]:
    """(b): items/s of run_items without an outlet and with a webhook that never answers, alternating."""
    from agent.outlets import delivering
    from agent.outlets.targets import add
    from agent.reply.agent import Agent
    from agent.scenarios.monitor.run import run_items
    from agent.settings import Settings
    from agent.store import Store

    shutil.copytree(PLUGIN, work / "plugins" / PLUGIN.name, ignore=shutil.ignore_patterns("model", "__pycache__"))
    agent = Agent(Settings(home=work / "home", plugin_paths=[work / "plugins"]), device="cpu")
    runtime = agent.observers[PLUGIN.name]
    silent, items = Silent(), feed(n)
    plain, hooked = Store(work / "plain" / "agent.db"), Store(work / "hooked" / "agent.db")
    add(hooked, "webhook", silent.url(), secret="x")
    run_items(runtime, plain, iter(items[:600]), "warm-up")
    runs: dict[str, list[dict[str, Any]]] = {"no_webhook": [], "dead_webhook": []}
    for r in range(rounds):
        for name in (("no_webhook", "dead_webhook") if r % 2 == 0 else ("dead_webhook", "no_webhook")):
            if name == "no_webhook":
                s = run_items(runtime, plain, iter(items), "bench")
            else:
                with delivering(hooked.path) as d:
                    s = run_items(runtime, hooked, iter(items), "bench")
                    in_flight = d.in_flight
            runs[name].append({"items_per_s": round(s.items / s.seconds, 1), "alerts": len(s.alerts),
                               **({"deliveries_in_flight_at_end": in_flight} if name == "dead_webhook" else {})})
            print(f"round {r + 1} {name}: {runs[name][-1]}", flush=True)
    med = {k: statistics.median(x["items_per_s"] for x in v) for k, v in runs.items()}
    paired = [round(d["items_per_s"] / p["items_per_s"], 3) for d, p in zip(runs["dead_webhook"], runs["no_webhook"])]
    queued = hooked.query("SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state")
    errors = hooked.query("SELECT last_error, COUNT(*) AS n FROM deliveries GROUP BY last_error")
    return {"items_per_run": n, "rounds": rounds, "runs": runs, "median_items_per_s": med,
            "ratio_of_medians_dead_webhook_over_none": round(med["dead_webhook"] / med["no_webhook"], 3),
            "ratio_per_round": paired, "median_ratio_per_round": statistics.median(paired),
            "dead_webhook_deliveries": {r["state"]: r["n"] for r in queued}, "dead_webhook_errors": errors,
            "connections_held_by_the_silent_receiver": len(silent.held)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--items", type=int, default=2000, help="feed items per monitor run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-feed", action="store_true", help="only (a)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-alerts")
    args = parser.parse_args()
    print("$ python " + " ".join([str(Path(sys.argv[0])), *sys.argv[1:]]), flush=True)
    shutil.rmtree(args.work, ignore_errors=True)
    out = {"deliveries": deliveries(args.work, args.alerts)}
    print(json.dumps(out["deliveries"], indent=2), flush=True)
    if not args.skip_feed:
        out["monitor"] = throughput(args.work, args.items, args.rounds)
        print(json.dumps(out["monitor"], indent=2), flush=True)
    (args.work / "summary.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
