"""Readers for CSV and JSONL data files, with errors that name file, line and fix."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Iterator

from agent.errors import DataError

csv.field_size_limit(10_000_000)


def file_hash(*paths: Path, extra: str = "") -> str:
    """sha256 over file contents (and settings that change what is built from them)."""
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def read_rows(path: Path, required: list[str], hint: str = "") -> list[dict[str, str]]:
    """All rows of a CSV or JSONL file that has the required columns; empty values are refused."""
    return list(iter_rows(path, required, hint))


def iter_rows(path: Path, required: list[str], hint: str = "") -> Iterator[dict[str, str]]:
    """Stream rows of a CSV (.csv/.tsv) or JSONL (.jsonl/.json) file."""
    return (row for _, row in numbered_rows(path, required, hint))


def numbered_rows(path: Path, required: list[str], hint: str = "") -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) per row, as iter_rows; the line is where the row ends (a quoted value may span lines)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path (a CSV/JSONL with the columns {required})")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        yield from _iter_jsonl(path, required)
    else:
        yield from _iter_csv(path, required, hint)


def columns(path: Path) -> list[str]:
    """The column names of a CSV/TSV (its header) or JSONL file (the keys of its first object); [] when empty."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return list(next(_iter_jsonl(path, []), (0, {}))[1])
    reader = csv.reader(_open_text(path), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    return [c.strip() for c in next(reader, [])]


def _open_text(path: Path) -> io.TextIOWrapper:
    """Open as UTF-8 (with or without BOM), failing clearly on other encodings."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 ({exc.reason}); re-save the file as UTF-8") from exc
    if "\x00" in text:
        raise DataError(f"{path}: contains NUL bytes; this looks like a binary file, not CSV/JSONL text")
    return io.StringIO(text, newline="")


def _iter_csv(path: Path, required: list[str], hint: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header row."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(_open_text(path), delimiter=delimiter)
    found = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in required if c not in found]
    if missing:
        fix = hint or "rename the columns in the file"
        raise DataError(f"expected columns {required} in {path}, found {found}; {fix}")
    for row in reader:  # a quoted value may span lines: a row is named by its first
        start = reader.line_num - sum(v.rstrip("\r\n").count("\n") for v in row.values() if isinstance(v, str))
        if None in row:
            raise DataError(f"{path}:{start}: more fields than the header {found}; "
                            "quote values that contain commas")
        row = {(k or "").strip(): v for k, v in row.items()}
        yield start, _check(path, start, row, required)


def _iter_jsonl(path: Path, required: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a JSON-lines file, one object per line."""
    for n, line in enumerate(_open_text(path), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: invalid JSON ({exc.msg}); each line must be one JSON object") from exc
        except RecursionError as exc:
            raise DataError(f"{path}:{n}: JSON nested too deeply; each line must be one flat JSON object") from exc
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            raise DataError(f"{path}:{n}: invalid JSON ({str(exc)[:120]}); each line must be one JSON object") from exc
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{n}: expected a JSON object with keys {required}, found {type(obj).__name__}")
        missing = [c for c in required if c not in obj]
        if missing:
            raise DataError(f"{path}:{n}: missing key(s) {missing}; each line needs {required}")
        yield n, _check(path, n, {k: "" if v is None else str(v) for k, v in obj.items()}, required)


def _check(path: Path, line: int, row: dict[str, str | None], required: list[str]) -> dict[str, str]:
    """Refuse rows whose required values are empty (a short row reads as None)."""
    for col in required:
        value = row.get(col)
        if value is None and any("\n" in (v or "") for v in row.values()):  # a quote left open ran to the end
            raise DataError(f"{path}:{line}: a quote (\") opened on this line is never closed, so the row runs on "
                            f"and column '{col}' is missing; close the quote or remove it")
        if value is None or not value.strip():
            raise DataError(f"{path}:{line}: empty value in column '{col}'; fill it in or delete the line")
    return {k: (v or "").strip() for k, v in row.items()}
