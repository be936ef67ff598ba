"""`agent finetune` in mode `shared`: one encoder trained for every plugin, judged on every plugin.

The plugin asked for is fine-tuned together with every other plugin of the home that has labelled
rows (its examples and labelled turns replayed, so none forgets), from the packaged encoder's
weights, with a retrieval term that keeps embeddings near the packaged ones (agent.learn.multitask).
Each plugin's held-out rows compare the candidate (new encoder, its new head) with what that
plugin uses now; the candidate is promoted only when the plugin asked for is not worse than its
current model and no other plugin gets worse, beyond the tolerance (or with --force). Promotion
switches the home encoder (HOME/encoder/current) and the plugin's own `current`, which names a
small version holding its head; every other plugin picks up the head trained for it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agent.errors import AgentError, InputError
from agent.learn import crossval
from agent.learn import report as reports
from agent.learn.trainer import Plan, fit_head
from agent.memory import peaks
from agent.models.finetuned import TunedClassifier
from agent.models.home_encoder import CONFIG, ENCODER_DIR, HEADS_DIR, encoder_versions, head_folder, home_encoder, read_config, sha256
from agent.models.retrieval import atomic_write
from agent.models.versions import Versions, versions_for
from agent.plugin.manifest import Manifest

if TYPE_CHECKING:
    import numpy as np

    from agent.learn.trainset import TrainSet
    from agent.learn.versioned_run import FinetuneResult, Job
    from agent.models.classifier import TextClassifier
    from agent.models.encoder import Encoder


FEW_LR, FEW_EPOCHS = 5e-5, 10.0  # a plugin with few rows per label (agent.learn.fewshot)
SHARED_LR = 1.5e-4  # held-out rows preferred it to 8e-5: BANKING77 0.931 vs 0.927, PhraseBank 0.845 vs 0.821


@dataclass
class Part:
    """One plugin's rows, its probe on the packaged encoder, and its current predictions."""

    manifest: Manifest
    versions: Versions
    data: "TrainSet"
    targets: "np.ndarray"
    probe: "TextClassifier"
    current: str | None = None
    current_pred: list[str] | None = None
    keeps_own: bool = False  # its version in use runs an encoder of its own (full, lora): the new head is not used
    few: bool = False  # few rows per label: trained as agent.learn.fewshot says
    crossval: bool = False  # judged by cross-validation on all its rows, none held out (agent.learn.crossval)

    @property
    def held(self) -> tuple[list[str], list[str]]:
        """Held-out texts and their gold labels."""
        return [r.text for r in self.data.holdout], [r.label for r in self.data.holdout]


def finetune_shared(job: "Job") -> "FinetuneResult":
    """Train, judge and (when not worse) promote a shared encoder for the home, the asked plugin first."""
    from agent.learn.versioned_run import (
        gate,
        locked,
        now_stamp,
    )

    stamp, settings, opts, say = now_stamp(), job.settings, job.options, job.say
    encoders = encoder_versions(settings.home)
    with locked(say, encoders, job.versions):
        package = job.get_encoder()
        if package.tag:  # a tuned shared encoder was passed: training and its targets start from the packaged one
            from agent.models.encoder import shared_encoder

            package = shared_encoder(package.device)
        current = home_encoder(settings, package.device, base=package)
        parts = _parts(job, package, current)
        plan = shared_plan(job.options, sum(len(p.data.fit_rows) for p in parts), package.device, say, parts[0].few)
        from agent.learn.multitask import Task, Watch, train_shared

        tasks = [Task(p.manifest.name, [r.text for r in p.data.fit_rows], [r.label for r in p.data.fit_rows], p.probe, p.targets,
                      p.few) for p in parts]
        say(f"training a shared encoder on {plan.device} for {', '.join(t.name for t in tasks)}: "
            f"{sum(len(t.texts) for t in tasks)} rows, {plan.epochs:g} epochs at most")
        target = parts[0]
        oof = crossval.out_of_fold(job, target, tasks[1:], plan, package, train_shared) if target.crossval else None
        target_texts, target_gold = target.held
        tuned, heads, stats = train_shared(tasks, crossval.share(plan, 1 - crossval.FOLDS * crossval.FOLD_SHARE) if oof else plan,
                                           Watch(0, target_texts, target_gold) if target_gold else None,
                                           job.progress, job.cancel, capped=target.few)
        evaluations = {p.manifest.name: _evaluate(p, h, tuned) for p, h in zip(parts, heads)}
        if oof is not None:
            evaluations[target.manifest.name] = crossval.evaluation(
                target, oof, lambda texts: _current(target, job, package, current, texts)[1])
        if _head_is_better(job, target, evaluations[target.manifest.name], current is package):
            return _keep_head(job, target, plan, stats, stamp, crossval.head_evaluation(target, oof) if oof else None)
        promote, decision = (crossval.gate if oof is not None else gate)(evaluations[target.manifest.name], opts,
                                                                         target.current is not None)
        promote, decision = _judge_others(promote, decision, evaluations, target.manifest.name, opts)
        return _write_shared(job, encoders, parts, heads, tuned, package, (plan, stats, evaluations, stamp), promote, decision)


def _write_shared(job: "Job", encoders: Any, parts: list[Part], heads: list[TextClassifier], tuned: "Encoder", package: "Encoder",
                  run: tuple[Plan, dict[str, Any], dict[str, Any], str], promote: bool, decision: str) -> "FinetuneResult":
    """Version the encoder with every plugin's head, and the asked plugin's head; promote both or neither."""
    from agent.learn.versioned_run import FinetuneResult, conclude, new_versions, plan_dict, record_run, write_learned, write_report

    plan, stats, evaluations, stamp = run
    target = parts[0]
    with new_versions((encoders, "shared encoder"), (job.versions, "version")) as (ev, slot):
        ev.protect = lambda: referenced_encoders(job.settings.home)
        fingerprint = _write_encoder(ev.partial, tuned, package, target.manifest.name, slot.name)
        for p, head in zip(parts, heads):
            head.config.update({"base_model": fingerprint, "encoder_version": ev.name})
            head.save(ev.partial / HEADS_DIR / p.manifest.name)
            write_learned(ev.partial / HEADS_DIR / p.manifest.name, p.data)
        heads[0].config.update({"plan": plan_dict(plan), "run": stats, "previous_encoder": encoders.current()})
        heads[0].save(slot.partial)
        write_learned(slot.partial, target.data)
        rep = _report(target, slot.name, ev.name, promote, decision, plan, stats, evaluations, stamp, job.started)
        write_report(rep, slot.partial, ev.partial)
    folder = conclude([ev, slot], promote, job.say)[1]  # the encoder first: a run killed between the two stays consistent
    record_run(job.store, rep, folder, job.options.trigger)
    return FinetuneResult(target.manifest.name, slot.name, rep["status"], plan_dict(plan), rep, folder,
                          round(time.perf_counter() - job.started, 1))


def shared_plan(opts: Any, n_rows: int, device: str, say: Callable[[str], None], few: bool = False) -> Plan:
    """Device, epochs and time limit of a shared run (no timing probe: the one mode fits any time limit, cut short)."""
    from agent.learn.versioned_run import CPU_MINUTES

    limit = opts.max_minutes if opts.max_minutes is not None else (CPU_MINUTES if device == "cpu" else None)
    plan = Plan(mode="shared", device=device, seed=opts.seed, epochs=opts.epochs or (FEW_EPOCHS if few else shared_epochs(n_rows)),
                max_seconds=limit * 60 * 0.85 if limit else None)
    plan.lr = opts.lr or (FEW_LR if few else SHARED_LR)
    plan.notes.append(f"mode shared on {device}, {plan.epochs:g} epochs at most: "
                      + ("asked for" if opts.mode else "the default")
                      + (", few rows per label: label-balanced batches with a contrastive term" if few else ""))
    say(plan.notes[-1])
    return plan


def shared_epochs(n_rows: int) -> float:
    """About 600 steps for small sets (at most 20 epochs), 3 epochs for large ones; held-out rows may stop it sooner."""
    per_epoch = max(1, math.ceil(n_rows / Plan.batch_size))
    return float(min(20, max(3, math.ceil(600 / per_epoch))))


def _parts(job: "Job", package: "Encoder", current: "Encoder") -> list[Part]:
    """The asked plugin, then every other plugin of the home with labelled rows to replay."""
    from agent.plugin.discovery import discover

    manifests, _ = discover(job.settings)
    others = [m for m in manifests if m.name != job.manifest.name]
    parts = [_part(job.manifest, job, package, current)]
    for m in others:
        try:
            parts.append(_part(m, job, package, current))
        except (InputError, AgentError) as exc:
            job.say(f"{m.name} is not part of the shared encoder: {exc}")
    return parts


def _part(manifest: Manifest, job: "Job", package: "Encoder", current: "Encoder") -> Part:
    """One plugin's training rows, its probe, and the predictions of what it uses now on its held-out rows."""
    from agent.learn.versioned_run import encode_rows, training_data

    versions = versions_for(job.settings.models_root, manifest)
    data = training_data(manifest, versions, job.store, job.options)
    if manifest.name == job.manifest.name:
        few, judged_by_folds = crossval.prepare(manifest, data, versions, job.options.holdout)
    else:  # another plugin, replayed: judged on its held-out rows
        few, judged_by_folds = crossval.prepare(manifest, data, versions, 0.0)
    plan = Plan(mode="shared", device=package.device)
    targets = encode_rows(package, [r.text for r in data.fit_rows], f"{manifest.name} rows", job.progress, plan, job.cancel)
    probe = fit_head(targets, [r.label for r in data.fit_rows], data.labels, package.fingerprint)
    part = Part(manifest, versions, data, targets, probe, few=few, crossval=judged_by_folds)
    part.current, part.current_pred = _current(part, job, package, current)
    return part


def _current(part: Part, job: "Job", package: "Encoder", current: "Encoder",
             texts: list[str] | None = None) -> tuple[str | None, list[str]]:
    """What the plugin answers with now, on its held-out rows (or `texts`): its version, the shared head, or a head."""
    from agent.models.classifier import TextClassifier

    texts = part.held[0] if texts is None else texts
    if not texts:
        return part.versions.current(), []
    vectors = current.encode(texts)
    name = part.versions.current()
    if name:
        try:
            model = TunedClassifier.load(part.versions.path(name), current.device)
            if model.encoder is not None or model.config.get("base_model") == current.fingerprint:
                if model.probe is not None and model.probe.config.get("base_model") != current.fingerprint:
                    model.probe = None
                part.keeps_own = model.encoder is not None
                return name, _top(model, texts, vectors, part, current)
        except AgentError:
            pass  # an unreadable version is no baseline
    shared = head_folder(job.settings.home, part.manifest.name, current.fingerprint)
    if shared is not None:
        model = TunedClassifier(TextClassifier.load(shared))
        return f"shared encoder {shared.parent.parent.name}", _top(model, texts, vectors, part, current)
    if current is package:
        return None, _top(TunedClassifier(part.probe), texts, vectors)
    head = fit_head(current.encode([r.text for r in part.data.fit_rows]), [r.label for r in part.data.fit_rows],
                    part.data.labels, current.fingerprint)
    return None, _top(TunedClassifier(head), texts, vectors)


def _top(model: TunedClassifier, texts: list[str], vectors: "np.ndarray", part: Part | None = None,
         encoder: "Encoder | None" = None) -> list[str]:
    """The most probable label of each row (a shared head with its neighbours' votes, as at answer time)."""
    probs = model.predict_proba(texts, vectors)
    near = model.config.get("neighbours") if model.encoder is None else None
    if near and near.get("weight", 1.0) < 1.0 and part is not None and encoder is not None:
        probs = _voted(probs, vectors, part, encoder.encode([r.text for r in part.data.train]), model.labels, near)
    return [model.labels[int(i)] for i in probs.argmax(1)]


def _voted(probs: "np.ndarray", held: "np.ndarray", part: Part, train: "np.ndarray", labels: list[str],
           near: dict[str, Any]) -> "np.ndarray":
    """Probabilities blended with the votes of the k training rows nearest each held-out row."""
    import numpy as np

    from agent.models import neighbours

    index = {label: i for i, label in enumerate(labels)}
    rows = np.asarray([index.get(r.label, -1) for r in part.data.train])
    scores, top = neighbours.nearest(held, train, int(near["k"]))
    voted = neighbours.votes(scores, rows[top], len(labels), float(near["tau"]))
    return neighbours.blend(probs, voted, float(near["weight"]))


def _evaluate(part: Part, head: "TextClassifier", tuned: "Encoder") -> dict[str, Any]:
    """The candidate (its head, and the nearest rows' votes where they help) against the current model."""
    texts, gold = part.held
    if not texts:
        return reports.compare([], ([], []), None)
    held = tuned.encode(texts)
    probs = head.predict_proba(held)
    probs = _with_neighbours(part, head, tuned, held, probs, gold)
    top = probs.argmax(1)
    cand = ([head.labels[int(i)] for i in top], [float(probs[r, i]) for r, i in enumerate(top)])
    lost = sum(c != g == p for g, c, p in zip(gold, cand[0], part.current_pred or []))
    won = sum(p != g == c for g, c, p in zip(gold, cand[0], part.current_pred or []))
    return {**reports.compare(gold, cand, part.current_pred), "current_version": part.current,
            "neighbours": head.config.get("neighbours"), "keeps_own": part.keeps_own, "rows_lost_won": [lost, won]}


def _with_neighbours(part: Part, head: "TextClassifier", tuned: "Encoder", held: "np.ndarray", probs: "np.ndarray",
                     gold: list[str]) -> "np.ndarray":
    """Choose on the held-out rows how much the nearest training rows' votes count; record it in the head."""
    from agent.models import neighbours

    index = {label: i for i, label in enumerate(head.labels)}
    if len(gold) < neighbours.MIN_HELD:
        head.config["neighbours"] = {"weight": 1.0, "reason": f"{len(gold)} held-out rows: too few to choose by"}
        return probs
    train = tuned.encode([r.text for r in part.data.train])
    labels = [index.get(r.label, -1) for r in part.data.train]
    chosen = neighbours.choose(probs, held, train, labels, [index.get(g, -1) for g in gold])
    head.config["neighbours"] = chosen
    return probs if chosen["weight"] >= 1.0 else _voted(probs, held, part, train, head.labels, chosen)


def _head_is_better(job: "Job", target: Part, ev: dict[str, Any], packaged: bool) -> bool:
    """With the mode left to the agent and no version yet, whether the frozen-encoder head beat the candidate."""
    return (job.options.mode is None and packaged and target.current is None and bool(ev["candidate"]["n"])
            and ev["current"] is not None and ev["candidate"]["accuracy"] < ev["current"]["accuracy"])


def _keep_head(job: "Job", target: Part, plan: Plan, stats: dict[str, Any], stamp: str,
               ev: dict[str, Any] | None = None) -> "FinetuneResult":
    """Promote the plugin's frozen-encoder head as its version (the shared candidate scored lower); `ev`:
    the head's cross-validated figures, when the plugin was judged so."""
    from agent.learn.versioned_run import FinetuneResult, new_versions, plan_dict, record_run, write_learned, write_report

    if ev is None:
        texts, gold = target.held
        probs = target.probe.predict_proba(_held_vectors(target, job))
        top = probs.argmax(1)
        ev = reports.compare(gold, ([target.probe.labels[int(i)] for i in top], [float(probs[r, i]) for r, i in enumerate(top)]), None)
    rows = "cross-validated rows" if "cross_validated" in ev else "held-out rows"
    plan.notes.append(f"kept mode head: it scored {ev['candidate']['accuracy']:.4f} on the {rows}, shared lower")
    job.say(plan.notes[-1])
    plan.mode = "head"
    with new_versions((job.versions, "version")) as (slot,):
        target.probe.config.update({"plan": plan_dict(plan), "run": stats})
        target.probe.save(slot.partial)
        write_learned(slot.partial, target.data)
        rep = _report(target, slot.name, None, True, "promoted: the head, the first version of this plugin", plan, stats,
                      {target.manifest.name: ev}, stamp, job.started)
        write_report(rep, slot.partial)
    folder = job.versions.finish(slot.name, slot.partial)
    job.versions.promote(slot.name)
    record_run(job.store, rep, folder, job.options.trigger)
    version = slot.name
    return FinetuneResult(target.manifest.name, version, "promoted", plan_dict(plan), rep, folder,
                          round(time.perf_counter() - job.started, 1))


def _held_vectors(part: Part, job: "Job") -> "np.ndarray":
    """The packaged encoder's embeddings of a plugin's held-out rows."""
    return job.get_encoder().encode(part.held[0])


def loss_is_real(lost: int, won: int, level: float = 0.05) -> bool:
    """Whether rows the candidate newly gets wrong outweigh those it newly gets right beyond chance
    (exact one-sided McNemar test): on a plugin with few held-out rows, two rows either way is noise."""
    n = lost + won
    return lost > won and sum(math.comb(n, i) for i in range(lost, n + 1)) / 2 ** n < level


def _judge_others(promote: bool, decision: str, evaluations: dict[str, dict[str, Any]], target: str,
                  opts: Any) -> tuple[bool, str]:
    """Keep a candidate back when another plugin would get worse than what it uses now (unless forced)."""
    worse = []
    for name, ev in evaluations.items():
        if name == target or not ev["candidate"]["n"] or ev["current"] is None or ev.get("keeps_own"):
            continue  # a plugin that keeps its own full or lora model does not use the new head
        delta = ev["candidate"]["accuracy"] - ev["current"]["accuracy"]
        if delta < -opts.tolerance and loss_is_real(*ev.get("rows_lost_won", (0, 0))):
            worse.append(f"{name} {ev['candidate']['accuracy']:.4f} vs {ev['current']['accuracy']:.4f}")
    if not worse or not promote:
        return promote, decision + ("" if not worse else f"; other plugins worse: {', '.join(worse)}")
    if opts.force:
        return True, decision + f"; promoted by --force although other plugins get worse: {', '.join(worse)}"
    return False, f"not promoted: other plugins would get worse on their held-out rows ({', '.join(worse)}); " \
                  "--force promotes it anyway"


def _write_encoder(folder: Path, tuned: "Encoder", package: "Encoder", plugin: str, version: str) -> str:
    """Save the tuned encoder and the config that seals it; return its fingerprint."""
    tuned.model.save_pretrained(folder / ENCODER_DIR, safe_serialization=True)
    tuned.tokenizer.save_pretrained(folder / ENCODER_DIR)
    digest = sha256(folder / ENCODER_DIR / "model.safetensors")
    fingerprint = f"{package.fingerprint.split(':')[0]}:shared-{digest[:16]}"
    atomic_write(folder / CONFIG, json.dumps({"fingerprint": fingerprint, "encoder_sha256": digest,
                                              "base_model": package.fingerprint, "trained_for": plugin,
                                              "plugin_version": version}, indent=2).encode())
    return fingerprint


def _report(target: Part, version: str, ev_name: str | None, promote: bool, decision: str, plan: Plan, stats: dict[str, Any],
            evaluations: dict[str, dict[str, Any]], stamp: str, started: float) -> dict[str, Any]:
    """The run's report: the asked plugin's figures first, every plugin's held-out comparison after."""
    from agent.learn.versioned_run import now_stamp, plan_dict

    return {"plugin": target.manifest.name, "version": version, "encoder_version": ev_name,
            "status": "promoted" if promote else "rejected", "decision": decision,
            "current_version": target.current, "started_at": stamp, "finished_at": now_stamp(),
            "run": {**plan_dict(plan), **stats, "train_seconds": stats.get("seconds"),
                    "seconds": round(time.perf_counter() - started, 1), **peaks(plan.device)},
            "data": target.data.summary(), "evaluation": evaluations[target.manifest.name],
            "plugins": {name: {"candidate": ev["candidate"], "current": ev["current"], "current_version": ev.get("current_version")}
                        for name, ev in evaluations.items()}}


def restore_encoder(home: Path, config: dict[str, Any], say: Callable[[str], None]) -> None:
    """After rolling back a shared version: when its encoder is still the home's, the one before it."""
    encoders = encoder_versions(home)
    if encoders.current() != config.get("encoder_version"):
        return  # a later run for another plugin moved the encoder on: the others keep it
    before = config.get("previous_encoder")
    if before is None:
        encoders.clear()
        say("the home's encoder is the packaged one again")
    elif before in encoders.finished():
        read_config(encoders.path(before))
        encoders.promote(before)
        say(f"the home's encoder is {before} again")
    else:
        say(f"the shared encoder {before} used before was removed; the encoder stays {encoders.current()}")


def referenced_encoders(home: Path) -> set[str]:
    """Encoder versions some plugin's current or recent version was trained with or would roll back to."""
    names: set[str] = set()
    for root in Path(home, "models").glob("*"):
        versions = Versions(root)
        for v in {*versions.history()[-2:], versions.current()} - {None}:
            try:
                config = json.loads((versions.path(v) / CONFIG).read_text())
            except (OSError, ValueError):
                continue
            names.update(n for n in (config.get("encoder_version"), config.get("previous_encoder")) if isinstance(n, str))
    return names
