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


def read_interactions(path: Path, known: set[str]) -> list[dict[str, str]]:
    """Past events (user_id, item_id, kind, optional timestamp) in file order; unknown items or kinds are refused."""
    rows = read_rows(path, ["user_id", "item_id", "kind"], hint="an interactions file needs user_id,item_id,kind[,timestamp]")
    for n, row in enumerate(rows, start=1):
        if row["kind"] not in KINDS:
            raise PluginError(f"{path}: row {n}: kind '{row['kind']}' is not one of {', '.join(sorted(KINDS))}")
        if row["item_id"] not in known:
            raise PluginError(f"{path}: row {n}: item '{row['item_id']}' is not in the items file; fix the id or add the item")
        stamp = row.get("timestamp", "")
        if stamp:
            try:
                float(stamp)
            except ValueError:
                raise PluginError(f"{path}: row {n}: timestamp '{stamp}' is not a number; use Unix seconds "
                                  "(or leave the column out: rows are then taken in file order)") from None
    return rows
