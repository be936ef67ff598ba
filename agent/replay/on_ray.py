"""`--engine ray`: the same per-batch function on Ray Data actors, each holding one Agent.

The batches are written to a JSONL file in the home's tmp/ folder and read back by Ray Data, so
the input is streamed and never held whole in memory. On a cluster (`--address`), every node
needs this package, the plugin folders and the home at the same paths (a shared file system).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from agent.errors import AgentError
from agent.replay.engine import Batch, replay_batch

if TYPE_CHECKING:
    from agent.reply.agent import Agent

ENV_KEYS = ("AGENT_HOME", "AGENT_PLUGINS_PATH", "AGENT_LOAD_PLUGINS", "AGENT_MAX_CHARS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class BatchWorker:
    """A Ray Data actor: builds one Agent, then answers one batch per call."""

    def __init__(self, home: str, plugin_paths: list[str] | None, device: str, prefix: str, log: bool, threads: int) -> None:
        import torch

        from agent.reply.agent import Agent
        from agent.settings import Settings

        torch.set_num_threads(max(1, threads))
        paths = [Path(p) for p in plugin_paths] if plugin_paths is not None else None
        self.agent = Agent(Settings(home=Path(home), plugin_paths=paths), device=device)
        self.prefix, self.log = prefix, log

    def __call__(self, rows: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        out = []
        for line in rows["text"]:
            batch = Batch.from_dict(json.loads(line))
            out.append(json.dumps(replay_batch(self.agent, batch, self.prefix, self.log), ensure_ascii=False))
        return {"results": np.array(out, dtype=object)}


def sweep_spools(folder: Path) -> list[str]:
    """Remove the spools of replays whose process was killed (they hold the messages as given); return their names."""
    from agent.models.retrieval import pid_alive

    removed = []
    for p in folder.glob("replay-*-*.jsonl"):
        pid = p.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def run_on_ray(agent: "Agent", stream: Iterator[Batch], prefix: str, log: bool, address: str | None,
               workers: int) -> Iterator[list[dict[str, Any]]]:
    """Outcomes of each batch, in input order, computed by `workers` Ray actors."""
    ray = _import_ray()
    spool = _spool_dir(agent.settings.home, address) / f"replay-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
    spool.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the messages as typed: this user's eyes only
    sweep_spools(spool.parent)
    try:
        with open(spool, "w", encoding="utf-8") as fh:
            for batch in stream:
                fh.write(json.dumps(batch.to_dict(), ensure_ascii=False) + "\n")
        if not spool.stat().st_size:
            return
        _init(ray, address)
        yield from _results(ray, agent, spool, prefix, log, workers)
    finally:
        spool.unlink(missing_ok=True)


SHM_FREE = 1 << 30  # memory-backed space a spool may use without crowding Ray's own object store


def _spool_dir(home: Path, address: str | None) -> Path:
    """Where the messages (as typed) wait for the workers: in memory (/dev/shm) on this machine, so they never reach a
    disk; in the home's tmp/ only when a cluster at `address` must read them."""
    shm = Path("/dev/shm")
    if address is None and shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > SHM_FREE:
        return shm / f"agent-replay-{os.getuid()}"
    return home / "tmp"


def _import_ray() -> Any:
    """Ray, or a clear message on how to get it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise AgentError("--engine ray needs Ray Data: pip install 'ray[data]' (or, in a checkout, pip install -e '.[ray]')") from exc
    return ray


def _init(ray: Any, address: str | None) -> None:
    """Start (or join) Ray once per process, passing this process's agent settings to the workers."""
    if ray.is_initialized():
        return
    env = {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False, "logging_level": "ERROR"}
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(num_cpus=os.cpu_count() or 1, include_dashboard=False)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise AgentError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from exc


def _results(ray: Any, agent: "Agent", spool: Path, prefix: str, log: bool, workers: int) -> Iterator[list[dict[str, Any]]]:
    """Read the spooled batches with Ray Data and map them through the workers, order kept."""
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    total = int(ray.cluster_resources().get("CPU", 1))
    if workers > total:
        raise AgentError(f"--workers {workers} is more than the {total} CPUs Ray has; use --workers {total} or fewer")
    cpus = max(1, total // workers)
    settings = agent.settings
    args = {"home": str(settings.home), "device": agent.device, "prefix": prefix, "log": log, "threads": cpus,
            "plugin_paths": [str(p) for p in settings.plugin_paths] if settings.plugin_paths is not None else None}
    ds = ray.data.read_text(str(spool), num_cpus=0).map_batches(  # reading needs no CPU slot
        BatchWorker, fn_constructor_kwargs=args, batch_size=1, concurrency=workers, num_cpus=cpus)
    try:
        for row in ds.iter_rows():
            yield json.loads(row["results"])
    except ray.exceptions.RayError as exc:
        raise AgentError(f"a Ray worker failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
