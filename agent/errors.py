"""Errors the core raises; only the CLI and the TUI turn them into messages."""

from __future__ import annotations


class AgentError(Exception):
    """Base class: a problem a person can fix, described so they can."""


class InputError(AgentError):
    """A message that cannot be handled (empty, too long, binary)."""


class PluginError(AgentError):
    """A plugin folder, manifest or data file is broken."""


class DataError(PluginError):
    """A CSV or JSONL data file is missing or malformed."""


class StoreError(AgentError):
    """The SQLite database is locked, damaged or unreadable."""


class ModelError(AgentError):
    """A saved model or index cannot be loaded or does not fit."""
