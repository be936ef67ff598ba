"""What a monitoring observer adds to a chat turn: the topic, and a flag on strongly negative customers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agent.scenarios.monitor.scorer import TopicIndex, topic_texts

if TYPE_CHECKING:
    import numpy as np

    from agent.encoder import Encoder
    from agent.manifest import Manifest


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


def flag(manifest: "Manifest", note: dict[str, Any]) -> dict[str, Any] | None:
    """A flag for a turn whose label is the watched one with at least `flag_confidence`, else None."""
    config = manifest.tables.get("monitor")
    if config is None or note.get("label") != config.label or note.get("confidence", 0.0) < config.flag_confidence:
        return None
    return {"plugin": manifest.name, "flag": f"strong_{config.label}", "confidence": note["confidence"],
            "offer_human": config.offer_human}


def with_handoff(text: str, handoff: str) -> str:
    """The reply with the hand-off line added, once."""
    return text if not handoff or handoff in text else f"{text} {handoff}"
