"""Items and past interactions, read from a recommender plugin's CSV files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import PluginError
from agent.plugin.data import read_rows

KINDS = {"like", "dislike", "click"}


@dataclass
class Item:
    """One thing that can be recommended."""

    id: str
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()
    category: str = ""
    kind: str = ""
    price: str = ""

    @property
    def text(self) -> str:
        """What is embedded: title, category, tags and description."""
        head = f"{self.title} ({self.category})" if self.category else self.title
        tags = f" Tags: {', '.join(self.tags)}." if self.tags else ""
        return f"{head}. {self.description}{tags}".strip()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "title": self.title, "category": self.category, "kind": self.kind, "price": self.price,
                "tags": list(self.tags), "description": self.description}


def read_items(path: Path) -> list[Item]:
    """The items of `path` (id and title required; kind, category, description, tags, price optional)."""
    rows = read_rows(path, ["id", "title"], hint="an items file needs id,title and may add description,tags,category,kind,price")
    items: list[Item] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, start=1):
        item_id = row["id"].strip()
        if item_id in seen:
            raise PluginError(f"{path}: item id '{item_id}' is used by rows {seen[item_id]} and {n}; ids must be unique")
        seen[item_id] = n
        tags = tuple(t.strip().lower() for t in (row.get("tags") or "").replace(",", ";").split(";") if t.strip())
        items.append(Item(item_id, row["title"].strip(), (row.get("description") or "").strip(), tags,
                          (row.get("category") or "").strip(), (row.get("kind") or "").strip(), (row.get("price") or "").strip()))
    if not items:
        raise PluginError(f"{path}: no items; add rows under the header id,title,description,tags")
    return items


def read_interactions(path: Path, known: set[str]) -> tuple[list[dict[str, str]], list[str]]:
    """Past events (user_id, item_id, kind, optional timestamp) in file order, and what was skipped and why: rows
    without a user or with an item the items file lacks are left out (the rest is used); an empty file is no events.
    A kind or timestamp that cannot be read is refused, naming the line."""
    from agent.plugin.data import columns, numbered_rows

    found = columns(path)
    if not found:
        return [], [f"{path} is empty: recommendations use the items' text and what people say until it has rows "
                    "under the header user_id,item_id,kind[,timestamp]"]
    if "user_id" not in found:
        raise PluginError(f"{path}: expected a user_id column, found {found}; an interactions file needs user_id,item_id,kind[,timestamp]")
    rows, skipped = [], []
    for line, row in numbered_rows(path, ["item_id", "kind"], hint="an interactions file needs user_id,item_id,kind[,timestamp]"):
        _check_event(path, line, row)
        if not (row.get("user_id") or "").strip():
            skipped.append(f"line {line}: no user_id")
        elif row["item_id"] not in known:
            skipped.append(f"line {line}: item '{row['item_id']}' is not in the items file")
        else:
            rows.append(row)
    return rows, _skipped(path, skipped, len(rows))


def _check_event(path: Path, line: int, row: dict[str, str]) -> None:
    """Refuse a kind or a timestamp that cannot be read."""
    if row["kind"] not in KINDS:
        raise PluginError(f"{path}: line {line}: kind '{row['kind']}' is not one of {', '.join(sorted(KINDS))}")
    stamp = row.get("timestamp", "")
    if stamp:
        try:
            float(stamp)
        except ValueError:
            raise PluginError(f"{path}: line {line}: timestamp '{stamp}' is not a number; use Unix seconds "
                              "(or leave the column out: rows are then taken in file order)") from None


def _skipped(path: Path, skipped: list[str], kept: int) -> list[str]:
    """One line that says what was left out (the first few rows by line), and that the rest is used."""
    if not skipped:
        return [] if kept else [f"{path} has no rows yet: recommendations use the items' text and what people say"]
    shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
    return [f"{path}: {len(skipped)} row(s) left out ({shown}); fix the ids or add the items; the other {kept} are used"]
