"""What every fine-tune run shares, whichever mode trains: its options, its job, its data, the gate, its records."""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from agent.errors import InputError
from agent.learn import trainset
from agent.learn.trainer import CancelFn, Cancelled, Plan, Progress, ProgressFn
from agent.models.retrieval import atomic_write
from agent.models.versions import Versions
from agent.plugin.loaded import label_list, read_examples
from agent.plugin.manifest import Manifest
from agent.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from agent.models.encoder import Encoder
    from agent.store import Store

CPU_MINUTES = 30.0  # default time limit on a CPU; a GPU run has none unless asked
TOLERANCE = 0.01
LEARNED = "learned.jsonl"


@dataclass
class FinetuneResult:
    """What a run did."""

    plugin: str
    version: str | None
    status: str  # promoted, rejected, rolled back
    plan: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    seconds: float = 0.0


@dataclass
class Options:
    """The knobs of a run, as the CLI names them."""

    mode: str | None = None
    device: str = "auto"
    epochs: float | None = None
    max_minutes: float | None = None
    seed: int = 0
    force: bool = False
    tolerance: float = TOLERANCE
    holdout: float = 0.1
    lr: float | None = None
    trigger: str = "manual"  # what started the run: a person, or the plugin's [finetune] policy ("policy")
    noise: float = 0.0  # add a copy of each training row with this share of characters perturbed (agent.text.noise)


@dataclass
class Job:
    """What a contributed fine-tuner (`register_finetuners`) gets: the plugin, the run's options and callbacks."""

    manifest: Manifest
    settings: Settings
    options: Options
    versions: Versions
    store: "Store"
    encoder: "Encoder | None"
    progress: ProgressFn | None
    cancel: CancelFn | None
    say: Callable[[str], None]
    started: float

    def get_encoder(self) -> "Encoder":
        """The encoder to train from (loaded now when none was given)."""
        if self.encoder is None:
            self.encoder = packaged_encoder(self.options.device)
        return self.encoder

    def device(self) -> str:
        """Where to train: the asked device, or CUDA when present."""
        return self.options.device if self.options.device != "auto" else packaged_encoder("auto").device


def training_data(manifest: Manifest, versions: Versions, store: "Store", opts: Options) -> trainset.TrainSet:
    """Examples + labelled turns, with labels learned by earlier versions kept (and noisy copies, if asked)."""
    holdout = opts.holdout
    examples = read_examples(manifest)
    labels = label_list(manifest, examples)
    labels += [lab for lab in versions.current_labels() if lab not in labels]
    logged = trainset.logged_rows(store, manifest.name)
    data = trainset.build(examples, logged, labels, holdout, manifest.privacy.redact)
    trained = {r.label for r in data.train}
    data.dropped_labels = [lab for lab in data.labels if lab not in trained]
    data.labels = [lab for lab in data.labels if lab in trained]
    if len(data.labels) < 2:
        raise InputError(f"{manifest.path}: fine-tuning needs examples of at least 2 labels; found {data.labels}")
    if opts.noise:
        data.add_noise(opts.noise, opts.seed)
    return data


def write_learned(folder: Path, data: trainset.TrainSet) -> None:
    """Turns people labelled, kept beside the version so the plugin also recognises them as in scope."""
    seen, lines = set(), []
    for r in data.train:
        if r.source != "examples" and r.source not in seen:
            seen.add(r.source)
            lines.append(json.dumps({"text": r.text, "label": r.label, "source": r.source}))
    atomic_write(folder / LEARNED, ("\n".join(lines) + "\n" if lines else "").encode())


def encode_rows(encoder: "Encoder", texts: list[str], what: str, progress: ProgressFn | None, plan: Plan,
            cancel: CancelFn | None = None) -> "np.ndarray":
    """Base-encoder embeddings, reporting progress."""
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        if cancel and cancel():
            raise Cancelled("fine-tuning was cancelled; nothing was promoted")
        if progress:
            progress(Progress(f"encode {what}", done, total, None, plan.device, plan.mode, time.perf_counter() - start))

    return encoder.encode(texts, progress=report)


def gate(evaluation: dict[str, Any], opts: Options, has_current: bool, figure: str = "held-out accuracy",
          against: str = "current") -> tuple[bool, str]:
    """Promote when the candidate is not worse than current beyond the tolerance (or when forced); `figure`
    and `against` name what was measured and the baseline in the decision."""
    cand, cur = evaluation["candidate"], evaluation["current"]
    if not cand["n"]:
        if has_current and not opts.force:
            return False, "not promoted: no held-out rows to compare with the current version on; --force promotes it"
        return True, "promoted without a comparison: no held-out rows (too few examples per label, or --holdout 0)"
    delta = cand["accuracy"] - cur["accuracy"]
    verdict = f"{figure} {cand['accuracy']:.4f} vs {against} {cur['accuracy']:.4f} ({delta:+.4f}, tolerance {opts.tolerance})"
    if delta >= -opts.tolerance:
        return True, f"promoted: {verdict}"
    if opts.force:
        return True, f"promoted by --force although worse: {verdict}"
    return False, f"not promoted, worse than {against}: {verdict}; --force promotes it anyway"


def record_run(store: "Store", rep: dict[str, Any], folder: Path, trigger: str = "manual") -> None:
    """A row in the finetune_runs table."""
    ev = rep["evaluation"]
    store.log_finetune_run({
        "plugin": rep["plugin"], "version": rep["version"], "started_at": rep["started_at"],
        "finished_at": rep["finished_at"], "status": rep["status"], "mode": rep["run"]["mode"],
        "device": rep["run"]["device"], "epochs": rep["run"]["epochs"], "seconds": rep["run"]["seconds"],
        "train_rows": rep["data"]["train_rows"], "holdout_rows": rep["data"]["holdout_rows"],
        "accuracy": ev["candidate"]["accuracy"], "macro_f1": ev["candidate"]["macro_f1"],
        "current_accuracy": ev["current"]["accuracy"] if ev["current"] else None,
        "current_version": rep["current_version"], "report": str(folder / "report.json"), "trigger": trigger})


def plan_dict(plan: Plan) -> dict[str, Any]:
    """The plan, JSON-ready."""
    return asdict(plan)


def open_store(settings: Settings) -> "Store":
    """The home's database."""
    from agent.store import Store

    return Store(settings.db_path)


def packaged_encoder(device: str) -> "Encoder":
    """The shared base encoder."""
    from agent.models.encoder import shared_encoder

    return shared_encoder(device)


def now_stamp() -> str:
    """UTC timestamp."""
    from agent.store import now

    return now()


@dataclass
class Slot:
    """A version being written: its Versions, its name, the partial folder, and what its old versions are called."""

    versions: Versions
    name: str
    partial: Path
    what: str = "version"
    protect: Callable[[], set[str]] | None = None  # versions pruning must keep (a shared encoder heads still use)


@contextmanager
def locked(say: Callable[[str], None], *versions: Versions) -> Iterator[None]:
    """Hold each Versions' lock (in order), after removing what runs that did not finish left."""
    with ExitStack() as stack:
        for v in versions:
            stack.enter_context(v.lock())
        for v in versions:
            for name in v.clean_partials():
                say(f"removed {name}, left by a run that did not finish")
        yield


@contextmanager
def new_versions(*slots: tuple[Versions, str]) -> Iterator[list[Slot]]:
    """Start a partial version in each (Versions, what); if the block fails or is cancelled, every partial is
    removed, so nothing half-written stays."""
    started = [Slot(v, *v.start(), what=what) for v, what in slots]
    try:
        yield started
    except BaseException:
        for slot in started:
            shutil.rmtree(slot.partial, ignore_errors=True)
        raise


def write_report(rep: dict[str, Any], *folders: Path) -> None:
    """report.json and report.md into each folder."""
    from agent.learn import report as reports

    for folder in folders:
        atomic_write(folder / "report.json", json.dumps(rep, indent=2).encode())
        atomic_write(folder / "report.md", reports.markdown(rep).encode())


def conclude(slots: list[Slot], promote: bool, say: Callable[[str], None]) -> list[Path]:
    """Finish every partial, promote them in order when the gate let them through (a run killed between two
    promotions leaves a consistent home: the first is what the others build on), prune old versions; the folders."""
    folders = [slot.versions.finish(slot.name, slot.partial) for slot in slots]
    if promote:
        for slot in slots:
            slot.versions.promote(slot.name)
    for slot in slots:
        for old in slot.versions.prune(protect=slot.protect() if slot.protect else frozenset()):
            say(f"removed old {slot.what} {old}")
    return folders
