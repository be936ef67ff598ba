"""Scores for feed items and chat turns: label probabilities and a topic, from one encoder pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from agent.errors import DataError
from agent.plugin.data import read_rows
from agent.scenarios.monitor.config import OTHER, MonitorConfig, Topics

if TYPE_CHECKING:
    import numpy as np

    from agent.models.encoder import Encoder
    from agent.plugin.loaded import PluginRuntime
    from agent.plugin.manifest import Manifest


TOPICS_FORMAT = 2  # saved topic indexes of an older layout (no thresholds) are rebuilt
MIN_CALIBRATION = 5  # example sentences a topic needs for a threshold calibrated on them


@dataclass
class Score:
    """What the monitor makes of one text."""

    label: str
    confidence: float
    watched: float  # probability of the watched label (e.g. negative)
    topic: str
    topic_score: float


def topic_texts(m: "Manifest", column: str) -> dict[str, list[str]]:
    """Per topic: its description, then the examples whose `column` names it (rows naming no known topic are refused)."""
    out = {name: [desc] for name, desc in (m.tables.get("topics") or {}).items()}
    if not m.examples or not out:
        return out
    path = m.data_file(m.examples, "data.examples")
    rows = read_rows(path, [m.text_column])
    if rows and column not in rows[0]:
        return out
    bad = [(i, r[column]) for i, r in enumerate(rows, start=2) if r.get(column) and r[column] not in out]
    if bad:
        shown = ", ".join(f"{line} ('{t}')" for line, t in bad[:10])
        raise DataError(f"{path}: topic(s) not declared in [topics] of {m.path}, line(s) {shown}; add them there or fix the rows")
    for r in rows:
        if r.get(column):
            out[r[column]].append(r[m.text_column])
    return out


class TopicIndex:
    """One unit centroid and one threshold per topic; an item goes to the nearest topic of its domain (all topics
    when it has none), or to 'other' when it is less similar to that topic than the topic's threshold."""

    def __init__(self, names: list[str], centroids: "np.ndarray", thresholds: Sequence[float],
                 domains: dict[str, list[str]] | None = None) -> None:
        self.names, self.centroids, self.thresholds = names, centroids, [float(t) for t in thresholds]
        self.domains = domains or {}  # domain -> its topic names

    @classmethod
    def build(cls, texts: dict[str, list[str]], encoder: "Encoder", floor: float, coverage: float = 0.0,
              domains: dict[str, list[str]] | None = None) -> "TopicIndex":
        """Embed each topic's texts; keep their normalised mean and the threshold calibrated on them."""
        import numpy as np

        names = list(texts)
        embedded = [encoder.encode(texts[name]) for name in names]
        centroids = np.array([v.mean(axis=0) for v in embedded], dtype=np.float32).reshape(len(names), encoder.dim)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        return cls(names, centroids / np.maximum(norms, 1e-9), [calibrate(v, floor, coverage) for v in embedded], domains)

    def assign(self, vectors: "np.ndarray", domains: Sequence[str | None] | None = None) -> list[tuple[str, float]]:
        """(topic, cosine) per row, among the topics of the row's domain; 'other' below the topic's threshold."""
        import numpy as np

        if not self.names:
            return [(OTHER, 0.0)] * len(vectors)
        sims = vectors @ self.centroids.T
        if domains is not None and self.domains:
            masks = {d: np.array([d not in self.domains or n in self.domains[d] for n in self.names]) for d in set(domains)}
            sims = np.where(np.stack([masks[d] for d in domains]), sims, -np.inf)
        best = sims.argmax(axis=1)
        return [(self.names[j] if sims[i, j] >= self.thresholds[j] else OTHER, round(float(sims[i, j]), 4))
                for i, j in enumerate(best)]


def calibrate(vectors: "np.ndarray", floor: float, coverage: float) -> float:
    """The similarity that `coverage` of a topic's own texts reach to the centroid of the rest (leave one out),
    never below `floor`; `floor` alone when calibration is off or the topic has too few examples."""
    import numpy as np

    if coverage <= 0.0 or len(vectors) < MIN_CALIBRATION + 1:  # the description plus its examples
        return floor
    rest = vectors.sum(axis=0, keepdims=True) - vectors
    rest /= np.maximum(np.linalg.norm(rest, axis=1, keepdims=True), 1e-9)
    held_out = (rest * vectors).sum(axis=1)
    return max(floor, round(float(np.quantile(held_out, 1.0 - coverage)), 4))


def build_topics(manifest: "Manifest", encoder: "Encoder") -> TopicIndex:
    """The plugin's topic index in this encoder's space, with the thresholds and domains its tables declare."""
    config = manifest.tables.get("monitor") or MonitorConfig()
    topics = manifest.tables.get("topics") or Topics({})
    return TopicIndex.build(topic_texts(manifest, config.topic_column), encoder, config.min_topic_similarity,
                            config.topic_coverage, topics.domains)


def turn_domains(manifest: "Manifest", plugins: Sequence[str | None]) -> list[str | None]:
    """The topic domain of each chat turn, from the plugin that answered it ([monitor] domains; None: all topics)."""
    config = manifest.tables.get("monitor")
    mapping = config.domains if config is not None else {}
    return [mapping.get(p) if p else None for p in plugins]


class Scorer:
    """Encodes a batch once with the plugin's model (tuned encoder if it has one) and scores it."""

    def __init__(self, runtime: "PluginRuntime") -> None:
        self.runtime = runtime
        self.config = runtime.manifest.tables.get("monitor") or MonitorConfig()
        if self.config.label not in runtime.labels:
            raise DataError(f"{runtime.manifest.path}: [monitor] label '{self.config.label}' is not one of the plugin's "
                            f"labels {runtime.labels}; set it to the label to watch")
        self._topics: TopicIndex | None = None
        self._topics_for: object = None

    @property
    def encoder(self) -> "Encoder":
        """The encoder whose embeddings the classifier reads: the tuned one, else the shared one."""
        return self.runtime.classifier.encoder or self.runtime.encoder

    @property
    def topics(self) -> TopicIndex:
        """Topic centroids in the current encoder's space: the chat's saved ones for the shared encoder,
        built anew for a fine-tuned encoder (and again when a new model is picked up)."""
        if self._topics is None or self._topics_for is not self.encoder:
            m, shared = self.runtime.manifest, self.encoder is self.runtime.encoder
            saved = chat_topics(m, self.encoder, self.runtime.index_dir, self.runtime.notify) if shared else None
            self._topics = saved or build_topics(m, self.encoder)
            self._topics_for = self.encoder
        return self._topics

    def score(self, texts: Sequence[str], topics: Sequence[str | None] | None = None) -> list[Score]:
        """One Score per text; a given topic (from the feed) is kept, otherwise the nearest is assigned.

        One encoder pass, unless the fine-tuned model mixes in its frozen-encoder probe (then two).
        """
        from agent.models.finetuned import combine

        model = self.runtime.classifier
        vectors = self.encoder.encode(list(texts), batch_size=64)
        probs = self.runtime.with_neighbours(model.head.predict_proba(vectors), vectors)
        if model.encoder is not None and model.uses_probe:
            base = self.runtime.encoder.encode(list(texts), batch_size=64)
            probs = combine(probs, model.probe.predict_proba(base), model.tuned_weight)  # type: ignore[union-attr]
        return self.scores(probs, vectors, topics)

    def scores(self, probs: "np.ndarray", vectors: "np.ndarray", topics: Sequence[str | None] | None = None) -> list[Score]:
        """Scores from label probabilities (in the classifier's label order) and the embeddings topics are read from."""
        labels = self.runtime.classifier.labels
        watched = labels.index(self.config.label) if self.config.label in labels else None
        assigned = self.topics.assign(vectors)
        out = []
        for i, p in enumerate(probs):
            top = int(p.argmax())
            topic, sim = (topics[i], 1.0) if topics and topics[i] else assigned[i]
            out.append(Score(labels[top], round(float(p[top]), 4), round(float(p[watched]), 4) if watched is not None else 0.0,
                             topic, sim))
        return out


def chat_topics(manifest: "Manifest", encoder: "Encoder", index_dir: Path,
                notify: Callable[[str], None] | None = None) -> TopicIndex | None:
    """Topic centroids in the shared encoder's space, for a plugin with [topics] (None without).

    They are saved (with their thresholds) in the plugin's index folder and rebuilt only when the
    plugin.toml, the topics' examples or the encoder change, so a one-shot `agent ask` does not
    re-encode them.
    """
    import json

    from agent.models.retrieval import ensure_index
    from agent.plugin.data import file_hash
    from agent.text.spelling import READING

    if not (manifest.tables.get("topics") or {}):
        return None
    column = manifest.tables.get("monitor").topic_column if manifest.tables.get("monitor") else "topic"
    texts = topic_texts(manifest, column)
    expect = {"encoder": encoder.fingerprint, "data_hash": file_hash(manifest.path, extra=json.dumps(texts) + READING),
              "format": TOPICS_FORMAT}

    def build() -> tuple["np.ndarray", dict[str, Any]]:
        built = build_topics(manifest, encoder)
        return built.centroids, {"ids": built.names, "labels": built.names, "thresholds": built.thresholds,
                                 "domains": built.domains}

    saved = ensure_index(index_dir, "topics", expect, build, notify)
    return TopicIndex(list(saved.ids), saved.vectors(), saved.meta["thresholds"], saved.meta.get("domains"))
