"""Run a replay end to end: read, batch, answer (here or on Ray), report, record the run."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from agent.replay.engine import DEFAULT_BATCH, Batch, batches, replay_batch
from agent.replay.inputs import BadLine, ReplayTurn, detect_format, read_entries
from agent.replay.report import Report

if TYPE_CHECKING:
    from agent.reply.agent import Agent


@dataclass
class ReplayOptions:
    """How to replay: input, engine, batch size, whether to log, where to write results."""

    source: str
    fmt: str | None = None
    dry_run: bool = False
    batch_size: int = DEFAULT_BATCH
    engine: str = "local"
    address: str | None = None
    workers: int = 1
    results: str | None = None  # JSONL of every replayed turn (replayable later as the reference)


def replay(agent: "Agent", opts: ReplayOptions, progress: Callable[[int], None] | None = None) -> Report:
    """Replay a file through the agent; the run is recorded in the database whatever happens."""
    fmt = detect_format(opts.source, opts.fmt)
    entries = read_entries(opts.source, fmt)
    report = Report(opts.source, opts.engine, opts.dry_run)
    report.run_id = agent.store.start_replay_run(str(opts.source), opts.engine, opts.dry_run)
    prefix = f"replay{report.run_id}:"
    status, start = "interrupted", time.perf_counter()
    try:
        if opts.engine == "local":
            _ = agent.runtimes, agent.observers, agent.encoder  # load models and indexes before the clock starts
            start = time.perf_counter()
        stream = batches(_turns(entries, report), opts.batch_size, agent.responder_names())
        with _results_file(opts.results) as sink:
            for results in _engine(agent, opts, stream, prefix):
                report.add_batch(results)
                sink(results)
                if progress and results:
                    progress(results[-1]["line"])
        status = "done"
    except Exception as exc:
        status = f"failed: {exc}"
        raise
    finally:
        report.seconds = time.perf_counter() - start
        agent.store.finish_replay_run(report.run_id, status, report.summary())
    return report


def _turns(entries: Iterable[ReplayTurn | BadLine], report: Report) -> Iterator[ReplayTurn]:
    """The good turns; bad lines go to the report."""
    for entry in entries:
        if isinstance(entry, BadLine):
            report.add_bad(entry)
        else:
            yield entry


def _engine(agent: "Agent", opts: ReplayOptions, stream: Iterator[Batch], prefix: str) -> Iterator[list[dict[str, Any]]]:
    """Each batch's outcomes, in order, from the chosen engine."""
    if opts.engine == "ray":
        from agent.replay.on_ray import run_on_ray

        yield from run_on_ray(agent, stream, prefix, not opts.dry_run, opts.address, opts.workers)
        return
    for batch in stream:
        yield replay_batch(agent, batch, prefix, not opts.dry_run)


class _results_file:
    """A context manager giving a sink that writes outcomes as JSON lines (or drops them)."""

    def __init__(self, path: str | None) -> None:
        self.path, self.fh = path, None

    def __enter__(self) -> Callable[[list[dict[str, Any]]], None]:
        if self.path:
            self.fh = open(self.path, "w", encoding="utf-8")
        return self.write

    def write(self, results: list[dict[str, Any]]) -> None:
        """One line per turn, in the shape of `agent logs export` so it can be replayed as the reference."""
        if self.fh is None:
            return
        for r in results:
            if not r["error"]:
                self.fh.write(json.dumps(result_line(r), ensure_ascii=False) + "\n")

    def __exit__(self, *exc: Any) -> None:
        if self.fh is not None:
            self.fh.close()


def result_line(r: dict[str, Any]) -> dict[str, Any]:
    """A replayed turn as a logged turn: conversation, text, reply, plugin, label, answer and expectations."""
    return {"conversation_id": r["conversation"], "id": r["turn_id"], "text": r["text"], "reply": r["reply"],
            "plugin": r["plugin"], "label": r["label"], "confidence": r["confidence"], "answer_id": r["answer_id"],
            "fallback_reason": r["fallback_reason"], "line": r["line"], "expect": r["expect"]}


def count_lines(path: str) -> int | None:
    """Lines in a file (for the progress bar), or None for stdin."""
    if path == "-":
        return None
    n = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return n or 1


def gates(report: Report, fail_under: float | None, max_changed: int | None) -> list[str]:
    """Why the run fails its CI gates ([] when it passes)."""
    failures = []
    if fail_under is not None:
        if report.accuracy is None:
            failures.append(f"--fail-under {fail_under}: no turn in {report.source} has an expectation "
                            "(add expect: {plugin, label, answer, fallback} to script turns, or label feedback to the log)")
        elif report.accuracy < fail_under:
            failures.append(f"accuracy {report.accuracy:.3f} < --fail-under {fail_under:.3f} "
                            f"({report.expected - report.passed} of {report.expected} expected turns wrong)")
    if max_changed is not None:
        if not report.compared:
            failures.append(f"--max-changed {max_changed}: no turn in {report.source} carries a logged reply to "
                            "compare with (replay an `agent logs export` or a --results file)")
        elif len(report.changed) > max_changed:
            failures.append(f"{len(report.changed)} turns changed > --max-changed {max_changed} "
                            f"(of {report.compared} compared)")
    return failures
