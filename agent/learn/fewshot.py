"""Training with few examples per label (mode `shared`): what changes when a plugin has little data.

A plugin whose labels have few training rows each (median at most FEW_ROWS) trains with batches of
a few labels and several rows of each, and a supervised contrastive term beside the cross-entropy:
each row is drawn towards the other rows of its label and away from the rest, which uses the few
rows far better than the cross-entropy alone. A label without a description also gets its name,
spelt as words, as one more training row (an anchor): names such as `card_arrival` say what the
label means.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from typing import TYPE_CHECKING

from agent.learn.trainset import Row, key

if TYPE_CHECKING:
    from agent.learn.trainset import TrainSet
    from agent.plugin.manifest import Manifest

FEW_ROWS = 20  # median training rows per label at or below which a plugin trains as a few-shot one
ANCHOR = "label name"  # the source of a label-name row: trained on, never written as learned
_WORD = re.compile(r"[^\W\d_]{2,}")


def is_few(data: "TrainSet") -> bool:
    """Whether a plugin's labels have few training rows each."""
    counts = Counter(label for _, label in {(key(r.text), r.label) for r in data.train})  # a labelled turn's repeats count once
    return bool(counts) and statistics.median(counts.values()) <= FEW_ROWS


def name_anchors(manifest: "Manifest", data: "TrainSet") -> list[Row]:
    """One row per label without a description whose name holds words: the name spelt as words."""
    seen = {r.text.casefold() for r in data.train}
    out = []
    for label in data.labels:
        if (manifest.labels.get(label) or "").strip() or not _WORD.search(label):
            continue
        text = " ".join(re.split(r"[_\-./\s]+", label)).strip()
        if text and text.casefold() not in seen:
            out.append(Row(text, label, ANCHOR))
    return out
