"""Judging a few-shot plugin's shared fine-tune on every row, by cross-validation, and training it on all of them.

With about ten rows per label, holding out 10% leaves one row per label to judge on (too few to
tell two models apart) and takes a tenth of the little data away from training. So a plugin that
trains as a few-shot one (agent.learn.fewshot) holds nothing out: its rows fall into FOLDS folds by text
hash, and the same training (the other plugins replayed, as in the final run) runs once per fold
without that fold. Every row is then predicted by a model that never saw it. The candidate's
predictions are compared with those of the frozen-encoder head fitted the same way (no version
yet) or, with a version in use, with that version's answers on the labelled turns it never trained
on. In that case only those turns are split into folds and every other row trains in every fold:
splitting all rows would take a third of the examples from each fold's model, and the version in
use, which had them all, would look better than the candidate is. The model promoted is trained
once more on all the rows.

`part` below is agent.learn.shared_mode's Part (a plugin's rows, probe, targets and versions).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Callable

from agent.learn.trainset import Row, key

if TYPE_CHECKING:
    import numpy as np

    from agent.learn.multitask import Task
    from agent.learn.trainer import Plan
    from agent.learn.versioned_run import Job
    from agent.models.encoder import Encoder

FOLDS = 3
FOLD_SHARE = 2 / 9  # of the run's time limit, for each fold's training (two thirds of the rows); the final run gets 1/3
TOLERANCE = 0.0  # judged on every row, the candidate must not be worse at all


def fold_of(text: str, folds: int = FOLDS) -> int:
    """A row's fold, stable across runs (by the hash of its folded text)."""
    return int(hashlib.sha256(key(text).encode()).hexdigest()[:8], 16) % folds


def share(plan: "Plan", part: float) -> "Plan":
    """The plan with `part` of its time limit."""
    from dataclasses import replace

    return replace(plan, max_seconds=plan.max_seconds * part if plan.max_seconds else None)


def folds(rows: list[Row], n: int, judged: set[str] | None = None) -> list[tuple[int, list[int], list[int]]]:
    """(fold, rows it judges, rows it trains on) of each fold with rows to judge. Only the judged texts
    (all of the first n rows when None) are split; every other row, anchors included, always trains,
    so a fold's model has all the data the version in use had, less a third of the turns judged."""
    out = []
    for f in range(FOLDS):
        test = [i for i in range(n) if fold_of(rows[i].text) == f and (judged is None or key(rows[i].text) in judged)]
        if test:
            held = set(test)
            out.append((f, test, [i for i in range(len(rows)) if i not in held]))
    return out


def judged_texts(part: Any) -> set[str] | None:
    """The folded texts the gate judges on: the labelled turns the version in use never saw (None: all rows)."""
    rows = unseen_by(part)
    return {key(part.data.train[i].text) for i in rows} if rows else None


def out_of_fold(job: "Job", part: Any, others: list["Task"], plan: "Plan", package: "Encoder",
                train: Callable[..., Any]) -> tuple[list[str], list[float], list[str], list[float]]:
    """Each judged row's label and confidence from a candidate trained without its fold, and the head's likewise."""
    from agent.memory import release

    rows, n = part.data.fit_rows, len(part.data.train)
    cand_label, cand_conf, head_label, head_conf = [""] * n, [0.0] * n, [""] * n, [0.0] * n
    for f, test, fit in folds(rows, n, judged_texts(part)):
        job.say(f"cross-validation: fold {f + 1} of {FOLDS}, {len(fit)} rows to train on, {len(test)} to judge")
        answers = _fold_answers(job, part, others, plan, package, train, test, fit)
        for j, i in enumerate(test):
            cand_label[i], cand_conf[i], head_label[i], head_conf[i] = (a[j] for a in answers)
        release()  # the fold's model is gone with _fold_answers' frame: hand its memory back before the next one
    return cand_label, cand_conf, head_label, head_conf


def _fold_answers(job: "Job", part: Any, others: list["Task"], plan: "Plan", package: "Encoder", train: Callable[..., Any],
                  test: list[int], fit: list[int]) -> tuple[list[str], list[float], list[str], list[float]]:
    """One fold: the candidate trained on `fit` and the head fitted on it, each row of `test` answered by both.
    Only plain labels and floats leave, so nothing of the fold's model outlives this call."""
    from agent.learn.multitask import Task
    from agent.learn.trainer import fit_head

    rows = part.data.fit_rows
    probe = fit_head(part.targets[fit], [rows[i].label for i in fit], part.data.labels, package.fingerprint)
    task = Task(part.manifest.name, [rows[i].text for i in fit], [rows[i].label for i in fit], probe, part.targets[fit], part.few)
    tuned, heads, _ = train([task, *others], share(plan, FOLD_SHARE), None, job.progress, job.cancel, capped=part.few)
    probs = heads[0].predict_proba(tuned.encode([rows[i].text for i in test]))
    base = probe.predict_proba(part.targets[test])
    return ([heads[0].labels[int(p.argmax())] for p in probs], [float(p.max()) for p in probs],
            [probe.labels[int(b.argmax())] for b in base], [float(b.max()) for b in base])


def head_out_of_fold(part: Any, vectors: "np.ndarray", fingerprint: str) -> tuple[list[str], list[float]]:
    """Each judged row's label and confidence from a frozen-encoder head fitted without its fold (mode head)."""
    from agent.learn.trainer import fit_head

    data = part.data
    rows, n = data.fit_rows, len(data.train)
    labels, confs = [""] * n, [0.0] * n
    for _, test, fit in folds(rows, n, judged_texts(part)):
        if len(seen := {rows[i].label for i in fit}) < 2:  # one label left to train on: the head can only answer it
            for i in test:
                labels[i], confs[i] = next(iter(seen), ""), 1.0
            continue
        probs = fit_head(vectors[fit], [rows[i].label for i in fit], data.labels, fingerprint).predict_proba(vectors[test])
        for j, i in enumerate(test):
            labels[i], confs[i] = data.labels[int(probs[j].argmax())], float(probs[j].max())
    return labels, confs


def prepare(manifest: Any, data: Any, versions: Any, holdout: float) -> tuple[bool, bool]:
    """(few rows per label, judged by folds) for the plugin asked for, its rows made ready: judged by folds,
    it holds nothing out; with few rows per label, its label names train too (agent.learn.fewshot)."""
    from agent.learn import fewshot

    few = fewshot.is_few(data)
    folded = holdout > 0 and (few or judged_by_folds_before(versions))
    if folded:
        data.train, data.holdout = data.train + data.holdout, []
    if few:
        data.augmented += fewshot.name_anchors(manifest, data)
    return few, folded


def gate(evaluation: dict[str, Any], opts: Any, has_current: bool) -> tuple[bool, str]:
    """The gate on cross-validated figures: tolerance TOLERANCE at most, and the decision says how it judged."""
    from dataclasses import replace

    from agent.learn.versioned_run import gate as plain_gate

    figure = f"cross-validated accuracy {evaluation['candidate']['accuracy']:.4f}"
    if evaluation["current"] is None and evaluation["candidate"]["n"]:
        if not has_current:
            return True, f"promoted: {figure}, no version in use to compare with"
        unseen = f"{evaluation.get('current_version')} has trained on every labelled turn, so no turn is left to compare on"
        if opts.force:
            return True, f"promoted by --force without a comparison: {figure}; {unseen}"
        return False, f"not promoted: {figure}, but {unseen}; label new turns first, or --force promotes it"
    n = evaluation["candidate"]["n"]
    return plain_gate(evaluation, replace(opts, tolerance=min(opts.tolerance, TOLERANCE)), has_current,
                 f"cross-validated accuracy on {n} row{'s' if n != 1 else ''}",
                 evaluation.get("cross_validated", {}).get("against") or "current")


def judged_by_folds_before(versions: Any) -> bool:
    """Whether the version in use was judged by cross-validation (it trained on every row, so held-out rows
    would flatter it: its successors are judged by folds too)."""
    name = versions.current()
    if not name:
        return False
    try:
        return bool(json.loads((versions.path(name) / "report.json").read_text())["evaluation"].get("cross_validated"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def unseen_by(part: Any) -> list[int]:
    """Rows of labelled turns the plugin's version in use did not train on ([] without a version)."""
    from agent.learn.versioned_run import LEARNED

    if part.current is None or part.current not in part.versions.finished():
        return []
    try:
        lines = (part.versions.path(part.current) / LEARNED).read_text().splitlines()
        learned = {json.loads(line)["source"] for line in lines if line.strip()}
    except (OSError, ValueError, KeyError):
        return []
    return [i for i in distinct(part.data.train) if part.data.train[i].source.startswith("log:")
            and part.data.train[i].source not in learned]


def distinct(rows: list[Row]) -> list[int]:
    """Row numbers without the repeats of labelled turns (trained on several times, judged once)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for i, r in enumerate(rows):
        if (r.source, r.text) not in seen:
            seen.add((r.source, r.text))
            out.append(i)
    return out


def head_evaluation(part: Any, oof: tuple[list[str], list[float], list[str], list[float]]) -> dict[str, Any]:
    """The frozen-encoder head's own cross-validated figures (when it is kept instead of the candidate)."""
    from agent.learn import report as reports

    rows = distinct(part.data.train)
    _, _, head, conf = oof
    ev = reports.compare([part.data.train[i].label for i in rows], ([head[i] for i in rows], [conf[i] for i in rows]), None)
    return {**ev, "cross_validated": {"folds": FOLDS, "rows": f"all {len(rows)} rows"}}


def evaluation(part: Any, oof: tuple[list[str], list[float], list[str], list[float]],
               current: Callable[[list[str]], list[str]]) -> dict[str, Any]:
    """The candidate's out-of-fold answers against the baseline: the version in use on the turns it never
    saw, else the head fitted without each fold."""
    from agent.learn import report as reports

    cand, conf, head, _ = oof
    gold = [r.label for r in part.data.train]
    rows = unseen_by(part)
    if rows:
        texts = [part.data.train[i].text for i in rows]
        ev = reports.compare([gold[i] for i in rows], ([cand[i] for i in rows], [conf[i] for i in rows]), current(texts))
        what = f"{len(rows)} labelled turns {part.current} never trained on, against {part.current}"
        against = part.current
    else:
        rows = distinct(part.data.train)
        ev = reports.compare([gold[i] for i in rows], ([cand[i] for i in rows], [conf[i] for i in rows]),
                             [head[i] for i in rows])
        what = f"all {len(rows)} rows, against the frozen-encoder head fitted without each fold"
        against = "the frozen-encoder head"
    return {**ev, "current_version": part.current, "neighbours": None, "keeps_own": part.keeps_own,
            "cross_validated": {"folds": FOLDS, "rows": what, "against": against}}
