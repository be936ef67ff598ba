"""`agent finetune` on a recommending plugin (agent.scenarios.recommend.train), as a fine-tuner."""

from __future__ import annotations

import time
from typing import Any


def finetune(job: Any) -> Any:
    """Learn the collaborative term (and the interest encoder when asked) from the interactions file and logged item
    feedback; a FinetuneResult."""
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

    held, run, collab = rep["heldout"], rep["run"], rep.get("collab")
    color = "green" if rep["status"] == "promoted" else "yellow"
    learned = [f"collaborative term (EASE λ {collab['lambda']:g}, a click counts {collab['click']:g}, {collab['seconds']} s)"] \
        if collab else []
    if run["steps"]:
        learned.append(f"interest encoder ({run['pairs']} training pairs, {run['steps']} steps on {run['device']}, {run['seconds']} s)")
    return [f"[{color}]{escape(plugin)} {rep['version']}: {rep['status']}[/] — {escape(rep['decision'])}",
            "learned: " + ("; ".join(learned) or "the weights only") + f"; held out: {held['candidate']['users']} users",
            f"NDCG@10 / Recall@10: {held['candidate']['ndcg@10']} / {held['candidate']['recall@10']}; with the manifest's "
            f"terms only {held['without_learning']['ndcg@10']} / {held['without_learning']['recall@10']}",
            "weights: " + ", ".join(f"{k} {v}" for k, v in rep["weights"].items())]
