"""The FAQ responder, a default plugin: a plugin with a [retrieval] corpus answers with the best entry
for the predicted label. Every other kind of responder answers first (this hook runs last)."""

from __future__ import annotations

from typing import Any

from agent.plugin.hookspecs import hookimpl


@hookimpl(trylast=True)
def respond(turn: Any) -> dict[str, Any] | None:
    """The answer of the corpus entry found for the label, unless the agent falls back."""
    if turn.fallback_reason is not None or turn.best is None:
        return None
    return {"text": turn.best.answer, "answer_id": turn.best.id}
