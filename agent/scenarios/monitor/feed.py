"""Feed lines from a file or stdin (optionally followed as the file grows), parsed into items or bad lines.

JSONL: one object per line, {"text": ..., "timestamp": ..., "source": ..., "topic": ...}.
CSV: a header line naming the columns (`text` required), then one record per line.
A timestamp is ISO 8601 (no zone: UTC) or seconds since the epoch; without one, the time it was read.
"""

from __future__ import annotations

import csv
import json
import os
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable, Iterator

from agent.errors import InputError
from agent.scenarios.monitor.config import ALL
from agent.text import guard

MAX_LINE_BYTES = 1 << 20  # a longer line is reported and skipped, never held in memory whole
TIME_KEYS = ("timestamp", "time", "ts", "created_at", "date")
FIELDS = ("text", *TIME_KEYS, "source", "topic", "label", "id")
POLL_SECONDS = 0.2
ROTATED = 0  # the line number raw_lines yields (with b"") when a followed file was truncated: start over
EARLIEST, LATEST = 0.0, 4102444800.0  # timestamps from 1970 up to 2100 are accepted
BOM = b"\xef\xbb\xbf"


class FeedError(InputError):
    """A feed that cannot be read at all (no such file, a CSV without a text column)."""


@dataclass
class FeedItem:
    """One well-formed feed entry."""

    line: int
    text: str
    timestamp: float  # seconds since the epoch, UTC
    source: str
    topic: str | None = None


@dataclass
class BadLine:
    """A line that was skipped, and why."""

    line: int
    reason: str


def raw_lines(fh: IO[bytes], follow: bool = False, idle_exit: float | None = None,
              stopped: Callable[[], bool] = lambda: False) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; None for a line over MAX_LINE_BYTES. Following waits for more at the end.

    When following, a half-written last line is held until its newline arrives; `idle_exit` ends the
    wait after that many seconds without new data; a file that shrinks (truncated in place) is read
    from the start, after a (ROTATED, b"") marker. A file renamed away is not noticed.
    """
    number, partial, idle_since = 0, b"", time.monotonic()
    while not stopped():
        chunk = fh.readline(MAX_LINE_BYTES + 1 - len(partial))
        if chunk:
            idle_since = time.monotonic()
            partial += chunk
            if partial.endswith(b"\n") or len(partial) > MAX_LINE_BYTES:
                number += 1
                if len(partial) > MAX_LINE_BYTES:
                    _skip_rest(fh, partial)
                    yield number, None
                else:
                    yield number, partial
                partial = b""
            continue
        if not follow:
            break
        if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
            break
        if _rotated(fh):
            fh.seek(0)
            number, partial = 0, b""
            yield ROTATED, b""
        time.sleep(POLL_SECONDS)
    if partial and not stopped():
        yield number + 1, partial


def _skip_rest(fh: IO[bytes], partial: bytes) -> None:
    """Read past the rest of an over-long line."""
    while not partial.endswith(b"\n"):
        partial = fh.readline(MAX_LINE_BYTES)
        if not partial:
            return


def _rotated(fh: IO[bytes]) -> bool:
    """True when the file is now shorter than what was read (truncated or replaced in place)."""
    try:
        return os.fstat(fh.fileno()).st_size < fh.tell()
    except (OSError, ValueError):
        return False


def sniff_format(path: Path | None, first: bytes) -> str:
    """'jsonl' or 'csv': from the file name, else from the first line."""
    if path is not None:
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson", ".json"):
            return "jsonl"
        if suffix == ".csv":
            return "csv"
    return "jsonl" if first.lstrip().startswith(b"{") else "csv"


class Parser:
    """Turns numbered raw lines into FeedItems and BadLines for one feed."""

    def __init__(self, fmt: str, source: str, max_chars: int, topics: set[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.fmt, self.source, self.max_chars, self.topics, self.clock = fmt, source, max_chars, topics, clock
        self.header: list[str] | None = None

    def parse(self, number: int, raw: bytes | None) -> FeedItem | BadLine | None:
        """One line: an item, a bad line, or None (blank line, CSV header)."""
        if raw is None:
            return BadLine(number, f"longer than {MAX_LINE_BYTES:,} bytes; split it or shorten it")
        try:
            line = raw.removeprefix(BOM).decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            return BadLine(number, f"not UTF-8 text (invalid byte at column {exc.start + 1}); re-save the feed as UTF-8")
        if not line:
            return None
        try:
            fields = self._fields(number, line)
            return None if fields is None else self._item(number, fields)
        except FeedError:
            raise
        except (ValueError, InputError) as exc:
            return BadLine(number, str(exc))

    def _fields(self, number: int, line: str) -> dict[str, object] | None:
        """The line's fields by name (None for the CSV header)."""
        if self.fmt == "jsonl":
            try:
                value = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"not valid JSON ({str(exc)[:80]})") from None
            if not isinstance(value, dict):
                raise ValueError(f"a JSON {type(value).__name__}, not an object like {{\"text\": \"...\"}}")
            return value
        if line.count('"') % 2:
            raise ValueError("a quoted field does not end on this line; keep each record on one line "
                             "(replace line breaks inside the text with spaces)")
        try:
            row = next(csv.reader([line]))
        except csv.Error as exc:
            raise ValueError(f"not a CSV record ({exc})") from None
        if self.header is None:
            self.header = [c.strip().lower() for c in row]
            if "text" not in self.header:
                raise FeedError(f"{self.source}:{number}: the CSV header {row[:8]} has no 'text' column; "
                                "add a header line like text,timestamp,source,topic")
            return None
        if len(row) != len(self.header):
            raise ValueError(f"{len(row)} fields where the header has {len(self.header)}; quote fields that hold commas")
        return dict(zip(self.header, row))

    def _item(self, number: int, fields: dict[str, object]) -> FeedItem:
        """Check and convert the fields of one entry."""
        text = fields.get("text")
        if not isinstance(text, str):
            raise ValueError("no \"text\" field" if text is None else f"\"text\" is a {type(text).__name__}, not a string")
        cleaned = clean_text(text, self.max_chars)
        key = next((k for k in TIME_KEYS if fields.get(k) not in (None, "")), None)
        stamp = parse_time(fields[key], key) if key else self.clock()
        source = fields.get("source")
        topic = fields.get("topic") or None
        if topic == ALL:
            raise ValueError(f"topic '{ALL}' is the series of every item, not a topic; name a topic or leave it out")
        if topic is not None and (not isinstance(topic, str) or self.topics is not None and topic not in self.topics):
            known = ", ".join(sorted(self.topics or ()))
            raise ValueError(f"topic {clean_source(topic)[:40]!r} is not one of: {known}; fix it or leave it out")
        return FeedItem(number, cleaned, stamp, clean_source(source) or self.source, topic)


def clean_text(text: str, max_chars: int) -> str:
    """A feed item's text: normalised like a chat message, cut at `max_chars`; emoji or emoticons alone are kept."""
    raw = guard.decode(unicodedata.normalize("NFC", text))
    text = " ".join(raw.translate(_SPACES).split())[:max_chars]
    if not raw.strip():
        raise ValueError('the "text" field is empty')
    if not guard.looks_like_text(raw[: max_chars * 2]):
        raise ValueError('the "text" field does not look like text (binary data or invalid characters)')
    return text


def clean_source(value: object) -> str:
    """A source name as stored: printable, one line, at most 200 characters ('' when empty)."""
    if value is None:
        return ""
    return " ".join(guard.decode(str(value)).translate(_SPACES).split())[:200]


_SPACES = {c: " " for c in [*range(0, 32), *range(127, 160)]}


def parse_time(value: object, key: str) -> float:
    """ISO 8601 or epoch seconds (milliseconds when 1e11 or more) -> epoch seconds, 1970 to 2100; ValueError names the key."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"{key} is far too large a number") from None
    elif isinstance(value, str):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"{key} is far too large a number") from None
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"{key} {value[:40]!r} is neither ISO 8601 (2026-11-23T10:15:00Z) nor epoch seconds") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            number = parsed.timestamp()
    else:
        raise ValueError(f"{key} must be a string or a number, not {type(value).__name__}")
    if number != number:
        raise ValueError(f"{key} is not a number")
    seconds = number / 1000 if abs(number) >= 1e11 else number
    if not EARLIEST <= seconds <= LATEST:
        raise ValueError(f"{key} {str(value)[:40]} is outside 1970 to 2100 (seconds or milliseconds since the epoch)")
    return seconds
