"""A plugin's own fine-tune policy (`[finetune]` in plugin.toml): when enough new labels wait, and not too often.

    [finetune]
    after_labels = 20     # new labelled turns (corrections, "good" ratings) since the plugin's last run
    min_hours = 24        # at most one run per this many hours
    mode = "shared"       # optional: shared, full, lora or head (default: the agent's choice)
    max_minutes = 30      # optional: the run's time limit

`agent finetune --due` runs every plugin whose policy is due (for cron); a running chat app checks after each
labelled turn and fine-tunes in the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.plugin.manifest import Manifest
    from agent.store import Store


@dataclass
class Due:
    """Whether a plugin's policy asks for a run now, and why (or why not)."""

    plugin: str
    due: bool
    reason: str
    new_labels: int = 0
    last_run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"plugin": self.plugin, "due": self.due, "reason": self.reason, "new_labels": self.new_labels,
                "last_run": self.last_run}


def new_labels(store: "Store", plugin: str, since: str | None) -> int:
    """Turns of a plugin labelled after `since` (all when None): a correction, or a "good" rating of an answer
    (a rated fallback teaches nothing)."""
    sql = ("SELECT COUNT(DISTINCT f.turn_id) AS n FROM feedback f JOIN turns t ON t.id = f.turn_id "
           "WHERE t.plugin = ? AND t.picked_from IS NULL "
           "AND (f.kind = 'label' OR (f.kind = 'good' AND t.fallback_reason IS NULL))")
    args: list[Any] = [plugin]
    if since is not None:
        sql += " AND f.created_at > ?"
        args.append(since)
    return int(store.query(sql, args)[0]["n"])


def check(manifest: "Manifest", store: "Store", now: datetime | None = None, own_model: bool = False) -> Due:
    """Whether the plugin's policy is due: enough new labels since its last run, and that run long enough ago.
    `own_model`: the plugin's kind trains a model of its own (a contributed fine-tuner), not from labels."""
    policy = manifest.finetune
    if policy is None:
        return Due(manifest.name, False, "no [finetune] policy in its plugin.toml")
    if own_model:
        return Due(manifest.name, False, "its kind trains a model of its own, not from labels; run agent finetune "
                   f"{manifest.name} when you choose")
    runs = store.finetune_runs(manifest.name, limit=1)  # any attempt: a failed or cancelled one waits too
    last = runs[0]["started_at"] if runs else None
    count = new_labels(store, manifest.name, last)
    if count < policy.after_labels:
        return Due(manifest.name, False, f"{count} of {policy.after_labels} new labelled turns", count, last)
    if last is not None:
        wait = _parse(last) + timedelta(hours=policy.min_hours) - (now or datetime.now(timezone.utc))
        if wait > timedelta(0):
            return Due(manifest.name, False, f"{count} new labelled turns, but the last run was less than "
                       f"{policy.min_hours:g} h ago (due in {_hours(wait)})", count, last)
    return Due(manifest.name, True, f"{count} new labelled turns (policy: {policy.after_labels})", count, last)


def record_failure(store: "Store", plugin: str, started: str, exc: BaseException) -> None:
    """A policy run that failed or was cancelled still counts as the plugin's last run (no retry at every label)."""
    from agent.learn.trainer import Cancelled
    from agent.store import now

    status = "cancelled" if isinstance(exc, (Cancelled, KeyboardInterrupt)) else "failed"
    store.log_finetune_run({"plugin": plugin, "started_at": started, "finished_at": now(), "status": status,
                            "trigger": "policy", "report": str(exc)[:500]})


def options_for(policy: Any, base: dict[str, Any]) -> dict[str, Any]:
    """A run's options: the policy's mode and time limit unless given on the command line."""
    out = dict(base)
    if policy is not None:
        out["mode"] = out.get("mode") or policy.mode
        out["max_minutes"] = out.get("max_minutes") or policy.max_minutes
    return out


def _parse(stamp: str) -> datetime:
    """An ISO 8601 timestamp as stored, timezone-aware."""
    value = datetime.fromisoformat(stamp)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _hours(delta: timedelta) -> str:
    """A wait in hours and minutes."""
    minutes = int(delta.total_seconds() // 60) + 1
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
