"""Prometheus metrics of one app (its own registry, so two apps in one process do not mix): requests and latency by
route, batch sizes, fallbacks by reason, turns by plugin."""

from __future__ import annotations

from typing import Any


class Metrics:
    """The app's counters and histograms."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("agent_requests", "HTTP requests by route, method and status", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("agent_request_seconds", "HTTP request latency by route", ["route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.batches = Histogram("agent_batch_size", "Messages answered in one encoder pass", registry=self.registry,
                                 buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.turns = Counter("agent_turns", "Turns answered, by plugin", ["plugin"], registry=self.registry)
        self.fallbacks = Counter("agent_fallbacks", "Turns the agent did not guess, by reason", ["reason"], registry=self.registry)

    def batch(self, replies: list[Any]) -> None:
        """Count a batch the inference thread answered."""
        self.batches.observe(len(replies))
        for r in replies:
            if hasattr(r, "plugin"):
                self.turns.labels(r.plugin or "-").inc()
                if r.fallback_reason:
                    self.fallbacks.labels(r.fallback_reason.split()[0]).inc()

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def text(self) -> tuple[bytes, str]:
        """The exposition format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
