"""`agent finetune` on a recommending plugin: the interest model (agent.scenarios.recommend.train), as a fine-tuner."""

from __future__ import annotations

import time
from typing import Any


def finetune(job: Any) -> Any:
    """Train the interest model from logged item feedback and the interactions file; a FinetuneResult."""
    from agent.learn.finetune import FinetuneResult
    from agent.models.home_encoder import home_encoder
    from agent.scenarios.recommend.train import finetune_interest

    o = job.options
    device = job.device()
    encoder = home_encoder(job.settings, device, base=job.get_encoder())  # the items as the turns see them
    rep = finetune_interest(job.manifest, job.settings.index_root, job.store, encoder, device, o.epochs, o.lr,
                            o.seed, o.force, o.max_minutes, job.progress, job.cancel, job.say, job.versions)
    rep = {**rep, "lines": summary(rep, job.manifest.name)}
    plan = {"mode": "interest", "device": device, "epochs": rep["epochs"]}
    return FinetuneResult(job.manifest.name, rep["version"], rep["status"], plan, rep, job.versions.path(rep["version"]),
                          round(time.perf_counter() - job.started, 1))


def summary(rep: dict[str, Any], plugin: str) -> list[str]:
    """The outcome of a run in a few rich-markup lines."""
    from rich.markup import escape

    held, run = rep["heldout"], rep["run"]
    color = "green" if rep["status"] == "promoted" else "yellow"
    return [f"[{color}]{escape(plugin)} interest {rep['version']}: {rep['status']}[/] — {escape(rep['decision'])}",
            f"{run['pairs']} training pairs, {run['steps']} steps on {run['device']}, {run['seconds']} s; "
            f"held out: {held['candidate']['users']} users",
            f"NDCG@10 / Recall@10: with the interest model {held['candidate']['ndcg@10']} / {held['candidate']['recall@10']}; "
            f"without {held['without_interest']['ndcg@10']} / {held['without_interest']['recall@10']}",
            "weights: " + ", ".join(f"{k} {v}" for k, v in rep["weights"].items())]
