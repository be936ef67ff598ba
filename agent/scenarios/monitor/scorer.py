"""Scores for feed items and chat turns: label probabilities and a topic, from one encoder pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from agent.data import read_rows
from agent.errors import DataError
from agent.scenarios.monitor.config import OTHER, MonitorConfig

if TYPE_CHECKING:
    import numpy as np

    from agent.encoder import Encoder
    from agent.manifest import Manifest
    from agent.runtime import PluginRuntime


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
    """One unit centroid per topic (its description and examples, embedded by one encoder); nearest wins."""

    def __init__(self, names: list[str], centroids: "np.ndarray", min_similarity: float) -> None:
        self.names, self.centroids, self.min_similarity = names, centroids, min_similarity

    @classmethod
    def build(cls, texts: dict[str, list[str]], encoder: "Encoder", min_similarity: float) -> "TopicIndex":
        """Embed each topic's texts and keep their normalised mean."""
        import numpy as np

        names = list(texts)
        rows = [encoder.encode(texts[name]).mean(axis=0) for name in names]
        centroids = np.array(rows, dtype=np.float32).reshape(len(names), encoder.dim)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        return cls(names, centroids / np.maximum(norms, 1e-9), min_similarity)

    def assign(self, vectors: "np.ndarray") -> list[tuple[str, float]]:
        """(topic, cosine) per row; 'other' when no topic is close enough or none is declared."""
        if not self.names:
            return [(OTHER, 0.0)] * len(vectors)
        sims = vectors @ self.centroids.T
        best = sims.argmax(axis=1)
        return [(self.names[j] if sims[i, j] >= self.min_similarity else OTHER, round(float(sims[i, j]), 4))
                for i, j in enumerate(best)]


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
            self._topics = saved or TopicIndex.build(topic_texts(m, self.config.topic_column), self.encoder,
                                                     self.config.min_topic_similarity)
            self._topics_for = self.encoder
        return self._topics

    def score(self, texts: Sequence[str], topics: Sequence[str | None] | None = None) -> list[Score]:
        """One Score per text; a given topic (from the feed) is kept, otherwise the nearest is assigned.

        One encoder pass, unless the fine-tuned model mixes in its frozen-encoder probe (then two).
        """
        from agent.tuned import combine

        model = self.runtime.classifier
        vectors = self.encoder.encode(list(texts), batch_size=64)
        probs = model.head.predict_proba(vectors)
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

    They are saved in the plugin's index folder and rebuilt only when the topics, their examples or
    the encoder change, so a one-shot `agent ask` does not re-encode them.
    """
    import json

    from agent.data import file_hash
    from agent.retrieval import ensure_index

    if not (manifest.tables.get("topics") or {}):
        return None
    column = manifest.tables.get("monitor").topic_column if manifest.tables.get("monitor") else "topic"
    threshold = manifest.tables.get("monitor").min_topic_similarity if manifest.tables.get("monitor") else 0.15
    texts = topic_texts(manifest, column)
    expect = {"encoder": encoder.fingerprint, "data_hash": file_hash(manifest.path, extra=json.dumps(texts))}

    def build() -> tuple["np.ndarray", dict[str, Any]]:
        built = TopicIndex.build(texts, encoder, threshold)
        return built.centroids, {"ids": built.names, "labels": built.names}

    saved = ensure_index(index_dir, "topics", expect, build, notify)
    return TopicIndex(list(saved.ids), saved.vectors(), threshold)
