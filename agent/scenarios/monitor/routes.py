"""The monitor's HTTP routes (through `register_routes`): push feed items as they arrive, read the trends report
and the alerts. Items are checked exactly as `agent monitor FILE` checks a feed's lines."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from agent.serve.routes import on_agent
from agent.serve.schemas import NAME_PATTERN
from agent.serve.security import ApiError, Caller, require

router = APIRouter(tags=["monitor"])
MonitorKey = Annotated[Caller, Depends(require("monitor"))]
MAX_ITEMS = 10_000


class ItemsIn(BaseModel):
    """Feed items to score: each `{"text", "timestamp"?, "topic"?, "source"?}`, as one line of a JSONL feed."""

    model_config = ConfigDict(extra="forbid")
    plugin: str | None = Field(None, pattern=NAME_PATTERN, description="The monitoring plugin (default: the one with [monitor]).")
    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ITEMS, description="The items, in time order.")


@router.post("/v1/monitor/items")
async def post_items(request: Request, body: ItemsIn, caller: MonitorKey) -> Any:
    """Score and store the items (a run of their own); the run's summary, its alerts, and each bad item with why."""
    return await on_agent(request, lambda agent: _score(agent, body))


def _score(agent: Any, body: ItemsIn) -> dict[str, Any]:
    """Parse the items as feed lines, then score, store and judge the good ones."""
    from agent.scenarios.monitor.config import OTHER
    from agent.scenarios.monitor.feed import BadLine, Parser
    from agent.scenarios.monitor.run import run_items

    runtime = _runtime(agent, body.plugin)
    topics = runtime.manifest.tables.get("topics") or {}
    parser = Parser("jsonl", "api", agent.settings.max_chars, {*topics, OTHER} if topics else None)
    parsed = [parser.parse(n, json.dumps(item, ensure_ascii=False).encode()) for n, item in enumerate(body.items, 1)]
    bad = [p for p in parsed if isinstance(p, BadLine)]
    if len(bad) == len(parsed):
        raise ApiError(422, f"no item could be read: item {bad[0].line}: {bad[0].reason}")
    summary = run_items(runtime, agent.store, iter(p for p in parsed if p is not None), "api")
    return {"run": summary.to_dict(), "errors": [{"item": b.line, "error": b.reason} for b in bad]}


def _runtime(agent: Any, name: str | None) -> Any:
    """The monitoring plugin's loaded runtime (the server loaded every observer at start)."""
    from agent.scenarios.monitor.run import monitor_runtime

    ready = [rt for rt in agent.observers.values() if (rt.name == name if name else rt.manifest.tables.get("monitor") is not None)]
    return ready[0] if len(ready) == 1 else monitor_runtime(agent, name)


@router.get("/v1/monitor/report")
async def get_report(request: Request, caller: MonitorKey, plugin: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
                     run: int | None = None) -> Any:
    """Per-topic trends and the alerts of a run (the latest, or `run`), as `agent monitor --report --json`."""
    from agent.scenarios.monitor import report

    store = request.app.state.store
    row = report.run_row(store, plugin, run)
    return {"run": row, "topics": report.trends(store, row["id"]), "alerts": report.alerts(store, row["id"])}


@router.get("/v1/alerts")
async def get_alerts(request: Request, caller: MonitorKey, since: Annotated[str | None, Query(max_length=40)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Alerts raised after `since` (ISO 8601), oldest first."""
    store = request.app.state.store
    if not store.query("SELECT name FROM sqlite_master WHERE name = 'alerts'"):
        return {"alerts": []}
    rows = store.query("SELECT * FROM alerts WHERE raised_at > ? ORDER BY id LIMIT ?", [since or "", limit])
    return {"alerts": rows}
