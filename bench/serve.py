"""`agent serve` under load: a real server process on a loopback port, BANKING77 test messages from 1, 8 and 64
concurrent clients (real HTTP/1.1 keep-alive connections), against the raw batched encoder (`encode` on batches of
64) and in-process `Agent.reply`, measured in the same run; then: every 200 is a stored turn, and the database passes
its check. The clients are lean (asyncio streams, one request written and one response read per turn), so that on a
small machine the load generator takes little of the CPU the server needs.

`--soak N`: N requests at 64 clients with `POST /v1/plugins/customer_service/finetune` (mode head) sent when a
third of them are answered; the job must end promoted with no failed request, every 200 a stored turn.
`--kills K`: K times, the server is killed with SIGKILL under that load and started again; every turn answered 200
before the kill must be in the database.

Usage: python bench/serve.py [--requests 2000] [--clients 1,8,64] [--soak 10000] [--kills 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "banking77" / "test.csv"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    """A loopback port nobody holds now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_key(home: Path, scope: str = "admin") -> str:
    """A new key of one scope for the home."""
    env = {**os.environ, "AGENT_HOME": str(home)}
    return subprocess.run(["agent", "keys", "create", f"bench-{time.time_ns()}", "--scope", scope], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def start_server(home: Path, port: int) -> subprocess.Popen:
    """`agent serve` on 127.0.0.1:port; waits until /readyz says ready."""
    import httpx

    env = {**os.environ, "AGENT_HOME": str(home)}
    server = subprocess.Popen(["agent", "--device", "cpu", "serve", "--port", str(port), "--rate", "100000/second"], env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.kill()
    sys.exit("the server did not become ready in 300 s")


class Connection:
    """One keep-alive HTTP/1.1 connection that posts JSON and reads the status and body back."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        """POST a JSON body; (status, response body). Opens the connection on first use."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")  # type: ignore[union-attr]
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        return int(head[9:12]), await self.reader.readexactly(length)  # type: ignore[union-attr]

    def close(self) -> None:
        """Close the socket."""
        if self.writer is not None:
            self.writer.close()


@dataclass
class Load:
    """What one load run saw."""

    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    failed: list[str] = field(default_factory=list)  # status or error of every request not answered 200
    turn_ids: list[int] = field(default_factory=list)  # the turns answered 200
    wall: float = 0.0


async def load(port: int, key: str, messages: list[str], clients: int, tag: str = "bench",
               when_done: tuple[int, Callable[[], Any]] | None = None) -> Load:
    """Send every message, `clients` at a time, each client its own connection; `when_done` (n, fn): call fn once
    n requests are answered."""
    queue: asyncio.Queue = asyncio.Queue()
    for i, text in enumerate(messages):
        queue.put_nowait((i, text))
    out = Load()

    async def client(n: int) -> None:
        conn = Connection(port, key)
        try:
            while not queue.empty():
                i, text = queue.get_nowait()
                start = time.perf_counter()
                try:
                    status, body = await conn.post(f"/v1/conversations/{tag}-{clients}-{n}-{i % 50}/messages", {"text": text})
                except (OSError, asyncio.IncompleteReadError) as exc:
                    out.failed.append(type(exc).__name__)
                    conn.close()
                    conn = Connection(port, key)
                    continue
                out.latencies.append((time.perf_counter() - start) * 1000)
                if status == 200:
                    out.ok += 1
                    out.turn_ids.append(json.loads(body)["turn_id"])
                else:
                    out.failed.append(str(status))
                if when_done and out.ok + len(out.failed) == when_done[0]:
                    await asyncio.get_running_loop().run_in_executor(None, when_done[1])
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    out.wall = time.perf_counter() - start
    return out


def raw_encoder(messages: list[str]) -> float:
    """Messages per second of the packaged encoder on batches of 64, in this process."""
    from agent.models.encoder import shared_encoder

    encoder = shared_encoder("cpu")
    encoder.encode(messages[:64])
    start = time.perf_counter()
    for i in range(0, len(messages), 64):
        encoder.encode(messages[i:i + 64])
    return len(messages) / (time.perf_counter() - start)


def in_process_p50(home: Path, messages: list[str]) -> float:
    """`Agent.reply` p50 (ms) in this process, on the same home."""
    from agent.reply.agent import Agent
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


def stored(home: Path, ids: list[int] | None = None) -> tuple[int, int, str]:
    """Turns stored by the benchmark's clients, how many of `ids` are missing, and the integrity check."""
    db = sqlite3.connect(home / "agent.db")
    try:
        count = db.execute("SELECT count(*) FROM turns WHERE conversation_id GLOB 'bench*'").fetchone()[0]
        have = {r[0] for r in db.execute("SELECT id FROM turns")} if ids else set()
        return count, len(set(ids or []) - have), db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def levels(home: Path, messages: list[str], clients: list[int]) -> None:
    """Throughput and latency at each number of clients, against the raw encoder and Agent.reply in process."""
    key, port = create_key(home), free_port()
    server = start_server(home, port)
    answered = 0
    try:
        print(f"raw encoder, batches of 64: {raw_encoder(messages):.0f} messages/s")
        print("| clients | requests | answered 200 | throughput /s | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
        for n in clients:
            run = asyncio.run(load(port, key, messages, n))
            answered += run.ok
            print(f"| {n} | {len(messages):,} | {run.ok:,} | {len(messages) / run.wall:.0f} | "
                  f"{percentile(run.latencies, 50):.1f} | {percentile(run.latencies, 99):.1f} |", flush=True)
        print(f"server peak RSS: {peak_rss_mb(server.pid):.0f} MB")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    count, _, check = stored(home)
    print(f"answered 200: {answered:,}; turns stored: {count:,}; integrity_check: {check}")
    print(f"Agent.reply in process p50: {in_process_p50(home, messages[:300]):.1f} ms")


def soak(home: Path, messages: list[str], n: int) -> None:
    """n requests at 64 clients, a head fine-tune of customer_service promoted while they run."""
    import httpx

    before, _, _ = stored(home)
    key, port = create_key(home), free_port()
    server = start_server(home, port)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
    job: dict[str, Any] = {}

    def start_finetune() -> None:
        r = httpx.post(f"{base}/v1/plugins/customer_service/finetune", json={"mode": "head"}, headers=auth, timeout=30)
        job.update(r.json(), posted_at=time.perf_counter())

    try:
        msgs = (messages * (n // len(messages) + 1))[:n]
        run = asyncio.run(load(port, key, msgs, 64, "bench-soak", (n // 3, start_finetune)))
        while (state := httpx.get(f"{base}/v1/jobs/{job['id']}", headers=auth, timeout=30).json())["state"] in ("queued", "running"):
            time.sleep(1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    count, _, check = stored(home)
    print(f"soak: {n:,} requests at 64 clients in {run.wall:.0f} s ({n / run.wall:.0f}/s), p50 {percentile(run.latencies, 50):.1f} ms, "
          f"p99 {percentile(run.latencies, 99):.1f} ms; failed {len(run.failed)} {sorted(set(run.failed))}; "
          f"answered 200: {run.ok:,}; turns stored: {count - before:,}; integrity_check: {check}")
    print(f"fine-tune job: {state['state']}, status {(state.get('result') or {}).get('status')}, "
          f"version {(state.get('result') or {}).get('version')}, {(state.get('result') or {}).get('seconds')} s, error {state['error']}")


def _load_into(box: dict[str, Load], port: int, key: str, messages: list[str], tag: str) -> None:
    """load() at 64 clients on this thread, its result left in box['run']."""
    box["run"] = asyncio.run(load(port, key, messages, 64, tag))


def kills(home: Path, messages: list[str], rounds: int) -> None:
    """SIGKILL under load, `rounds` times; after each restart, every turn answered 200 before the kill is stored."""
    import random
    import threading

    key, rng, pending = create_key(home), random.Random(0), []
    for k in range(rounds + 1):
        port = free_port()
        server = start_server(home, port)
        _, missing, check = stored(home, pending)
        if k:
            print(f"kill {k}: {len(pending):,} turns answered 200 before SIGKILL, {missing} missing after the restart; "
                  f"integrity_check: {check}", flush=True)
        if k == rounds:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
            return
        box: dict[str, Load] = {}
        worker = threading.Thread(target=_load_into, args=(box, port, key, messages, f"bench-kill{k}"))
        worker.start()
        time.sleep(rng.uniform(3, 8))
        server.send_signal(signal.SIGKILL)
        server.wait(60)
        worker.join()
        pending = box["run"].turn_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level")
    parser.add_argument("--clients", default="1,8,64", help="concurrency levels (none: skip this part)")
    parser.add_argument("--soak", type=int, default=0, help="requests at 64 clients with a fine-tune promoted midway")
    parser.add_argument("--kills", type=int, default=0, help="rounds of SIGKILL under load")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/banking77 beside the project")
    with open(DATA, newline="", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    messages = (texts * (args.requests // len(texts) + 1))[: args.requests]
    work = args.work or Path(tempfile.mkdtemp(prefix="agent-bench-serve-"))
    shutil.rmtree(work / "home", ignore_errors=True)
    home = work / "home"
    if args.clients not in ("", "none"):
        levels(home, messages, [int(c) for c in args.clients.split(",")])
    if args.soak:
        soak(home, texts, args.soak)
    if args.kills:
        kills(home, messages, args.kills)


if __name__ == "__main__":
    main()
