"""Prometheus metrics of one app (its own registry, so two apps in one process do not mix): requests and latency by
route, batch sizes, fallbacks by reason, turns by plugin."""

from __future__ import annotations

import time
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


class Timing:
    """ASGI middleware: each HTTP request counted and timed by route (plain ASGI: no task or stream per request)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request(route, scope["method"], status[0], time.perf_counter() - start)
