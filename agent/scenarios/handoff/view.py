"""A handed-over conversation as an operator reads it (rich markup lines), for the command line and the chat app."""

from __future__ import annotations

from typing import Any

from rich.markup import escape


def transcript(found: dict[str, Any]) -> list[str]:
    """The customer's turns (id, predictions, labels) and the person's replies in time order."""
    entries = [(t["created_at"], 0, t) for t in found["turns"]] + [(r["at"], 1, r) for r in found["replies"]]
    lines = []
    for _, kind, e in sorted(entries, key=lambda x: (x[0], x[1])):
        if kind:
            lines.append(f"  [magenta]{escape(e['author'])} (person):[/] {escape(e['text'])}")
            continue
        top = ", ".join(f"{p['label']} {p['probability']:.2f}" for p in (e.get("predictions") or [])[:3])
        labels = [f["label"] for f in e.get("feedback") or [] if f.get("label")]
        mark = f" [green]labelled {escape(labels[-1])}[/]" if labels else ""
        lines.append(f"  [dim]#{e['id']}[/] customer: {escape(e['text'] or '')}  [dim]({escape(top)})[/]{mark}")
        if e.get("reply"):
            lines.append(f"  [cyan]agent:[/] {escape(e['reply'])}")
    return lines


def waited(seconds: float) -> str:
    """12s, 4m, 2.0h."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 3600 else f"{seconds / 3600:.1f}h"
