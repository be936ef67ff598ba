"""Fine-tune runs started over HTTP: one at a time, each on a thread of its own with its own model copy (as the chat
app runs them), so chat goes on; a promoted version reaches the inference thread at its next batch (Agent.refresh)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.serve.security import ApiError

if TYPE_CHECKING:
    from agent.settings import Settings


@dataclass
class Run:
    """One fine-tune job as `GET /v1/jobs/{id}` shows it."""

    id: str
    plugin: str
    mode: str | None
    state: str = "queued"  # queued, running, done, failed
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class Jobs:
    """The server's fine-tune jobs."""

    def __init__(self, settings: "Settings", device: str) -> None:
        self.settings, self.device = settings, device
        self.runs: dict[str, Run] = {}
        self._lock = threading.Lock()
        self._busy: Run | None = None

    def start(self, plugin: str, folder: Path, mode: str | None, epochs: float | None) -> Run:
        """Queue a fine-tune of `plugin` and start it; refused (409) while another runs."""
        with self._lock:
            if self._busy is not None:
                raise ApiError(409, f"{self._busy.plugin} is being fine-tuned (job {self._busy.id}); wait for it: GET /v1/jobs/{self._busy.id}")
            run = self._busy = Run(uuid.uuid4().hex[:12], plugin, mode)
            self.runs[run.id] = run
        threading.Thread(target=self._run, args=(run, folder, epochs), name=f"finetune-{plugin}", daemon=True).start()
        return run

    def get(self, job_id: str) -> Run:
        """A job by id (404 when unknown)."""
        if job_id not in self.runs:
            raise ApiError(404, f"no job '{job_id}' in this server (jobs are kept while it runs)")
        return self.runs[job_id]

    def _run(self, run: Run, folder: Path, epochs: float | None) -> None:
        """The fine-tune itself; its outcome lands on the Run."""
        from agent.learn.finetune import Options, finetune
        from agent.store import now

        run.state, run.started_at = "running", now()

        def progress(p: Any) -> None:
            run.progress = {"phase": p.phase, "step": p.step, "total": p.total, "loss": p.loss, "device": p.device}

        try:
            result = finetune(folder, self.settings, Options(mode=run.mode, epochs=epochs, device=self.device), progress=progress)
            run.result = {"status": result.status, "version": result.version, "seconds": round(result.seconds, 1),
                          "plan": result.plan, "evaluation": result.report.get("evaluation")}
            run.state = "done"
        except Exception as exc:  # noqa: BLE001  (a failed run is reported on its job; the current model stays)
            run.state, run.error = "failed", str(exc) or type(exc).__name__
        finally:
            run.finished_at = now()
            with self._lock:
                self._busy = None

    @staticmethod
    def view(run: Run) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(run)
