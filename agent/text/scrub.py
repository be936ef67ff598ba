"""Re-redact what is already stored, for logs written before today's redaction knew a kind of number.

`agent logs redact` calls `scrub_home`: every stored message and reply, every text column of the other tables
(notes, feed items, run reports, what plugin kinds store; JSON as JSON, ids and times kept), the turns people
labelled that fine-tuned versions keep (`learned.jsonl`); then the full-text index is rebuilt and the file
vacuumed, so the old text is left neither in free pages nor in the write-ahead log. `scrub_export` does the same
for a JSONL file that `agent logs export` wrote. Running either twice changes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from agent.text import guard

Privacy = Callable[[str | None], Any]  # a plugin's name -> its [privacy] settings (None: redact every kind)
TURN_JSON = ("annotations", "warnings", "extras")


def scrub_home(store: Any, models_root: Path, privacy: Privacy) -> dict[str, int]:
    """Re-redact every stored text of the home; how many rows (or lines) changed, by where they are."""
    counts = {"turns": _scrub_turns(store, privacy)}
    for table in _tables(store):
        counts[table] = _scrub_table(store, table, privacy)
    counts["learned"] = sum(scrub_jsonl(path) for path in sorted(Path(models_root).glob("*/*/learned.jsonl")))
    store.compact()
    return counts


def scrub_export(path: Path) -> int:
    """Re-redact an `agent logs export` file in place; how many of its lines changed."""
    return scrub_jsonl(Path(path))


def scrub_jsonl(path: Path) -> int:
    """Redact every string of every JSON line of `path`, rewriting it atomically when a line changed."""
    lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines(): U+2028 may sit inside a JSON string
    out = [_scrub_line(line) for line in lines]
    changed = sum(a != b for a, b in zip(lines, out))
    if changed:
        _atomic_text(path, "\n".join(out))
    return changed


def _scrub_line(line: str) -> str:
    """One JSON line with its strings redacted (a line that is not JSON is redacted as text)."""
    if not line.strip():
        return line
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return guard.redact(line)[0]
    scrubbed = guard.redact_tree(value)
    return line if scrubbed == value else json.dumps(scrubbed, ensure_ascii=False)


def _scrub_turns(store: Any, privacy: Privacy) -> int:
    """Redact each turn's text (as its plugin's `[privacy]` says), reply and JSON columns; the turns changed."""
    changed = 0
    for row in store.query("SELECT id, plugin, text, reply, " + ", ".join(TURN_JSON) + " FROM turns"):
        text = guard.redact_for(row["text"], privacy(row["plugin"]))[0] if row["text"] else row["text"]
        # a reply is the plugin's own words (its FAQ's phone number stays), unless the message held a number it may echo
        reply = guard.redact_for(row["reply"], privacy(row["plugin"]))[0] if row["reply"] and text != row["text"] else row["reply"]
        values = {"text": text, "reply": reply, **{c: _scrub_json(row[c]) for c in TURN_JSON}}
        values = {k: v for k, v in values.items() if v != row[k]}
        if values:
            store.update("turns", row["id"], values, redacted=True)
            changed += 1
    return changed


def _tables(store: Any) -> list[str]:
    """Every table that may hold text people wrote: the log's and those plugin kinds add; not the full-text index's
    own tables, nor those that hold only ids, labels, the plugins' own texts (hits) and keys' hashes."""
    skip = {"turns", "conversations", "predictions", "hits", "_migrations", "api_keys"}
    names = [r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                                            "ORDER BY name")]
    fts = [n for n in names if n.endswith("_fts")]
    return [n for n in names if n not in skip and not any(n.startswith(f) for f in fts)]


def _scrub_table(store: Any, table: str, privacy: Privacy) -> int:
    """Redact every text column of a table (as each row's plugin's `[privacy]` says, when it names one); rows changed."""
    info = store.query(f"SELECT name, type FROM pragma_table_info('{table}')")
    columns = [c["name"] for c in info if c["type"].upper() == "TEXT"]
    if not columns or "id" not in {c["name"] for c in info}:
        return 0
    changed = 0
    for row in store.query(f"SELECT * FROM [{table}]"):
        settings = privacy(row.get("plugin"))
        if settings is not None and settings.store_raw:
            continue
        values = {c: guard.redact_value(c, row[c]) for c in columns if row[c] is not None}
        values = {c: v for c, v in values.items() if v != row[c]}
        if values:
            store.update(table, row["id"], values, redacted=True)
            changed += 1
    return changed


def _scrub_json(text: str | None) -> str | None:
    """A JSON column with its strings redacted, unchanged (the same string) when nothing needed it."""
    return _scrub_line(text) if text else text


def _atomic_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
