"""What `agent plugins` shows, read from files alone (no encoder, no model load)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agent.data import read_rows
from agent.errors import AgentError
from agent.manifest import Manifest
from agent.runtime import example_rows, label_list, read_examples
from agent.settings import Settings

if TYPE_CHECKING:
    from agent.hooks import Hooks


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
    from agent.shared import encoder_versions
    from agent.versions import versions_for

    versions = versions_for(settings.models_root, m)
    current = versions.current()
    if current:
        return f"fine-tuned {current} ({_cost(versions.path(current) / 'config.json')})"
    encoder = encoder_versions(settings.home).current()
    if encoder and (settings.home / "encoder" / encoder / "heads" / m.name / "config.json").is_file():
        return f"shared encoder {encoder} (head)"
    head = settings.index_root / m.name / "head" / "config.json"
    if head.is_file():
        try:
            acc = json.loads(head.read_text())["metrics"]["train_accuracy"]
            return f"head, train acc {acc:.2f}"
        except (ValueError, KeyError):
            return "head (unreadable; refitted on first use)"
    return "none yet (fitted on first use)"


def _cost(config: Any) -> str:
    """A version's mode and what it adds to each turn the plugin sees."""
    try:
        mode = json.loads(config.read_text()).get("mode", "head")
    except (OSError, ValueError, AttributeError):
        return "unreadable"
    return f"{mode}: +1 encoder pass a turn" if mode in ("full", "lora") else f"{mode}: no extra pass"
