"""What `agent plugins` shows, read from files alone (no encoder, no model load)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError
from agent.plugin.data import read_rows
from agent.plugin.loaded import example_rows, label_list, read_examples
from agent.plugin.manifest import Manifest
from agent.settings import Settings

if TYPE_CHECKING:
    from agent.plugin.hooks import Hooks


def summarize(manifests: list[Manifest], settings: Settings, hooks: "Hooks | None" = None) -> list[dict[str, Any]]:
    """One row per plugin; a plugin whose data cannot be read gets an 'error' instead."""
    return [_row(m, settings, hooks.implemented(m.name) if hooks else []) for m in manifests]


def _row(m: Manifest, settings: Settings, hooks: list[str]) -> dict[str, Any]:
    """Counts and model state of one plugin."""
    row: dict[str, Any] = {"name": m.name, "role": m.role, "folder": str(m.folder), "description": m.description,
                           "source": m.source or f"folder {m.folder}", "hooks": hooks}
    if m.role == "observer" and not m.examples and not any(m.labels.values()):
        return {**row, "labels": 0, "examples": 0, "corpus": 0, "label_names": [], "model": "hooks only"}
    try:
        examples = read_examples(m)
        labels = label_list(m, examples)
        corpus = read_rows(m.data_file(m.retrieval.corpus, "retrieval.corpus"), [m.retrieval.id_column]) if m.retrieval else []
    except AgentError as exc:
        return {**row, "error": str(exc)}
    row.update({"labels": len(labels), "examples": len(example_rows(m)), "corpus": len(corpus),
                "label_names": sorted(labels), "model": model_state(m, settings)})
    return row


def model_state(m: Manifest, settings: Settings) -> str:
    """'fine-tuned vN (mode, its cost per turn)', 'shared encoder vN', 'head (cached)' or 'none yet'."""
    from agent.models.home_encoder import encoder_versions
    from agent.models.versions import versions_for

    versions = versions_for(settings.models_root, m)
    current = versions.current()
    encoder = encoder_versions(settings.home).current()
    shared_head = bool(encoder) and (settings.home / "encoder" / str(encoder) / "heads" / m.name / "config.json").is_file()
    if current:
        made_for = _config(versions.path(current) / "config.json").get("encoder_version")
        if made_for and made_for != encoder and shared_head:  # a later shared run trained this plugin's head too
            return f"shared encoder {encoder} (head; its own {current} was made for {made_for})"
        return f"fine-tuned {current} ({_cost(versions.path(current) / 'config.json')})"
    if shared_head:
        return f"shared encoder {encoder} (head)"
    head = settings.index_root / m.name / "head" / "config.json"
    if head.is_file():
        try:
            acc = json.loads(head.read_text())["metrics"]["train_accuracy"]
            return f"head, train acc {acc:.2f}"
        except (ValueError, KeyError):
            return "head (unreadable; refitted on first use)"
    return "none yet (fitted on first use)"


def _config(path: Any) -> dict[str, Any]:
    """A version's config.json, {} when unreadable."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _cost(config: Any) -> str:
    """A version's mode and what it adds to each turn the plugin sees."""
    if not config.is_file() or not _config(config):
        return "unreadable"
    mode = _config(config).get("mode", "head")
    return f"{mode}: +1 encoder pass a turn" if mode in ("full", "lora") else f"{mode}: no extra pass"
