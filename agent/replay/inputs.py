"""Replay inputs, streamed: `agent logs export` JSONL, hand-written scripts (JSONL or YAML), CSV of messages.

Every reader yields ReplayTurn for good entries and BadLine for broken ones, so one bad line never
stops a replay.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from agent.errors import InputError

EXPECT_KEYS = ("plugin", "label", "answer", "fallback")
csv.field_size_limit(10_000_000)
FORMATS = ("jsonl", "csv", "yaml")


@dataclass
class ReplayTurn:
    """One user turn to replay, with what is expected of it and what was logged for it (if known)."""

    line: int
    conversation: str
    text: str
    expect: dict[str, str] = field(default_factory=dict)
    logged: dict[str, Any] | None = None
    forced: str | None = None  # the plugin the logged turn was forced to (`/use`, `--plugin`)


@dataclass
class BadLine:
    """An input line that cannot be replayed, and why."""

    line: int
    reason: str


Entry = ReplayTurn | BadLine


def detect_format(path: str, given: str | None) -> str:
    """The input format: as given, else from the file suffix (stdin is JSONL)."""
    if given:
        return given
    suffix = Path(path).suffix.lower()
    if path == "-" or suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise InputError(f"{path}: cannot tell the format from the suffix '{suffix}'; "
                     f"name it .jsonl, .csv or .yaml, or pass --format {'|'.join(FORMATS)}")


def check_source(path: str) -> None:
    """Refuse a replay input that is not a readable file ('-' is stdin)."""
    if path != "-" and not Path(path).is_file():
        raise InputError(f"{path}: file not found; give a JSONL export, a script (.jsonl/.yaml) or a CSV of messages")


def read_entries(path: str, fmt: str) -> Iterator[Entry]:
    """Stream the turns (and bad lines) of a replay input; '-' reads stdin."""
    check_source(path)
    raw = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        if fmt == "jsonl":
            yield from _jsonl(_lines(raw))
        elif fmt == "csv":
            yield from _csv(_lines(raw), "\t" if path.lower().endswith(".tsv") else ",")
        else:
            yield from _yaml(raw)
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def _lines(raw: Iterable[bytes]) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; text is None when the line is not UTF-8."""
    for n, data in enumerate(raw, start=1):
        try:
            text = data.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError:
            yield n, None
            continue
        yield n, text


# ---- JSONL ----------------------------------------------------------------------------------------
def _jsonl(lines: Iterable[tuple[int, str | None]]) -> Iterator[Entry]:
    """One JSON object per line: a logged turn, a scripted turn, or a whole scripted conversation."""
    for n, text in lines:
        if text is None:
            yield BadLine(n, "not UTF-8 text; re-save the file as UTF-8")
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield BadLine(n, f"invalid JSON ({exc.msg} at column {exc.colno}); each line must be one JSON object")
            continue
        except RecursionError:
            yield BadLine(n, "JSON nested too deeply; each line must be one flat JSON object")
            continue
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            yield BadLine(n, f"invalid JSON ({str(exc)[:120]}); each line must be one JSON object")
            continue
        yield from entry_from_object(obj, n)


def entry_from_object(obj: Any, line: int) -> Iterator[Entry]:
    """Turns from one JSON/YAML object: {'turns': [...]} is a conversation, {'text': ...} one turn."""
    if not isinstance(obj, dict):
        yield BadLine(line, f"expected an object with 'text' or 'turns', found {type(obj).__name__}")
    elif "turns" in obj:
        yield from _conversation(obj, line)
    elif "text" in obj:
        yield _single(obj, line)
    else:
        yield BadLine(line, f"no 'text' or 'turns' key (found {sorted(map(str, obj))[:8]}); "
                            "a turn needs 'text', a scripted conversation 'turns'")


def _conversation(obj: dict[str, Any], line: int) -> Iterator[Entry]:
    """A scripted conversation: {'conversation': ID, 'turns': ['text', {'text': ..., 'label': ...}, ...]}."""
    conv = _conversation_id(obj, line, ("conversation_id", "conversation", "id"))
    turns = obj["turns"]
    if not isinstance(turns, list) or not turns:
        yield BadLine(line, "'turns' must be a non-empty list of messages")
        return
    lines = getattr(turns, "lines", None)
    for i, turn in enumerate(turns, start=1):
        where = lines[i - 1] if lines else _line_of(turn, line)
        if isinstance(turn, str):
            yield ReplayTurn(where, conv, turn)
            continue
        if not isinstance(turn, dict) or not isinstance(turn.get("text", turn.get("user")), str):
            yield BadLine(where, f"turn {i} of conversation '{conv}' needs a 'text' string")
            continue
        expect = _expectations(turn, where)
        if isinstance(expect, BadLine):
            yield expect
            continue
        yield ReplayTurn(where, conv, turn.get("text", turn.get("user")), expect)


def _single(obj: dict[str, Any], line: int) -> Entry:
    """One turn: a line of `agent logs export` (it has 'reply') or a scripted turn."""
    if not isinstance(obj["text"], str):
        return BadLine(line, f"'text' must be a string, found {type(obj['text']).__name__}")
    conv = _conversation_id(obj, line)
    if "reply" in obj:
        expect = _expectations({"expect": obj.get("expect") or {}}, line)
        if isinstance(expect, BadLine):
            return expect
        if not isinstance(obj.get("feedback") or [], list):
            return BadLine(line, "'feedback' must be a list of {kind, label} objects")
        forced = obj.get("forced") if isinstance(obj.get("forced"), str) and obj.get("forced") else None
        return ReplayTurn(line, conv, obj["text"], {**expect, **_corrections(obj)}, _logged(obj), forced)
    expect = _expectations(obj, line)
    return expect if isinstance(expect, BadLine) else ReplayTurn(line, conv, obj["text"], expect)


def _conversation_id(obj: dict[str, Any], line: int, keys: tuple[str, ...] = ("conversation_id", "conversation")) -> str:
    """The conversation an entry belongs to; an entry without one is a conversation of its own."""
    for key in keys:
        if obj.get(key) not in (None, ""):
            return str(obj[key])
    return f"line-{line}"


def _expectations(obj: dict[str, Any], line: int) -> dict[str, str] | BadLine:
    """Expected plugin / label / answer id: in an 'expect' object or as top-level keys."""
    expect = obj.get("expect", {k: obj[k] for k in EXPECT_KEYS if k in obj})
    if not isinstance(expect, dict):
        return BadLine(line, f"'expect' must be an object with any of {list(EXPECT_KEYS)}")
    unknown = [k for k in expect if k not in EXPECT_KEYS and k != "__line__"]
    if unknown:
        return BadLine(line, f"unknown expectation(s) {unknown}; use {list(EXPECT_KEYS)}")
    expect = {k: v for k, v in expect.items() if k in EXPECT_KEYS and v not in (None, "")}
    odd = [k for k, v in expect.items() if isinstance(v, (list, dict))]
    if odd:
        return BadLine(line, f"expectation(s) {odd} must be a single value, not a list or object")
    if "fallback" in expect and str(expect["fallback"]).lower() not in ("true", "false", "yes", "no", "1", "0"):
        return BadLine(line, f"'fallback' must be true or false, found {expect['fallback']!r}")
    return {k: _flag(v) if k == "fallback" else str(v) for k, v in expect.items()}


def _flag(value: Any) -> str:
    """'true' or 'false' for the yes/no spellings YAML, JSON and CSV give."""
    return "true" if str(value).lower() in ("true", "yes", "1") else "false"


def _logged(obj: dict[str, Any]) -> dict[str, Any]:
    """What the log recorded for a turn: the reference that changes are measured against."""
    keep = ("id", "plugin", "label", "answer_id", "reply", "fallback_reason", "confidence")
    return {k: obj.get(k) for k in keep if k in obj}


def _corrections(obj: dict[str, Any]) -> dict[str, str]:
    """Expectations from people's feedback on a logged turn: the last label correction, or 'good'."""
    expect: dict[str, str] = {}
    for fb in obj.get("feedback") or []:
        if not isinstance(fb, dict):
            continue
        if fb.get("kind") == "label" and fb.get("label"):
            expect = {"plugin": str(obj.get("plugin") or ""), "label": str(fb["label"])}
        elif fb.get("kind") == "good" and obj.get("label"):
            expect = {"plugin": str(obj.get("plugin") or ""), "label": str(obj["label"])}
    return {k: v for k, v in expect.items() if v}


def _line_of(value: Any, default: int) -> int:
    """The source line a YAML mapping came from (JSON lines carry their own); a line a user wrote is ignored."""
    line = value.get("__line__") if isinstance(value, dict) else None
    return line if type(line) is int and line > 0 else max(default, 1)


# ---- CSV ------------------------------------------------------------------------------------------
CSV_COLUMNS = {"text": ("text", "message"), "conversation": ("conversation_id", "conversation"),
               "plugin": ("plugin", "expected_plugin"), "label": ("label", "expected_label"),
               "answer": ("answer", "answer_id", "expected_answer"),
               "fallback": ("fallback", "expected_fallback")}


def _csv(lines: Iterable[tuple[int, str | None]], delimiter: str) -> Iterator[Entry]:
    """A CSV of messages with a header: text, and optional conversation_id, plugin, label, answer."""
    undecodable: set[int] = set()

    def text_lines() -> Iterator[str]:
        for n, text in lines:
            if text is None:
                undecodable.add(n)
                text = "\n"
            yield text

    reader = csv.reader(text_lines(), delimiter=delimiter)
    try:
        header = [c.strip().lower() for c in next(reader, [])]
    except csv.Error as exc:
        yield BadLine(max(reader.line_num, 1), f"the header row cannot be read ({exc}); save the file as CSV with "
                                               "one header line (text,...) and plain line endings")
        return
    columns = _csv_columns(header, reader.line_num)
    last = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            first, last = last + 1, reader.line_num
            yield BadLine(first, f"unreadable CSV ({exc}); check its quotes")
            continue
        n, first, last = reader.line_num, last + 1, reader.line_num
        if undecodable.intersection(range(first, n + 1)):
            yield BadLine(first, "not UTF-8 text; re-save the file as UTF-8")
        elif not cells:
            continue
        elif len(cells) > len(header):
            yield BadLine(first, f"{len(cells)} fields but the header has {len(header)}; quote values that contain '{delimiter}'")
        else:
            yield _csv_turn(dict(zip(header, cells)), columns, first)


def _csv_columns(header: list[str], line: int) -> dict[str, str]:
    """Which header column holds each field; the text column is required."""
    if not header:
        raise InputError("the CSV is empty; it needs a header row with a 'text' column")
    found = {field: next((c for c in names if c in header), "") for field, names in CSV_COLUMNS.items()}
    if not found["text"]:
        raise InputError(f"line {line}: the CSV header {header} has no 'text' column; add one (the message to replay)")
    return found


def _csv_turn(row: dict[str, str], columns: dict[str, str], line: int) -> Entry:
    """A CSV row as a turn; rows without a conversation id are conversations of their own."""
    text = row.get(columns["text"], "")
    if not text.strip():
        return BadLine(line, "empty 'text'; fill it in or delete the line")
    conv = row.get(columns["conversation"], "").strip() if columns["conversation"] else ""
    expect = _expectations({k: row.get(columns[k], "").strip() for k in EXPECT_KEYS if columns[k]}, line)
    return expect if isinstance(expect, BadLine) else ReplayTurn(line, conv or f"line-{line}", text, expect)


# ---- YAML -----------------------------------------------------------------------------------------
def _yaml(raw: io.BufferedReader | Any) -> Iterator[Entry]:
    """YAML documents, each a conversation, a list of them, or {'conversations': [...]}."""
    import yaml

    try:
        for doc in yaml.load_all(raw, Loader=_line_loader()):
            items = doc.get("conversations", [doc]) if isinstance(doc, dict) else doc
            if not isinstance(items, list):
                yield BadLine(_line_of(doc, 1), "a YAML document must be a conversation or a list of them")
                continue
            lines = getattr(items, "lines", None) or [_line_of(doc, 1)] * len(items)
            for item, line in zip(items, lines):
                yield from entry_from_object(item, _line_of(item, line))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        yield BadLine(line, f"YAML error ({getattr(exc, 'problem', None) or exc}); the rest of the file is not read")
    except UnicodeDecodeError as exc:
        yield BadLine(1, f"not UTF-8 text (byte {exc.start}); re-save the file as UTF-8")
    except RecursionError:
        yield BadLine(1, "YAML nested too deeply; the rest of the file is not read")
    except Exception as exc:  # noqa: BLE001 - a value PyYAML cannot build (a bad date, a huge int, an empty !!float)
        yield BadLine(1, f"a YAML value cannot be read ({type(exc).__name__}: {str(exc)[:120]}); quote it as a "
                         "string; the rest of the file is not read")


class _LinedList(list):  # type: ignore[type-arg]
    """A YAML sequence that remembers the line of each item."""

    lines: list[int]


def _line_loader() -> type:
    """A safe YAML loader that records each mapping's line as '__line__'."""
    import yaml

    class LineLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            mapping = super().construct_mapping(node, deep=deep)
            mapping["__line__"] = node.start_mark.line + 1
            return mapping

        def construct_lined_seq(self, node: Any) -> Iterator[list[Any]]:
            items = _LinedList()
            items.lines = [child.start_mark.line + 1 for child in node.value]
            yield items
            items.extend(self.construct_sequence(node))

    LineLoader.add_constructor("tag:yaml.org,2002:seq", LineLoader.construct_lined_seq)

    return LineLoader
