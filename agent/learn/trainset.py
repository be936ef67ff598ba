"""Training data for a fine-tune: the plugin's examples plus the turns people labelled, cleaned and split.

- Logged turns count when a person corrected the label (`agent feedback N --label L`, the latest
  correction wins) or rated a non-fallback turn good. A turn rated bad and never corrected is left out.
- Every text is redacted (guard.redact) before it is used or written beside a version.
- Duplicates (same text after case and space folding) are merged; when they disagree, a person's
  correction beats the examples file, a newer correction beats an older one, and among examples the
  most frequent label wins. Each conflict is reported.
- Held-out rows come only from the examples file and are chosen by a hash of the text, so every run,
  and every version, is measured on the same rows. Labelled turns always train, repeated LOG_REPEAT
  times so that a handful of corrections outweighs noise among thousands of examples. Turns labelled
  all at once by accepting a proposed group count once: nobody looked at each of them, and a group
  often holds a few messages of other intents.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.text import guard

if TYPE_CHECKING:
    from agent.store import Store

LOG_REPEAT = 3
GROUP_NOTE = "proposal "  # the note of a label given to a whole group of turns at once (agent.review.proposals)
MIN_PER_LABEL_FOR_HOLDOUT = 5


@dataclass
class Row:
    """One training text."""

    text: str
    label: str
    source: str  # "examples" or "log:TURN_ID"
    group: bool = False  # labelled with a whole group of turns (an accepted proposal), not looked at one by one


@dataclass
class TrainSet:
    """Rows to train on and held-out rows to compare versions on, with what cleaning did."""

    train: list[Row]
    holdout: list[Row]
    labels: list[str]
    new_labels: list[str] = field(default_factory=list)
    duplicates: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    redactions: int = 0
    log_rows: int = 0
    dropped_labels: list[str] = field(default_factory=list)
    augmented: list[Row] = field(default_factory=list)  # noisy copies, label-name anchors: trained on but not "learned"
    noise: float = 0.0

    @property
    def fit_rows(self) -> list[Row]:
        """What the model is trained on: the training rows and their noisy copies."""
        return self.train + self.augmented

    def add_noise(self, rate: float, seed: int) -> None:
        """Add one copy of every training row with `rate` of its characters perturbed (agent.text.noise)."""
        from agent.text.noise import noisy

        self.noise = rate
        texts = noisy([r.text for r in self.train], rate, seed)
        self.augmented = [Row(t, r.label, "noise") for t, r in zip(texts, self.train)]

    def holdout_hash(self) -> str:
        """Identifies the held-out rows, so reports can tell when two versions were measured differently."""
        return hashlib.sha256("\n".join(sorted(key(r.text) for r in self.holdout)).encode()).hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts for the report."""
        return {"train_rows": len(self.train), "holdout_rows": len(self.holdout), "labels": len(self.labels),
                "new_labels": self.new_labels, "log_rows": self.log_rows, "duplicates_merged": self.duplicates,
                "conflicts": self.conflicts, "redactions": self.redactions, "holdout_hash": self.holdout_hash(),
                "dropped_labels": self.dropped_labels, "noise": self.noise, "noisy_rows": sum(r.source == "noise" for r in self.augmented),
                "anchor_rows": sum(r.source != "noise" for r in self.augmented)}


def key(text: str) -> str:
    """Text folded for duplicate detection."""
    return " ".join(text.casefold().split())


def in_holdout(text: str, fraction: float) -> bool:
    """Stable membership of the held-out split, decided by the text alone."""
    bucket = int(hashlib.sha256(key(text).encode()).hexdigest()[:8], 16) % 10_000
    return bucket < fraction * 10_000


def logged_rows(store: "Store", plugin: str) -> list[Row]:
    """Turns of a plugin that a person labelled, oldest first, with the label they settled on."""
    rows = []
    for turn in sorted(store.labelled_turns(plugin), key=lambda t: max(f["id"] for f in t["feedback"])):
        label = _resolve_feedback(turn)
        if label:
            rows.append(Row(turn["text"], label, f"log:{turn['id']}", _by_group(turn, label)))
    return rows  # ordered by their latest feedback, so among duplicates the newest correction wins


def _resolve_feedback(turn: dict[str, Any]) -> str | None:
    """The label a person's feedback implies for a turn, or None (also when their last word was "out of scope")."""
    decided = [f for f in turn["feedback"] if f["kind"] in ("label", "good", "out_of_scope")]
    if decided and decided[-1]["kind"] == "out_of_scope":
        return None
    corrections = [f["label"] for f in turn["feedback"] if f["kind"] == "label" and f["label"]]
    if corrections:
        return corrections[-1]
    ratings = [f["kind"] for f in turn["feedback"] if f["kind"] in ("good", "bad")]
    if ratings and ratings[-1] == "good" and turn["label"] and not turn["fallback_reason"]:
        return turn["label"]
    return None


def _by_group(turn: dict[str, Any], label: str) -> bool:
    """Whether the turn's label came with a whole group's (its last correction is a proposal's)."""
    corrections = [f for f in turn["feedback"] if f["kind"] == "label" and f["label"]]
    return bool(corrections) and corrections[-1]["label"] == label and (corrections[-1].get("note") or "").startswith(GROUP_NOTE)


def build(examples: list[tuple[str, str]], logged: list[Row], labels: list[str], holdout: float = 0.1,
          redact: tuple[str, ...] = guard.KINDS) -> TrainSet:
    """Merge, redact (the kinds of personal data named), deduplicate and split."""
    redactions = 0
    rows: list[Row] = []
    for text, label in examples:
        clean, n = guard.redact(text, redact)
        redactions += n
        rows.append(Row(clean, label, "examples"))
    for r in logged:
        clean, n = guard.redact(r.text, redact)
        redactions += n
        rows.append(Row(clean, r.label, r.source, r.group))
    merged, duplicates, conflicts = _dedupe(rows)
    order = list(dict.fromkeys([*labels, *sorted({r.label for r in merged})]))
    train, held = _split(merged, holdout)
    log_rows = [r for r in train if r.source != "examples"]
    train += [r for r in log_rows if not r.group for _ in range(LOG_REPEAT - 1)]  # a group's turns count once
    return TrainSet(train, held, order, [lab for lab in order if lab not in labels], duplicates, conflicts,
                    redactions, len(log_rows))


def _dedupe(rows: list[Row]) -> tuple[list[Row], int, list[dict[str, Any]]]:
    """One row per folded text; conflicting labels resolved as the module says."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(key(r.text), []).append(r)
    out, conflicts = [], []
    for group in groups.values():
        chosen = _choose(group)
        labels = sorted({r.label for r in group})
        if len(labels) > 1:
            conflicts.append({"text": chosen.text, "labels": labels, "chosen": chosen.label,
                              "why": "latest correction" if chosen.source != "examples" else "most frequent in examples"})
        out.append(chosen)
    return out, len(rows) - len(out), conflicts


def _choose(group: list[Row]) -> Row:
    """The row that wins among duplicates."""
    logged = [r for r in group if r.source != "examples"]
    if logged:
        return logged[-1]
    top = Counter(r.label for r in group).most_common(1)[0][0]
    return next(r for r in group if r.label == top)


def _split(rows: list[Row], fraction: float) -> tuple[list[Row], list[Row]]:
    """Held-out rows by hash, from examples only, never emptying a label's training rows."""
    per_label = Counter(r.label for r in rows if r.source == "examples")
    train, held = [], []
    for r in rows:
        eligible = r.source == "examples" and per_label[r.label] >= MIN_PER_LABEL_FOR_HOLDOUT
        (held if eligible and in_holdout(r.text, fraction) else train).append(r)
    trained = {r.label for r in train}
    if any(r.label not in trained for r in held):
        train += [r for r in held if r.label not in trained]
        held = [r for r in held if r.label in trained]
    return train, held
