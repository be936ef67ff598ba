"""A fine-tuned classifier as the agent uses it: an optional tuned encoder plus a label head.

Mode `head` reads the shared embedding the turn already has. Modes `full` and `lora` carry their
own encoder (`encoder/` holds all weights; `adapter/` holds LoRA weights merged into the packaged
encoder at load time), so classifying costs one more forward pass with the tuned weights; their
probabilities are averaged with the frozen-encoder head they started from (`probe/`).
A version folder holds `model.safetensors` + `config.json` (the head, written last) and, for the
encoder modes, that encoder; nothing is pickled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from agent.errors import ModelError
from agent.models.classifier import TextClassifier

if TYPE_CHECKING:
    import numpy as np

    from agent.models.encoder import Encoder

ENCODER_DIR, ADAPTER_DIR, PROBE_DIR = "encoder", "adapter", "probe"
TUNED_WEIGHT = 0.6  # chosen on BANKING77's held-out rows (0.3 to 1.0 tried), never on its test set
PROBE_WEIGHTS = (0.6, 0.8, 1.0)  # a fine-tune picks one on its own held-out rows (config "tuned_weight")


@dataclass
class TunedClassifier:
    """A head, and for `full` / `lora` the encoder it was trained with."""

    head: TextClassifier
    encoder: "Encoder | None" = None
    adapter: Any = None  # (LoRA weights, peft config) of a freshly trained `lora` model
    probe: TextClassifier | None = None  # the frozen-encoder head the training started from

    @property
    def labels(self) -> list[str]:
        """Label order of the probability columns."""
        return self.head.labels

    @property
    def mode(self) -> str:
        """head, full or lora."""
        return self.head.mode

    @property
    def config(self) -> dict:
        """The saved config (labels, metrics, versions, checksums)."""
        return self.head.config

    def embed(self, texts: Sequence[str], vectors: "np.ndarray | None") -> "np.ndarray":
        """The embeddings the head reads: the turn's own, or the tuned encoder's."""
        if self.encoder is None:
            if vectors is None:
                raise ModelError("a head-mode model needs the shared embeddings")
            return vectors
        if vectors is not None and len(texts) != len(vectors):
            raise ModelError(f"{len(texts)} texts for {len(vectors)} embeddings; a tuned model needs the texts")
        return self.encoder.encode(list(texts))

    def predict_proba(self, texts: Sequence[str], vectors: "np.ndarray | None" = None) -> "np.ndarray":
        """Label probabilities per text, columns in `labels` order.

        A tuned encoder's head is combined with the frozen-encoder probe, which reads the shared
        embedding the turn already has: two views of the text that err differently, for no extra pass.
        The combination is a weighted geometric mean, `tuned_weight` on the tuned head (chosen by the
        fine-tune on its held-out rows; TUNED_WEIGHT for older versions). At 1.0 the probe is unused.
        """
        probs = self.head.predict_proba(self.embed(texts, vectors))
        if not self.uses_probe or vectors is None:
            return probs
        return combine(probs, self.probe.predict_proba(vectors), self.tuned_weight)  # type: ignore[union-attr]

    @property
    def tuned_weight(self) -> float:
        """Weight of the tuned head in the combination with the probe."""
        return float(self.config.get("tuned_weight", TUNED_WEIGHT))

    @property
    def uses_probe(self) -> bool:
        """Whether predictions mix in the frozen-encoder probe (which reads the shared embedding)."""
        return self.probe is not None and self.tuned_weight < 1.0 and self.probe.labels == self.head.labels

    def save(self, folder: Path) -> None:
        """Write the encoder (if any) first, then the head and config, whose checksum seals the version."""
        folder = Path(folder)
        if self.encoder is not None and self.mode == "full":
            self.encoder.model.save_pretrained(folder / ENCODER_DIR, safe_serialization=True)
            self.encoder.tokenizer.save_pretrained(folder / ENCODER_DIR)
            self.head.config["encoder_sha256"] = file_sha256(folder / ENCODER_DIR / "model.safetensors")
        elif self.adapter is not None and self.mode == "lora":
            from safetensors.torch import save_file

            state, config = self.adapter
            (folder / ADAPTER_DIR).mkdir(parents=True, exist_ok=True)
            config.save_pretrained(str(folder / ADAPTER_DIR))
            save_file(state, str(folder / ADAPTER_DIR / "adapter_model.safetensors"))
            self.head.config["encoder_sha256"] = file_sha256(folder / ADAPTER_DIR / "adapter_model.safetensors")
        if self.probe is not None and self.encoder is not None:
            self.probe.save(folder / PROBE_DIR)
        self.head.save(folder)

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> "TunedClassifier":
        """Load a version folder; a missing or altered encoder raises ModelError."""
        from agent.models.encoder import Encoder

        folder = Path(folder)
        head = TextClassifier.load(folder)
        if head.mode in ("head", "shared"):  # a shared head reads the home encoder's embedding (agent.models.home_encoder)
            return cls(head)
        weights = folder / (ENCODER_DIR + "/model.safetensors" if head.mode == "full" else ADAPTER_DIR + "/adapter_model.safetensors")
        if not weights.is_file() or file_sha256(weights) != head.config.get("encoder_sha256"):
            raise ModelError(f"{folder}: the {head.mode} encoder weights are missing or do not match config.json; "
                             "roll back (agent finetune DIR --rollback) or fine-tune again")
        probe = TextClassifier.load(folder / PROBE_DIR) if (folder / PROBE_DIR).is_dir() else None
        if head.mode == "full":
            return cls(head, Encoder(folder / ENCODER_DIR, device=device), probe=probe)
        return cls(head, Encoder(device=device, adapter=folder / ADAPTER_DIR), probe=probe)


def combine(tuned: "np.ndarray", probe: "np.ndarray", weight: float) -> "np.ndarray":
    """Weighted geometric mean of two probability matrices, renormalised per row."""
    import numpy as np

    logits = weight * np.log(tuned + 1e-12) + (1 - weight) * np.log(probe + 1e-12)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def file_sha256(path: Path) -> str:
    """Checksum of a weights file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
