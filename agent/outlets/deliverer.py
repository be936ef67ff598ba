"""The deliverer: daemon threads that claim the deliveries due, send each, record every attempt and schedule the
retry. Any number of deliverers (processes) may share a database: a claimed delivery is leased, not taken twice."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from agent.errors import AgentError, InputError

if TYPE_CHECKING:
    import sqlite3

    from agent.outlets.send import Result
    from agent.store import Store

LEASE = 5.0  # seconds a claimed delivery stays claimed beyond the longest attempt (a crashed deliverer's are then retaken)
DUE = "state IN ('queued', 'sending') AND next_at <= ?"


@dataclass
class Policy:
    """When a failed delivery is tried again: after base seconds, doubling up to cap, for `tries` attempts in all."""

    base: float = 1.0  # seconds before the first retry (env AGENT_DELIVERY_BASE)
    cap: float = 300.0  # the longest wait between two attempts
    tries: int = 8  # attempts before a delivery is left failed, for the next deliverer (env AGENT_DELIVERY_TRIES)
    timeout: float = 5.0  # seconds one webhook request may take (env AGENT_DELIVERY_TIMEOUT)
    command_timeout: float = 30.0  # seconds one command may run

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failure."""
        return min(self.base * 2 ** (attempts - 1), self.cap)

    @classmethod
    def from_env(cls) -> "Policy":
        """The defaults, with AGENT_DELIVERY_BASE, AGENT_DELIVERY_TRIES and AGENT_DELIVERY_TIMEOUT where set."""
        return cls(base=_env("AGENT_DELIVERY_BASE", float, 1.0), tries=_env("AGENT_DELIVERY_TRIES", int, 8),
                   timeout=_env("AGENT_DELIVERY_TIMEOUT", float, 5.0))


def _env(name: str, kind: type, default: Any) -> Any:
    """A positive number from the environment, or the default when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise InputError(f"{name} must be a positive {'whole number' if kind is int else 'number'}, found {raw!r}; fix or unset it")
    return value


@dataclass
class Job:
    """A claimed delivery and where it goes."""

    id: int
    uid: str
    event: str
    body: str
    kind: str
    target: str
    secret: str | None
    secret_env: str | None
    source: str | None
    lease: float = 0.0  # when this claim ends: the token its outcome is recorded under (a later claim has another)


class Deliverer:
    """Sends what `publish` queued, on daemon threads with their own connection; `start()`, `drain()`, `stop()`."""

    def __init__(self, db_path: Path | str, policy: Policy | None = None, *, workers: int = 4, poll: float = 0.25,
                 notify: Callable[[str], None] | None = None) -> None:
        self.db_path, self.policy = Path(db_path), policy or Policy.from_env()
        self.workers, self.poll, self.notify = workers, poll, notify or _to_stderr
        self.store: "Store | None" = None
        self._wake, self._stop = threading.Event(), threading.Event()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._busy = 0  # deliveries claimed and not yet recorded
        self._threads: list[threading.Thread] = []

    def start(self) -> "Deliverer":
        """Open the database, give failed deliveries another try, and start the threads."""
        from agent.outlets.publish import listen
        from agent.store import Store

        self.store = Store(self.db_path)
        self.store.transaction(lambda conn: conn.execute("UPDATE deliveries SET state = 'queued', next_at = ? WHERE state = 'failed'",
                                                         (time.time(),)))
        listen(self._wake)
        self._threads = [threading.Thread(target=self._loop, name="outlets-claim", daemon=True)]
        self._threads += [threading.Thread(target=self._work, name=f"outlets-send-{i}", daemon=True) for i in range(self.workers)]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop claiming; wait up to `timeout` for attempts in flight (one that outlasts it is retaken after its lease)."""
        from agent.outlets.publish import unlisten

        unlisten(self._wake)
        self._stop.set()
        self._wake.set()
        for _ in range(self.workers):
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0))
        if not self.running and self.store is not None:
            self.store.close()
        return not self.running

    @property
    def in_flight(self) -> int:
        """Deliveries claimed and not yet recorded."""
        return self._busy

    @property
    def running(self) -> bool:
        """Whether one of its threads is still alive (claiming, or an attempt in flight)."""
        return any(t.is_alive() for t in self._threads)

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is being sent and nothing queued falls due within `timeout`; whether that came in time."""
        deadline, until = time.monotonic() + timeout, time.time() + timeout
        while True:
            with self._lock:  # claims and recorded attempts change the rows and the count together, under this lock
                if not self._busy and not self._due(until):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.02, self.poll))

    def _due(self, at: float) -> bool:
        """Whether some delivery is due by `at` (a read: no write lock is taken while idle)."""
        assert self.store is not None
        return bool(self.store.query(f"SELECT 1 FROM deliveries WHERE {DUE} LIMIT 1", [at]))

    def _loop(self) -> None:
        """Claim what is due while workers are free; sleep until woken (a publish, a finished attempt) or `poll` passes."""
        while not self._stop.is_set():
            self._wake.clear()
            free = self.workers - self._busy
            try:
                claimed = self._claim(free) if free > 0 and self._due(time.time()) else 0
            except AgentError as exc:  # the database is locked or gone: say so, and try again after a pause
                self.notify(f"could not read the deliveries ({exc}); trying again")
                claimed = 0
            if claimed < free or not free:
                self._wake.wait(self.poll)

    def _claim(self, n: int) -> int:
        """Lease up to n due deliveries to this deliverer and hand them to the workers; how many."""
        assert self.store is not None
        lease = max(self.policy.timeout, self.policy.command_timeout) + LEASE

        def write(conn: "sqlite3.Connection") -> list[Job]:
            now = time.time()
            rows = conn.execute(
                "SELECT d.id, d.uid, d.event, d.body, o.kind, o.target, o.secret, o.secret_env, o.source FROM deliveries d "
                "JOIN outlets o ON o.id = d.outlet_id WHERE d.state IN ('queued', 'sending') AND d.next_at <= ? "
                "ORDER BY d.next_at, d.id LIMIT ?",
                (now, n)).fetchall()
            conn.executemany("UPDATE deliveries SET state = 'sending', next_at = ? WHERE id = ?", [(now + lease, r[0]) for r in rows])
            return [Job(*r, lease=now + lease) for r in rows]

        with self._lock:  # claimed and counted at once, as drain() sees them
            jobs = self.store.transaction(write)
            self._busy += len(jobs)
        for job in jobs:
            self._jobs.put(job)
        return len(jobs)

    def _work(self) -> None:
        """Send claimed deliveries until stopped; each outcome is recorded."""
        while (job := self._jobs.get()) is not None:
            result = self._send(job)
            with self._lock:  # recorded and uncounted at once, as drain() sees them
                try:
                    self._record(job, result)
                except AgentError as exc:  # the attempt happened but could not be recorded: its lease ends, it is sent again
                    self.notify(f"delivery {job.id}: the attempt could not be recorded ({exc}); it will be sent again")
                finally:
                    self._busy -= 1
            self._wake.set()

    def _send(self, job: Job) -> "Result":
        """One attempt at one delivery."""
        from agent.outlets.send import Result, headers, post, run_command

        body = job.body.encode("utf-8")
        try:
            if job.kind == "command":
                env = {"AGENT_EVENT": job.event, "AGENT_DELIVERY": job.uid}
                return run_command(job.target, body, env, self.policy.command_timeout)
            secret = job.secret
            if job.secret_env:
                secret = os.environ.get(job.secret_env)
                if not secret:
                    return Result(False, None, f"{job.secret_env} (the secret_env of this webhook in {job.source}) is not set "
                                               "where the agent delivers; export it and restart agent serve or agent monitor")
            return post(job.target, body, headers(job.uid, job.event, body, secret), self.policy.timeout)
        except Exception as exc:  # noqa: BLE001 - a bug in one attempt is recorded as that attempt's failure, and retried
            return Result(False, None, f"unexpected error: {type(exc).__name__}: {exc}")

    def _record(self, job: Job, result: "Result") -> None:
        """Log the attempt and move the delivery on: delivered, rejected, failed (tries spent) or queued for a retry."""
        from agent.store import now

        assert self.store is not None

        def write(conn: "sqlite3.Connection") -> None:
            stamp = now()
            conn.execute("INSERT INTO delivery_attempts (delivery_id, at, ok, status, error, ms) VALUES (?, ?, ?, ?, ?, ?)",
                         (job.id, stamp, int(result.ok), result.status, result.error, result.ms))
            (attempts,) = conn.execute("SELECT attempts + 1 FROM deliveries WHERE id = ?", (job.id,)).fetchone()
            state, next_at = self._next(result, attempts)
            conn.execute("UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, delivered_at = ?, last_error = ? "
                         "WHERE id = ? AND state = 'sending' AND next_at = ?",  # cancelled meanwhile, or claimed again after
                         (state, attempts, next_at, stamp if result.ok else None, result.error, job.id, job.lease))  # its lease ended

        self.store.transaction(write)

    def _next(self, result: "Result", attempts: int) -> tuple[str, float | None]:
        """The delivery's state after this attempt, and when it is due again."""
        if result.ok:
            return "delivered", None
        if result.final:
            return "rejected", None
        if attempts >= self.policy.tries:
            return "failed", None
        return "queued", time.time() + self.policy.delay(attempts)


@contextmanager
def delivering(target: Any, **options: Any) -> Iterator[Deliverer]:
    """A Deliverer running for the block, on `target`'s database (Settings, or a database path)."""
    deliverer = Deliverer(getattr(target, "db_path", target), **options).start()
    try:
        yield deliverer
    finally:
        deliverer.stop(1.0)


def _to_stderr(message: str) -> None:
    """A deliverer's note on stderr."""
    print(f"… outlets: {message}", file=sys.stderr, flush=True)
