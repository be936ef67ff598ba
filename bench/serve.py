"""`agent serve` under load: a real server process on a loopback port, BANKING77 test messages from 1, 8 and 64
concurrent clients (real HTTP), against the raw batched encoder (`encode` on batches of 64) and in-process
`Agent.reply`, measured in the same run; then: every 200 is a stored turn, and the database passes its check.

Usage: python bench/serve.py [--requests 2000] [--clients 1,8,64] [--work DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "banking77" / "test.csv"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def start_server(home: Path, port: int) -> tuple[subprocess.Popen, str]:
    """`agent serve` on 127.0.0.1:port with a fresh chat key; waits until /readyz says ready."""
    import httpx

    env = {**os.environ, "AGENT_HOME": str(home)}
    key = subprocess.run(["agent", "keys", "create", f"bench-{port}", "--scope", "admin"], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen(["agent", "--device", "cpu", "serve", "--port", str(port), "--rate", "100000/second"], env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return server, key
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.kill()
    sys.exit("the server did not become ready in 300 s")


async def load(port: int, key: str, messages: list[str], clients: int) -> tuple[list[float], int, float]:
    """Send every message, `clients` at a time; latencies (ms), how many answered 200, and the wall time."""
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for i, text in enumerate(messages):
        queue.put_nowait((i, text))
    latencies: list[float] = []
    ok = 0

    async def client(n: int) -> None:
        nonlocal ok
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
                                     timeout=120) as http:
            while not queue.empty():
                i, text = queue.get_nowait()
                start = time.perf_counter()
                r = await http.post(f"/v1/conversations/bench-{clients}-{n}-{i % 50}/messages", json={"text": text})
                latencies.append((time.perf_counter() - start) * 1000)
                ok += r.status_code == 200

    start = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, ok, time.perf_counter() - start


def raw_encoder(messages: list[str]) -> float:
    """Messages per second of the packaged encoder on batches of 64, in this process."""
    from agent.encoder import shared_encoder

    encoder = shared_encoder("cpu")
    encoder.encode(messages[:64])
    start = time.perf_counter()
    for i in range(0, len(messages), 64):
        encoder.encode(messages[i:i + 64])
    return len(messages) / (time.perf_counter() - start)


def in_process_p50(home: Path, messages: list[str]) -> float:
    """`Agent.reply` p50 (ms) in this process, on the same home."""
    from agent.core import Agent
    from agent.settings import Settings

    agent = Agent(Settings(home=home), device="cpu")
    for m in messages[:20]:
        agent.reply(m)
    times = []
    for m in messages:
        start = time.perf_counter()
        agent.reply(m)
        times.append((time.perf_counter() - start) * 1000)
    agent.store.close()
    return statistics.median(times)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level")
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    if not DATA.is_dir() and not DATA.is_file():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/banking77 beside the project")
    with open(DATA, newline="", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    messages = (texts * (args.requests // len(texts) + 1))[: args.requests]
    work = args.work or Path(tempfile.mkdtemp(prefix="agent-bench-serve-"))
    shutil.rmtree(work / "home", ignore_errors=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, key = start_server(work / "home", port)
    try:
        print(f"raw encoder, batches of 64: {raw_encoder(messages):.0f} messages/s")
        print("| clients | requests | answered 200 | throughput /s | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
        answered = 0
        for clients in (int(c) for c in args.clients.split(",")):
            latencies, ok, wall = asyncio.run(load(port, key, messages, clients))
            answered += ok
            print(f"| {clients} | {len(messages):,} | {ok:,} | {len(messages) / wall:.0f} | {percentile(latencies, 50):.1f} | "
                  f"{percentile(latencies, 99):.1f} |", flush=True)
        print(f"server peak RSS: {peak_rss_mb(server.pid):.0f} MB")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    db = sqlite3.connect(work / "home" / "agent.db")
    stored = db.execute("SELECT count(*) FROM turns WHERE conversation_id LIKE 'bench-%'").fetchone()[0]
    check = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    print(f"answered 200: {answered:,}; turns stored: {stored:,}; integrity_check: {check}")
    print(f"Agent.reply in process p50: {in_process_p50(work / 'home', messages[:300]):.1f} ms")


if __name__ == "__main__":
    main()
