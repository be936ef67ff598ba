"""TextClassifier and FAISS indexes: save/load round trips, checksums, and rebuilds when data changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.errors import ModelError
from agent.models.classifier import TextClassifier
from agent.models.encoder import Encoder
from agent.models.retrieval import VectorIndex
from agent.reply.agent import Agent
from agent.settings import Settings


def test_head_fits_saves_and_loads(tmp_path: Path, encoder: Encoder) -> None:
    texts = ["block my card", "my card is lost", "when do you open", "opening hours please"]
    labels = ["card", "card", "hours", "hours"]
    model = TextClassifier.fit(encoder.encode(texts), labels, base_model=encoder.fingerprint, data_hash="abc")
    probe = encoder.encode(["I lost my card", "what time do you open?"])
    assert [model.labels[i] for i in model.predict_proba(probe).argmax(1)] == ["card", "hours"]
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["labels"] == ["card", "hours"] and config["data_hash"] == "abc" and config["mode"] == "head"
    assert {"torch", "transformers", "numpy"} <= set(config["versions"])
    loaded = TextClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_proba(probe), model.predict_proba(probe), rtol=1e-6)
    assert not list((tmp_path / "m").glob("*.pkl"))


def test_tampered_weights_are_refused(tmp_path: Path, encoder: Encoder) -> None:
    model = TextClassifier.fit(encoder.encode(["a card", "the hours"]), ["card", "hours"])
    model.save(tmp_path / "m")
    with open(tmp_path / "m" / "model.safetensors", "ab") as fh:
        fh.write(b"junk")
    with pytest.raises(ModelError, match="does not match config.json"):
        TextClassifier.load(tmp_path / "m")


def test_index_is_rebuilt_when_data_changes_and_never_used_stale(agent: Agent, settings: Settings, encoder: Encoder) -> None:
    rt = agent.runtimes["shop"]
    folder = rt.index_dir
    first = json.loads((folder / "examples.json").read_text())
    assert first["encoder"] == encoder.fingerprint and first["count"] == 15 + 3  # 15 rows + 3 label descriptions
    with open(rt.manifest.folder / "examples.csv", "a") as fh:
        fh.write("where is my parcel,delivery\n")
    text = (rt.manifest.folder / "plugin.toml").read_text().replace("[data]", 'delivery = "Parcels"\n\n[data]')
    (rt.manifest.folder / "plugin.toml").write_text(text)
    fresh = Agent(settings, encoder=encoder).runtimes["shop"]
    assert fresh.examples_index.index.ntotal == 16 + 4 and "delivery" in fresh.classifier.labels
    assert fresh.examples_index.meta["data_hash"] != first["data_hash"]


def test_corrupt_index_file_is_rebuilt(agent: Agent, settings: Settings, encoder: Encoder) -> None:
    folder = agent.runtimes["shop"].index_dir
    (folder / "corpus.faiss").write_bytes(b"garbage")
    assert VectorIndex.load(folder, "corpus", {}) is None
    rebuilt = Agent(settings, encoder=encoder).runtimes["shop"]
    assert rebuilt.corpus_index.index.ntotal == 6
    assert VectorIndex.load(folder, "corpus", {}) is not None


def test_head_is_cached_between_agents(agent: Agent, settings: Settings, encoder: Encoder) -> None:
    assert agent.runtimes["shop"].model_state == "head (fitted now)"
    assert Agent(settings, encoder=encoder).runtimes["shop"].model_state == "head (cached)"
