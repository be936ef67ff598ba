"""Incoming text: decode, normalise, refuse what cannot be a message, redact what must not be stored."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from agent.errors import InputError
from agent.text.pii import KINDS, PLACEHOLDERS, redact  # noqa: F401  (re-exported: guard is where text is checked)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def decode(data: bytes | str) -> str:
    """Bytes to text: invalid UTF-8 becomes U+FFFD rather than an exception."""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    try:
        return data.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        return data.encode("utf-8", errors="replace").decode("utf-8")


def clean(text: bytes | str, max_chars: int) -> str:
    """Normalise a message, or raise InputError saying why it cannot be one."""
    raw = unicodedata.normalize("NFC", decode(text))
    text = " ".join(_CONTROL.sub(" ", raw.replace("\t", " ")).split())
    if not raw.strip():
        raise InputError("the message is empty; type a question, e.g. agent ask \"how do I block my card?\"")
    if len(text) > max_chars:
        raise InputError(f"the message is {len(text):,} characters; the limit is {max_chars:,}. "
                         "Shorten it, or raise the limit with AGENT_MAX_CHARS")
    if not looks_like_text(raw):
        raise InputError("the message does not look like text (binary data or invalid UTF-8); send plain UTF-8 text")
    return text


def looks_like_text(text: str) -> bool:
    """False for junk: nothing visible, or over a fifth of the non-space characters junk; punctuation, emoji, any script pass."""
    shown = [ch for ch in text if not ch.isspace()]
    junk = sum(_is_junk(ch) for ch in shown)
    return junk <= JUNK_SHARE * len(shown) and any(_is_visible(ch) for ch in shown)


JUNK_SHARE = 0.2
_EMOJI_BLOCKS = range(0x1F000, 0x1FC00)
_APPLE_LOGO = "\uf8ff"  # private use, but a Mac keyboard types it (Option-Shift-K)


def _typed(ch: str) -> bool:
    """Typed by people whatever its category says: the Apple logo, or an emoji too new for this Python (it reads as Cn)."""
    return ord(ch) in _EMOJI_BLOCKS or ch == _APPLE_LOGO


def _is_junk(ch: str) -> bool:
    """A character no keyboard or phone produces in text: U+FFFD, controls, private use, surrogates, unassigned."""
    return not _typed(ch) and (ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn"))


def _is_visible(ch: str) -> bool:
    """A letter, digit, punctuation mark or symbol (emoji included)."""
    return unicodedata.category(ch)[0] in "LNPS" or _typed(ch)


def conversation_id(value: Any) -> str | None:
    """A conversation id as stored: valid UTF-8, no control characters, at most 200 characters (None if empty)."""
    if value is None:
        return None
    text = " ".join(_CONTROL.sub(" ", decode(value if isinstance(value, (str, bytes)) else str(value))).split())
    if len(text) > 200:
        raise InputError(f"the conversation id is {len(text):,} characters; the limit is 200")
    return text or None


def redact_for(text: str, privacy: Any) -> tuple[str, int]:
    """`text` as a plugin's `[privacy]` table says it may be stored: raw, or redacted for its kinds."""
    if privacy is not None and privacy.store_raw:
        return text, 0
    return redact(text, privacy.redact if privacy is not None else KINDS)


KEYS_KEPT = frozenset({"id", "turn_id", "conversation_id", "user_id", "answer_id", "item_id", "run_id", "corpus_id", "ts",
                       "timestamp", "created_at", "started_at", "finished_at", "raised_at"})  # the log's own ids and times


def redact_tree(value: Any) -> Any:
    """A JSON-ready copy of `value` with every string and whole number redacted (floats kept, and the values of the
    log's own id and time keys, which link rows); other objects become strings."""
    if isinstance(value, dict):
        return {str(k): v if k in KEYS_KEPT and isinstance(v, (str, int)) else redact_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value  # a measurement or a time: personal numbers arrive as text or whole numbers
    if isinstance(value, int):
        text = str(value)
        redacted = redact(text)[0]
        return value if redacted == text else redacted
    return redact(str(value))[0]


def redact_value(key: str, value: Any) -> Any:
    """A value about to be stored in column `key`: text redacted (JSON text as JSON), ids, times and numbers kept."""
    if not isinstance(value, str) or key in KEYS_KEPT:
        return value
    if value[:1] in "{[":
        try:
            import json

            return json.dumps(redact_tree(json.loads(value)), ensure_ascii=False)
        except ValueError:
            pass
    return redact(value)[0]
