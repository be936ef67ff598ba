"""What a replay found: accuracy against expectations, turns that changed against the log, speed."""

from __future__ import annotations

from collections import Counter
from typing import Any

from agent.memory import peak_rss_mb
from agent.replay.inputs import BadLine
from agent.text import guard

LOGGED = {"plugin": "plugin", "label": "label", "fallback": "fallback_reason"}  # compared field -> key in a logged turn


class Report:
    """Accumulates replayed turns batch by batch; only counts and the differing turns are kept."""

    def __init__(self, source: str, engine: str, dry_run: bool) -> None:
        self.source, self.engine, self.dry_run = source, engine, dry_run
        self.turns = 0
        self.conversations: set[str] = set()
        self.latencies: list[float] = []
        self.batch_ms: list[float] = []
        self.got: Counter[tuple[str, str]] = Counter()
        self.fallbacks = 0
        self.by_label: dict[tuple[str, str], list[int]] = {}  # (plugin, expected label) -> [turns, right]
        self.expected = self.passed = self.compared = 0
        self.mismatches: list[dict[str, Any]] = []
        self.changed: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.bad_lines: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.run_id: int | None = None

    # ---- accumulate -------------------------------------------------------------------------
    def add_bad(self, bad: BadLine) -> None:
        """A line that could not be read."""
        self.bad_lines.append({"line": bad.line, "reason": bad.reason})

    def add_batch(self, results: list[dict[str, Any]]) -> None:
        """The outcomes of one batch, in input order."""
        if results:
            self.batch_ms.append(results[0]["batch_ms"])
        for r in results:
            self.turns += 1
            self.conversations.add(r["conversation"])
            if r["error"]:
                self.errors.append({"line": r["line"], "conversation": r["conversation"], "error": r["error"]})
                continue
            if r["latency_ms"] is not None:  # a bare '/use NAME' is not timed
                self.latencies.append(r["latency_ms"])
            self.got[(r["plugin"] or "", r["label"] or "")] += 1
            self.fallbacks += r["fallback_reason"] is not None
            if r["expect"]:
                self._check(r)
            if r["logged"] is not None:
                self._compare(r)

    def _check(self, r: dict[str, Any]) -> None:
        """Score a turn against what its script expects."""
        fields = {k: (want, _value(r, k)) for k, want in r["expect"].items()}
        wrong = {k: v for k, v in fields.items() if v[0] != v[1]}
        self.expected += 1
        self.passed += not wrong
        if "label" in r["expect"]:
            key = (r["expect"].get("plugin") or r["plugin"] or "", r["expect"]["label"])
            cell = self.by_label.setdefault(key, [0, 0])
            cell[0] += 1
            cell[1] += r["label"] == r["expect"]["label"]
        if wrong:
            self.mismatches.append(_diff(r, wrong))

    def _compare(self, r: dict[str, Any]) -> None:
        """Compare a turn with what the log recorded for it."""
        logged = r["logged"]
        self.compared += 1
        fields = {k: (_value(logged, k), _value(r, k)) for k, key in LOGGED.items() if key in logged}
        if logged.get("answer_id") is not None:  # turns logged before answer ids were kept have none
            fields["answer"] = (logged["answer_id"], r["answer_id"])
        if "reply" in logged:
            fields["reply"] = (guard.redact(logged["reply"] or "")[0], guard.redact(r["reply"] or "")[0])
        wrong = {k: v for k, v in fields.items() if v[0] != v[1]}
        if wrong:
            self.changed.append({**_diff(r, wrong), "logged_turn": logged.get("id")})

    # ---- results ----------------------------------------------------------------------------
    @property
    def accuracy(self) -> float | None:
        """Share of turns with expectations that met all of them."""
        return self.passed / self.expected if self.expected else None

    def summary(self) -> dict[str, Any]:
        """The headline figures."""
        return {
            "run": self.run_id, "source": self.source, "engine": self.engine, "dry_run": self.dry_run,
            "turns": self.turns, "conversations": len(self.conversations), "bad_lines": len(self.bad_lines),
            "errors": len(self.errors), "fallbacks": self.fallbacks,
            "expected": self.expected, "passed": self.passed, "accuracy": _round(self.accuracy),
            "compared": self.compared, "changed": len(self.changed),
            "seconds": round(self.seconds, 3), "turns_per_s": round(self.turns / self.seconds, 1) if self.seconds else None,
            "latency_ms": percentiles(self.latencies), "batch_ms": percentiles(self.batch_ms),
            "peak_rss_mb": peak_rss_mb(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            "summary": self.summary(), "by_label": self.label_rows(),
            "answered": [{"plugin": p, "label": lab, "turns": n} for (p, lab), n in self.got.most_common()],
            "mismatches": self.mismatches, "changed": self.changed, "errors": self.errors, "bad_lines": self.bad_lines,
        }

    def label_rows(self) -> list[dict[str, Any]]:
        """Accuracy per plugin and expected label, worst first."""
        rows = [{"plugin": p, "label": lab, "turns": n, "right": ok, "accuracy": round(ok / n, 4)}
                for (p, lab), (n, ok) in self.by_label.items()]
        return sorted(rows, key=lambda r: (r["accuracy"], r["plugin"], r["label"]))

    def plugin_rows(self) -> list[dict[str, Any]]:
        """Label accuracy per plugin."""
        totals: dict[str, list[int]] = {}
        for (p, _), (n, ok) in self.by_label.items():
            cell = totals.setdefault(p, [0, 0])
            cell[0] += n
            cell[1] += ok
        return [{"plugin": p, "turns": n, "right": ok, "accuracy": round(ok / n, 4)} for p, (n, ok) in sorted(totals.items())]


def _value(row: dict[str, Any], key: str) -> str | None:
    """A comparable field of an outcome or a logged turn."""
    if key == "fallback":
        return "true" if row.get("fallback_reason") else "false"
    if key == "answer":
        return row.get("answer_id")
    return row.get(key)


def _diff(r: dict[str, Any], wrong: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """A readable record of what differs on one turn: field -> [before/expected, now]."""
    return {"line": r["line"], "conversation": r["conversation"], "text": r["text"], "confidence": r["confidence"],
            "fallback_reason": r["fallback_reason"], "turn_id": r["turn_id"],
            "fields": {k: [a, b] for k, (a, b) in wrong.items()}}


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50, p95, p99 and max, or None with no values."""
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 3)}


def _round(value: float | None) -> float | None:
    """Four decimals, or None."""
    return None if value is None else round(value, 4)
