"""`finetune()`: data → plan → train → evaluate against the current model → write a version → promote.

One function serves the CLI (rich progress bar) and any other front end (a UI worker): it takes
`progress` and `cancel` callbacks and returns a FinetuneResult. The steps:
  1. lock the plugin's model folder; remove partial versions left by killed runs
  2. training rows = examples + person-labelled turns (trainset.py), held-out rows split stably
  3. plan: device (auto = CUDA when present), mode (full on CUDA; on a CPU the best mode that fits
     --max-minutes, measured), epochs
  4. train into model/.partial-vN-PID/, evaluate candidate and current on the held-out rows
  5. rename to model/vN/, write report.json + report.md there and a row in the database
  6. promote (switch `current`) when the candidate is not worse than current − tolerance, or --force
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agent.errors import ModelError
from agent.learn import crossval, trainset
from agent.learn import report as reports
from agent.learn.trainer import CancelFn, Plan, ProgressFn, fit_head, steps_for, time_step, train_encoder
from agent.learn.versioned_run import (  # noqa: F401
    CPU_MINUTES,
    LEARNED,
    TOLERANCE,
    FinetuneResult,
    Job,
    Options,
    conclude,
    encode_rows,
    gate,
    locked,
    new_versions,
    now_stamp,
    open_store,
    packaged_encoder,
    plan_dict,
    record_run,
    training_data,
    write_learned,
    write_report,
)
from agent.memory import peaks, release, reset_peaks
from agent.models.finetuned import PROBE_WEIGHTS, TUNED_WEIGHT, TunedClassifier, combine
from agent.models.versions import Versions, versions_for
from agent.plugin.manifest import Manifest, load_manifest
from agent.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from agent.models.encoder import Encoder
    from agent.store import Store


def finetune(plugin_dir: Path, settings: Settings | None = None, options: Options | None = None, *,
             encoder: "Encoder | None" = None, store: "Store | None" = None, progress: ProgressFn | None = None,
             cancel: CancelFn | None = None, notify: Callable[[str], None] | None = None) -> FinetuneResult:
    """Fine-tune one plugin's classifier and promote it if it is not worse than the current one."""
    reset_peaks()  # the report's peak is this run's, also in a process that lives on (the chat app)
    try:
        return _finetune(plugin_dir, settings, options, encoder=encoder, store=store, progress=progress, cancel=cancel,
                         notify=notify)
    finally:
        release()  # the run's models left with its frame: a long-lived process comes back to what it held before


def _finetune(plugin_dir: Path, settings: Settings | None = None, options: Options | None = None, *,
              encoder: "Encoder | None" = None, store: "Store | None" = None, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None, notify: Callable[[str], None] | None = None) -> FinetuneResult:
    """The run itself (finetune() measures and frees around it)."""
    started, stamp = time.perf_counter(), now_stamp()
    settings, opts = settings or Settings(), options or Options()
    say = notify or (lambda _msg: None)
    manifest = load_manifest(Path(plugin_dir))
    tuner = finetuner_for(manifest)
    if tuner is not None:
        versions = versions_for(settings.models_root, manifest, tuner.folder)
        job = Job(manifest, settings, opts, versions, store or open_store(settings), encoder, progress, cancel, say, started)
        return tuner.fn(job)
    versions = versions_for(settings.models_root, manifest)
    if (opts.mode or "shared") == "shared":
        if not is_main_process():
            return FinetuneResult(manifest.name, None, "worker", {"mode": "shared"})
        from agent.learn.shared_mode import finetune_shared

        return finetune_shared(Job(manifest, settings, opts, versions, store or open_store(settings), encoder, progress,
                                   cancel, say, started))
    if not is_main_process():
        return _worker(manifest, versions, store or open_store(settings), opts, encoder or packaged_encoder(opts.device),
                       progress, cancel)
    return _one_plugin(Job(manifest, settings, opts, versions, store or open_store(settings), encoder, progress, cancel,
                           say, started), stamp)


def _one_plugin(job: Job, stamp: str) -> FinetuneResult:
    """Mode head or full: one plugin's classifier trained, judged against its version in use, versioned."""
    manifest, settings, opts, versions, say, started = job.manifest, job.settings, job.options, job.versions, job.say, job.started
    progress, cancel, store = job.progress, job.cancel, job.store
    encoder = job.encoder
    with locked(say, versions):
        data = training_data(manifest, versions, store, opts)
        encoder = encoder or packaged_encoder(opts.device)
        from agent.models.home_encoder import home_encoder

        turns_encoder = home_encoder(settings, encoder.device, base=encoder)  # what the turns embed with now
        if plan_mode(opts) == "head":
            encoder = turns_encoder  # a head reads the turn's embedding: train it on the home's encoder
        plan = choose_plan(data, opts, say)
        folds = plan.mode == "head" and crossval.prepare(manifest, data, versions, opts.holdout)[1]
        with new_versions((versions, "version")) as (slot,):
            write_learned(slot.partial, data)
            tuned, stats, evaluation, cur_version = _candidate(data, plan, encoder, versions, progress, cancel, say, opts,
                                                               turns_encoder, folds)
            tuned.head.config.update({"base_model": encoder.fingerprint, "plan": plan_dict(plan), "run": stats})
            tuned.save(slot.partial)
            promote, decision = (crossval.gate if folds else gate)(evaluation, opts, cur_version is not None)
            if not folds:
                decision += _same_rows_note(versions, cur_version, data)
            status = "promoted" if promote else "rejected"
            rep = _report(manifest, slot.name, status, decision, plan, stats, data, evaluation, cur_version, stamp, started)
            write_report(rep, slot.partial)
        folder, = conclude([slot], promote, say)
        record_run(store, rep, folder, opts.trigger)
        version = slot.name
    return FinetuneResult(manifest.name, version, status, plan_dict(plan), rep, folder, round(time.perf_counter() - started, 1))


def _candidate(data: trainset.TrainSet, plan: Plan, encoder: "Encoder", versions: Versions, progress: ProgressFn | None,
               cancel: CancelFn | None, say: Callable[[str], None], opts: Options, turns_encoder: "Encoder",
               folds: bool) -> tuple[TunedClassifier, dict[str, Any], dict[str, Any], str | None]:
    """The trained candidate, its run statistics, its evaluation against the version in use, and that version."""
    if folds:
        return _head_crossval(data, plan, encoder, versions, progress, cancel, turns_encoder)
    tuned, stats, gold, cand, cur, cur_version = _train_and_score(data, plan, encoder, versions, progress, cancel, say,
                                                                  auto_mode=opts.mode is None, turns_encoder=turns_encoder)
    return tuned, stats, reports.compare(gold, cand, cur), cur_version


def finetuner_for(manifest: Manifest) -> Any:
    """The contributed fine-tuner of a plugin with its table, or None for the classifier's own."""
    from agent.plugin import contributions

    return next((t for table, t in contributions.finetuners().items() if manifest.tables.get(table) is not None), None)


def plugin_versions(settings: Settings, plugin_dir: Path) -> Versions:
    """The versions a plugin's fine-tunes write (the classifier's, or a contributed fine-tuner's)."""
    manifest = load_manifest(Path(plugin_dir))
    tuner = finetuner_for(manifest)
    return versions_for(settings.models_root, manifest, tuner.folder if tuner else "")


def rollback(plugin_dir: Path, settings: Settings | None = None, say: Callable[[str], None] | None = None) -> tuple[str | None, str]:
    """Switch `current` back to the version promoted before it. Leaving a shared version whose encoder is
    still the home's, the home's encoder goes back to the one in use before that version was promoted."""
    from agent.learn.shared_mode import restore_encoder
    from agent.models.home_encoder import encoder_versions

    settings, say = settings or Settings(), say or (lambda _msg: None)
    versions = plugin_versions(settings, plugin_dir)
    with versions.lock(), encoder_versions(settings.home).lock():
        now = versions.current()
        config = _config_of(versions.path(now)) if now else {}
        if config.get("mode") == "shared" and not [v for v in versions.history() if v in versions.finished() and v != now]:
            versions.clear()  # the first fine-tune was shared: back to no version of its own
            result: tuple[str | None, str] = (now, "(none)")
        else:
            result = versions.rollback()
        if config.get("mode") == "shared":
            restore_encoder(settings.home, config, say)
        _drop_threshold_of(versions, now, say)
        return result


def _drop_threshold_of(versions: Versions, left: str | None, say: Callable[[str], None]) -> None:
    """A min_confidence accepted from the version rolled back from no longer applies: the manifest's does."""
    from agent.plugin import thresholds

    data = thresholds.read(versions.root)
    if left and data and data.get("version") == left and thresholds.reject(versions):
        say(f"the min_confidence accepted from {left} ({data['min_confidence']:g}) no longer applies: the "
            "manifest's does; --accept-threshold takes the suggestion of the version in use")


def _config_of(folder: Path) -> dict[str, Any]:
    """A version folder's config (no model load); {} when unreadable."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


# ---- data ---------------------------------------------------------------------------------------


# ---- planning -----------------------------------------------------------------------------------
def choose_plan(data: trainset.TrainSet, opts: Options, say: Callable[[str], None]) -> Plan:
    """Device, mode and epochs for this run; on a CPU the mode is the best one that fits the time limit."""
    from agent.models.encoder import pick_device

    device = pick_device(opts.device)
    limit = opts.max_minutes if opts.max_minutes is not None else (CPU_MINUTES if device == "cpu" else None)
    plan = Plan(mode=opts.mode or "full", device=device, seed=opts.seed, epochs=opts.epochs or default_epochs(len(data.train)),
                max_seconds=limit * 60 if limit else None)
    if opts.lr:
        plan.lr = opts.lr
    if opts.mode or device != "cpu" or limit is None:
        epochs = "" if plan.mode == "head" else f", {plan.epochs:g} epochs"
        plan.notes.append(f"mode {plan.mode} on {device}{epochs}: " + ("asked for" if opts.mode else "the default on " + device))
        say(plan.notes[-1])
        return plan
    for mode in ("full", "lora"):
        plan.mode = mode
        per_step = time_step([r.text for r in data.fit_rows], plan)
        budget = 0.85 * plan.max_seconds - 0.02 * len(data.fit_rows) - 10  # room for encoding and evaluation
        fits = budget / (per_step * math.ceil(len(data.fit_rows) / plan.batch_size))
        if fits >= min(1.0, plan.epochs):
            if fits < plan.epochs and not opts.epochs:
                plan.epochs = round(fits, 2)
            plan.notes.append(f"mode {mode}: {per_step:.2f} s a step here; {plan.epochs} epochs fit in {limit:g} min")
            say(plan.notes[-1])
            return plan
    plan.mode = "head"
    plan.notes.append(f"mode head: neither full nor LoRA training fits in {limit:g} min on this CPU")
    say(plan.notes[-1])
    return plan


def default_epochs(n_rows: int) -> float:
    """Enough passes for small sets to converge, few for large ones (about 600 steps, 4 to 20 epochs)."""
    per_epoch = max(1, math.ceil(n_rows / Plan.batch_size))
    return float(min(20, max(4, math.ceil(600 / per_epoch))))


# ---- training and scoring -----------------------------------------------------------------------
def plan_mode(opts: Options) -> str:
    """The mode asked for (shared when none)."""
    return opts.mode or "shared"


def _train_and_score(data: trainset.TrainSet, plan: Plan, encoder: "Encoder", versions: Versions,
                     progress: ProgressFn | None, cancel: CancelFn | None, say: Callable[[str], None],
                     auto_mode: bool = False, turns_encoder: "Encoder | None" = None) -> tuple:
    """Train, then predict held-out rows with the candidate and the current model."""
    held_texts, gold = [r.text for r in data.holdout], [r.label for r in data.holdout]
    held = encode_rows(encoder, held_texts, "held-out", progress, plan, cancel)
    tuned, stats, probe = _fit(data, plan, encoder, progress, cancel, say)
    if tuned.probe is not None and gold:
        _choose_probe_weight(tuned, held_texts, held, gold, plan)
    cand = _predict(tuned, held_texts, held)
    if auto_mode and plan.mode != "head" and gold:
        tuned, cand = _better_of(tuned, cand, probe, held_texts, held, gold, plan, say)
    cur_version, cur = _current_predictions(versions, encoder, held_texts, held, probe, turns_encoder)
    return tuned, stats, gold, cand, cur, cur_version


def _head_crossval(data: trainset.TrainSet, plan: Plan, encoder: "Encoder", versions: Versions,
                   progress: ProgressFn | None, cancel: CancelFn | None,
                   turns_encoder: "Encoder | None") -> tuple[TunedClassifier, dict[str, Any], dict[str, Any], str | None]:
    """Mode head judged by folds (few rows per label, or a version in use judged so): the head fitted on all
    rows, judged by its out-of-fold answers against the version in use on the turns it never saw (agent.learn.crossval)."""
    from types import SimpleNamespace

    started = time.perf_counter()
    vectors = encode_rows(encoder, [r.text for r in data.fit_rows], "train", progress, plan, cancel)
    probe = fit_head(vectors, [r.label for r in data.fit_rows], data.labels, encoder.fingerprint)
    part = SimpleNamespace(current=versions.current(), versions=versions, data=data, keeps_own=False)
    cand, conf = crossval.head_out_of_fold(part, vectors, encoder.fingerprint)

    by_text = {r.text: vectors[i] for i, r in enumerate(data.train)}  # the judged turns are encoded already

    def current(texts: list[str]) -> list[str]:
        import numpy as np

        return _current_predictions(versions, encoder, texts, np.stack([by_text[t] for t in texts]), probe, turns_encoder)[1]

    evaluation = crossval.evaluation(part, (cand, conf, cand, conf), current)
    if evaluation["cross_validated"]["against"] != part.current:
        # no version, or no turn it never saw: the baseline would be the head itself, so nothing is compared
        evaluation.update(current=None, f1_drops=[])
        evaluation["cross_validated"].update(rows=f"all {evaluation['candidate']['n']} rows", against=None)
    stats = {"device": plan.device, "seconds": round(time.perf_counter() - started, 1)}
    return TunedClassifier(probe), stats, evaluation, part.current


def _choose_probe_weight(tuned: TunedClassifier, texts: list[str], vectors: "np.ndarray", gold: list[str],
                         plan: Plan) -> None:
    """Weight of the tuned head against the frozen-encoder probe: the best of PROBE_WEIGHTS on the held-out rows."""
    tuned_probs = tuned.head.predict_proba(tuned.embed(texts, vectors))
    probe_probs = tuned.probe.predict_proba(vectors)  # type: ignore[union-attr]
    scores = {w: _accuracy(combine(tuned_probs, probe_probs, w), tuned.labels, gold) for w in PROBE_WEIGHTS}
    best = max(scores, key=lambda w: (scores[w], -abs(w - TUNED_WEIGHT)))
    tuned.head.config["tuned_weight"] = best
    plan.notes.append("weight of the tuned head against the probe: " + ", ".join(f"{w:g} {a:.4f}" for w, a in scores.items())
                      + f" on the held-out rows; chose {best:g}")


def _accuracy(probs: "np.ndarray", labels: list[str], gold: list[str]) -> float:
    """Share of rows whose most probable label is the gold one."""
    return sum(labels[int(i)] == g for i, g in zip(probs.argmax(axis=1), gold)) / max(len(gold), 1)


def _better_of(tuned: TunedClassifier, cand: tuple[list[str], list[float]], probe: Any, texts: list[str],
               vectors: "np.ndarray", gold: list[str], plan: Plan, say: Callable[[str], None]) -> tuple:
    """With the mode left to the agent, keep the head alone when it beats the trained encoder on held-out rows."""
    head_cand = _predict(TunedClassifier(probe), texts, vectors)
    trained, head = (sum(g == p for g, p in zip(gold, c[0])) / len(gold) for c in (cand, head_cand))
    if head <= trained:
        return tuned, cand
    plan.notes.append(f"kept mode head: it scored {head:.4f} on the held-out rows, {plan.mode} {trained:.4f}")
    say(plan.notes[-1])
    plan.mode = "head"
    return TunedClassifier(probe), head_cand


def _fit(data: trainset.TrainSet, plan: Plan, encoder: "Encoder", progress: ProgressFn | None,
         cancel: CancelFn | None, say: Callable[[str], None]) -> tuple[TunedClassifier, dict[str, Any], Any]:
    """The linear probe on frozen embeddings, then (unless mode head) the encoder training from it."""
    texts, labels = [r.text for r in data.fit_rows], [r.label for r in data.fit_rows]
    vectors = encode_rows(encoder, texts, "train", progress, plan, cancel)
    probe = fit_head(vectors, labels, data.labels, encoder.fingerprint)
    if plan.mode == "head":
        return TunedClassifier(probe), {"device": plan.device, "seconds": 0.0}, probe
    say(f"training {plan.mode} on {plan.device}: {steps_for(len(texts), plan)} steps")
    tuned_encoder, head, stats, adapter = train_encoder(texts, labels, probe, plan, progress, cancel)
    return TunedClassifier(head, tuned_encoder, adapter, probe), stats, probe


def is_main_process() -> bool:
    """False in the extra processes of a multi-GPU launch (torchrun / accelerate launch)."""
    rank = os.environ.get("RANK", "0").strip()
    return not (rank.isdigit() and int(rank) > 0 and os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1"))


def _worker(manifest: Manifest, versions: Versions, store: "Store", opts: Options, encoder: "Encoder",
            progress: ProgressFn | None, cancel: CancelFn | None) -> FinetuneResult:
    """A non-main process of a multi-GPU run: the same data and plan, its share of each batch, no writes."""
    data = training_data(manifest, versions, store, opts)
    plan = choose_plan(data, opts, lambda _msg: None)
    _fit(data, plan, encoder, progress, cancel, lambda _msg: None)
    return FinetuneResult(manifest.name, None, "worker", plan_dict(plan))


def _predict(model: TunedClassifier, texts: list[str], vectors: "np.ndarray") -> tuple[list[str], list[float]]:
    """Top label and its probability per row."""
    if not texts:
        return [], []
    probs = model.predict_proba(texts, vectors)
    top = probs.argmax(1)
    return [model.labels[i] for i in top], [float(probs[r, i]) for r, i in enumerate(top)]


def _current_predictions(versions: Versions, encoder: "Encoder", texts: list[str], vectors: "np.ndarray",
                         probe: Any, turns_encoder: "Encoder | None" = None) -> tuple[str | None, list[str]]:
    """The current version's predictions (a head read from the embedding it was made for); without one,
    the frozen-encoder head trained on the same rows."""
    name = versions.current()
    if name:
        try:
            model = TunedClassifier.load(versions.path(name), encoder.device)
            base = model.config.get("base_model")
            if model.encoder is None and turns_encoder is not None and base == turns_encoder.fingerprint != encoder.fingerprint:
                vectors = turns_encoder.encode(texts)
            return name, _predict(model, texts, vectors)[0]
        except ModelError:
            pass  # an unreadable current model is no baseline; the candidate replaces it
    return None, _predict(TunedClassifier(probe), texts, vectors)[0]


def _same_rows_note(versions: Versions, cur_version: str | None, data: trainset.TrainSet) -> str:
    """A warning when the current version was measured on other held-out rows (it may have trained on some)."""
    if cur_version is None:
        return ""
    try:
        before = json.loads((versions.path(cur_version) / "report.json").read_text())["data"].get("holdout_hash")
    except (OSError, ValueError, KeyError):
        return ""
    if before in (None, data.holdout_hash()):
        return ""
    return f" (note: the held-out rows differ from those {cur_version} was measured on, so it may have trained on some)"


# ---- records ------------------------------------------------------------------------------------
def _report(manifest: Manifest, version: str, status: str, decision: str, plan: Plan, stats: dict[str, Any],
            data: trainset.TrainSet, evaluation: dict[str, Any], cur_version: str | None, stamp: str, started: float) -> dict[str, Any]:
    """Everything about the run, JSON-ready."""
    return {"plugin": manifest.name, "version": version, "status": status, "decision": decision,
            "current_version": cur_version, "started_at": stamp, "finished_at": now_stamp(),
            "run": {**plan_dict(plan), **stats, "train_seconds": stats.get("seconds"),
                    "seconds": round(time.perf_counter() - started, 1), **peaks(plan.device)},
            "data": data.summary(), "evaluation": evaluation}


