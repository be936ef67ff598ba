"""The home's shared encoder: one encoder fine-tuned for every plugin at once, so a turn costs one pass.

Mode `shared` (the default of `agent finetune`) trains the packaged encoder on every plugin's
examples and labelled turns together, one head per plugin. The result is a version of the home's
encoder, `HOME/encoder/vN/`, laid out like a plugin's versions (agent.models.versions):
  vN/encoder/          the tuned weights and tokenizer
  vN/heads/NAME/       the head each plugin was trained with (and the turns it learned)
  vN/config.json       the fingerprint every index and head built with this encoder records
`HOME/encoder/current` names the version in use; without it the packaged encoder is used. Every
part of a turn (routing, retrieval, each classifier, each observer) reads the one embedding this
encoder makes; indexes built with another encoder are rebuilt on first use.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ModelError
from agent.models.versions import Versions

if TYPE_CHECKING:
    from agent.models.encoder import Encoder
    from agent.settings import Settings

ENCODER_DIR, HEADS_DIR, CONFIG = "encoder", "heads", "config.json"
_lock = threading.Lock()
_loaded: dict[tuple[str, str, str], "Encoder"] = {}


def encoder_versions(home: Path) -> Versions:
    """The versions of a home's shared encoder (HOME/encoder/)."""
    return Versions(Path(home) / "encoder")


def home_encoder(settings: "Settings", device: str = "auto", base: "Encoder | None" = None) -> "Encoder":
    """The encoder this home's turns use: its promoted shared version, else `base` (the packaged one)."""
    versions = encoder_versions(settings.home)
    current = versions.current()
    if current is None:
        if base is not None:
            return base
        from agent.models.encoder import shared_encoder

        return shared_encoder(device)
    return load_version(versions.path(current), device if base is None else base.device)


def load_version(folder: Path, device: str = "auto") -> "Encoder":
    """A shared encoder version (loaded once per process and device); damaged weights raise ModelError."""
    from agent.models.encoder import Encoder, pick_device

    config = read_config(folder)
    key = (str(folder.resolve()), pick_device(device), str(config.get("encoder_sha256")))  # a reused name is another model
    with _lock:
        if key not in _loaded:
            weights = folder / ENCODER_DIR / "model.safetensors"
            if not weights.is_file() or sha256(weights) != config.get("encoder_sha256"):
                raise ModelError(f"{folder}: the shared encoder's weights are missing or do not match {CONFIG}; "
                                 "roll back (agent finetune PLUGIN --rollback) or fine-tune again")
            for old in [k for k in _loaded if k[1] == key[1]]:  # one tuned encoder per device stays loaded
                del _loaded[old]
            _loaded[key] = Encoder(folder / ENCODER_DIR, device=device, tag=config["fingerprint"])
        return _loaded[key]


def read_config(folder: Path) -> dict[str, Any]:
    """A version's config.json; an unreadable one raises ModelError naming the fix."""
    try:
        config = json.loads((folder / CONFIG).read_text())
        config["fingerprint"]  # noqa: B018 - a config without it is not a shared encoder version
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{folder / CONFIG}: not a readable shared encoder version ({exc}); "
                         "roll back (agent finetune PLUGIN --rollback) or fine-tune again") from exc
    return config


def head_folder(home: Path, plugin: str, fingerprint: str) -> Path | None:
    """The head the home's current shared encoder trained for a plugin, when it has one and `fingerprint` is its."""
    versions = encoder_versions(home)
    current = versions.current()
    if current is None:
        return None
    folder = versions.path(current) / HEADS_DIR / plugin
    try:
        if read_config(versions.path(current))["fingerprint"] != fingerprint:
            return None
    except ModelError:
        return None
    return folder if (folder / CONFIG).is_file() else None


def sha256(path: Path) -> str:
    """Checksum of a weights file (as a tuned version's config records it)."""
    from agent.models.finetuned import file_sha256

    return file_sha256(path)
