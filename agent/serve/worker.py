"""One inference thread owns the Agent. Messages that wait together are answered together (one `Agent.replies`
call, one encoder pass), in the order they arrived, so each conversation's turns keep their order; other work on
the agent (feedback, reads, fine-tune jobs' swaps) runs on the same thread between batches."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from agent.reply.agent import Agent, Message

_STOP = object()


@dataclass
class _Ask:
    """A message waiting for its reply."""

    message: "Message"
    future: Future


@dataclass
class _Call:
    """Other work on the agent, run between batches."""

    fn: Callable[["Agent"], Any]
    future: Future


class Worker:
    """The thread that owns the Agent, with its queue."""

    def __init__(self, agent: "Agent", wait_ms: float = 5.0, max_batch: int = 64,
                 on_batch: Callable[[list[Any]], None] | None = None) -> None:
        self.agent, self.wait, self.max_batch, self.on_batch = agent, wait_ms / 1000, max_batch, on_batch
        self.queue: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self.waiting, self._count = 0, threading.Lock()  # messages asked and not yet answered
        self._thread = threading.Thread(target=self._loop, name="agent-inference", daemon=True)

    def start(self) -> None:
        """Start the thread; it loads every plugin's models, then answers."""
        self._thread.start()

    def ask(self, message: "Message") -> Future:
        """A future of the Reply (or the AgentError) to `message`."""
        future: Future = Future()
        with self._count:
            self.waiting += 1
        future.add_done_callback(self._answered)
        self.queue.put(_Ask(message, future))
        return future

    def _answered(self, _: Future) -> None:
        """One message fewer waits for its reply."""
        with self._count:
            self.waiting -= 1

    def call(self, fn: Callable[["Agent"], Any]) -> Future:
        """A future of `fn(agent)`, run on the inference thread."""
        future: Future = Future()
        self.queue.put(_Call(fn, future))
        return future

    def stop(self, timeout: float = 60.0) -> None:
        """Answer what is queued, then end the thread."""
        self.queue.put(_STOP)
        self._thread.join(timeout)

    def _loop(self) -> None:
        """Load, then take batches off the queue until told to stop."""
        try:
            _ = self.agent.runtimes, self.agent.observers, self.agent.encoder  # every plugin's models, before ready
        except BaseException as exc:  # noqa: BLE001  (reported by /readyz and to every request)
            self.failed = exc
        self.ready.set()
        while True:
            jobs, stopping = self._take()
            self._run(jobs)
            if stopping:
                return

    def _take(self) -> tuple[list[Any], bool]:
        """The next job, and the messages that arrive within the wait after it (up to the batch cap)."""
        job = self.queue.get()
        if job is _STOP:
            return [], True
        jobs, deadline = [job], time.monotonic() + self.wait
        while isinstance(job, _Ask) and len(jobs) < self.max_batch and (self.waiting > len(jobs) or not self.queue.empty()):
            try:
                job = self.queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _run(self, jobs: list[Any]) -> None:
        """Answer consecutive messages as one batch; run calls one by one, all in arrival order."""
        i = 0
        while i < len(jobs):
            if isinstance(job := jobs[i], _Call):
                self._settle([job.future], lambda job=job: [job.fn(self._agent())])
                i += 1
                continue
            asks = _run_of(jobs, i)
            self._settle([a.future for a in asks], lambda asks=asks: self._replies([a.message for a in asks]))
            i += len(asks)

    def _replies(self, messages: list["Message"]) -> list[Any]:
        """Replies to a batch of messages (an AgentError in place of a bad one)."""
        out = self._agent().replies(messages)
        if self.on_batch:
            self.on_batch(out)
        return out

    def _agent(self) -> "Agent":
        """The loaded agent; the load's own error when it failed."""
        if self.failed is not None:
            raise self.failed
        return self.agent

    @staticmethod
    def _settle(futures: list[Future], compute: Callable[[], list[Any]]) -> None:
        """Give each future its result, or every future the exception."""
        try:
            results = compute()
        except BaseException as exc:  # noqa: BLE001  (the requests get it; the thread goes on)
            for f in futures:
                f.set_exception(exc)
            return
        for f, r in zip(futures, results):
            f.set_result(r)


def _run_of(jobs: list[Any], start: int) -> list[_Ask]:
    """The messages from `start` up to the next call."""
    out = []
    for job in jobs[start:]:
        if not isinstance(job, _Ask):
            break
        out.append(job)
    return out
