"""New plugin folders: from a labelled CSV (and optionally an FAQ CSV)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from agent.data import read_rows
from agent.errors import PluginError

MANIFEST = """# {name}: made by `agent new-plugin` from {source}.
name = {name_q}
description = {description}
role = "responder"
version = "0.1.0"

# Every label the examples use. Replace a name with `name = "one-line description"` in a [labels]
# table to document it; descriptions also help routing.
labels = {labels}

[data]
examples = "examples.csv"
text_column = "text"
label_column = "label"
{retrieval}
[thresholds]
min_confidence = 0.40   # below this top probability the agent falls back
min_margin = 0.05       # top-two probabilities closer than this: ambiguous, fall back
min_similarity = 0.35   # nearest example less similar than this: out of scope, fall back
"""

RETRIEVAL = """
[retrieval]
corpus = "faq.csv"
id_column = "id"
text_columns = ["question"]
answer_column = "answer"
label_column = "{label}"
top_k = 3
"""


def slug(name: str) -> str:
    """A plugin name from a folder name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "plugin"


def plugin_from_examples(dest: Path, examples: Path, text_column: str = "text", label_column: str = "label",
                         faq: Path | None = None, name: str | None = None, force: bool = False) -> Path:
    """Write DEST/plugin.toml, examples.csv (text,label) and faq.csv; return the manifest path."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()) and not force:
        raise PluginError(f"{dest} already exists and is not empty; choose a new folder or pass --force")
    hint = "pass --text-column / --label-column to name the columns"
    rows = read_rows(examples, [text_column, label_column], hint)
    if not rows:
        raise PluginError(f"{examples}: no rows; a plugin needs labelled examples")
    labels = sorted({r[label_column] for r in rows})
    if len(labels) < 2:
        raise PluginError(f"{examples}: column '{label_column}' has only the label(s) {labels}; "
                          "a plugin needs examples of at least 2 labels")
    dest.mkdir(parents=True, exist_ok=True)
    _write_csv(dest / "examples.csv", ["text", "label"], [[r[text_column], r[label_column]] for r in rows])
    retrieval = ""
    if faq is not None:
        retrieval = _copy_faq(faq, dest / "faq.csv", set(labels))
    name = slug(name or dest.name)
    text = MANIFEST.format(
        name=name, name_q=json.dumps(name), source=Path(examples).name,
        description=json.dumps(f"{name}: {len(labels)} labels learned from {Path(examples).name}"),
        labels=json.dumps(labels), retrieval=retrieval,
    )
    (dest / "plugin.toml").write_text(text, encoding="utf-8")
    return dest / "plugin.toml"


def _copy_faq(src: Path, dest: Path, labels: set[str]) -> str:
    """Copy an FAQ CSV (id,question,answer[,label]); return the [retrieval] table for it."""
    rows = read_rows(src, ["id", "question", "answer"], "the FAQ file needs columns id, question, answer (label optional)")
    has_label = bool(rows) and "label" in rows[0]
    for line, row in enumerate(rows, start=2):
        if has_label and row["label"] and row["label"] not in labels:
            raise PluginError(f"{src}:{line}: label '{row['label']}' is not among the examples' labels; fix the row")
    cols = ["id", "question", "answer", "label"] if has_label else ["id", "question", "answer"]
    _write_csv(dest, cols, [[r[c] for c in cols] for r in rows])
    return RETRIEVAL.format(label="label" if has_label else "")


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a UTF-8 CSV with a header."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
