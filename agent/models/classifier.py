"""TextClassifier: a label head over sentence embeddings; fit / predict_proba / save / load.

Mode `head` keeps the encoder frozen and reads the embedding the turn already has, so it costs no
extra forward pass. The fine-tuning modes (`full`, `lora`) train the encoder too and store it beside
the head; they reuse this class's head, labels and file format.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from agent.errors import ModelError
from agent.models.retrieval import atomic_write

if TYPE_CHECKING:
    import numpy as np

MODES = ("shared", "head", "full", "lora")
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def library_versions() -> dict[str, str]:
    """Versions of the libraries that wrote a model, recorded in its config."""
    import importlib.metadata as md

    out = {}
    for pkg in ("agent", "torch", "transformers", "numpy", "faiss-cpu"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


@dataclass
class TextClassifier:
    """Softmax head: probabilities = softmax(embedding @ weight.T + bias)."""

    labels: list[str]
    weight: "np.ndarray"
    bias: "np.ndarray"
    mode: str = "head"
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        embeddings: "np.ndarray",
        labels: Sequence[str],
        label_order: Sequence[str] | None = None,
        c: float = 16.0,
        max_iter: int = 300,
        base_model: str = "",
        data_hash: str = "",
    ) -> "TextClassifier":
        """Fit a multinomial logistic regression on frozen embeddings (L-BFGS, L2 like sklearn's C)."""
        import numpy as np

        order = list(label_order) if label_order else sorted(set(labels))
        missing = sorted(set(labels) - set(order))
        if missing:
            raise ModelError(f"labels {missing} appear in the data but not in the label list")
        if len(order) < 2:
            raise ModelError(f"a classifier needs at least 2 labels, found {order}")
        y = np.array([order.index(label) for label in labels], dtype=np.int64)
        weight, bias = _train_softmax(np.asarray(embeddings, dtype=np.float32), y, len(order), c, max_iter)
        model = cls(order, weight, bias, "head")
        acc = float((model.predict_proba(embeddings).argmax(1) == y).mean())
        model.config = {"base_model": base_model, "data_hash": data_hash, "metrics": {"train_accuracy": acc, "n": len(y)}, "c": c}
        return model

    def predict_proba(self, embeddings: "np.ndarray") -> "np.ndarray":
        """Label probabilities per row, columns in `labels` order."""
        import numpy as np

        logits = np.asarray(embeddings, dtype=np.float32) @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, folder: Path) -> None:
        """safetensors weights, then a JSON config naming their checksum (written last)."""
        from safetensors.numpy import save

        blob = save({"head.weight": self.weight, "head.bias": self.bias})
        config = {
            **self.config,
            "labels": self.labels,
            "mode": self.mode,
            "versions": library_versions(),
            "created_at": time.time(),
            "weights_sha256": hashlib.sha256(blob).hexdigest(),
        }
        atomic_write(Path(folder) / WEIGHTS, blob)
        atomic_write(Path(folder) / CONFIG, json.dumps(config, indent=2).encode())

    @classmethod
    def load(cls, folder: Path) -> "TextClassifier":
        """Load a saved classifier; a missing, partial or mismatched one raises ModelError."""
        from safetensors.numpy import load

        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG).read_text())
            blob = (folder / WEIGHTS).read_bytes()
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder}: cannot read the saved model ({exc}); rebuild it") from exc
        if hashlib.sha256(blob).hexdigest() != config.get("weights_sha256"):
            raise ModelError(f"{folder}: {WEIGHTS} does not match {CONFIG} (partial write?); rebuild it")
        tensors = load(blob)
        return cls(config["labels"], tensors["head.weight"], tensors["head.bias"], config.get("mode", "head"), config)


def _train_softmax(x: "np.ndarray", y: "np.ndarray", n_labels: int, c: float, max_iter: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Full-batch L-BFGS on mean cross-entropy + ||W||^2 / (2 C N), deterministic."""
    import torch

    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    linear = torch.nn.Linear(x.shape[1], n_labels)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    l2 = 1.0 / (2.0 * c * len(y))
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> "torch.Tensor":
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(xt), yt) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return linear.weight.detach().numpy().copy(), linear.bias.detach().numpy().copy()
