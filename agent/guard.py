"""Incoming text: decode, normalise, refuse what cannot be a message, redact what must not be stored."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from agent.errors import InputError
from agent.pii import KINDS, PLACEHOLDERS, redact  # noqa: F401  (re-exported: guard is where text is checked)

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
    text = unicodedata.normalize("NFC", decode(text))
    text = _CONTROL.sub(" ", text.replace("\t", " "))
    text = " ".join(text.split())
    if not text:
        raise InputError("the message is empty; type a question, e.g. agent ask \"how do I block my card?\"")
    if len(text) > max_chars:
        raise InputError(f"the message is {len(text):,} characters; the limit is {max_chars:,}. "
                         "Shorten it, or raise the limit with AGENT_MAX_CHARS")
    junk = sum(ch == "\ufffd" or unicodedata.category(ch) in ("Co", "Cn", "Cs") for ch in text)
    readable = sum(ch.isalnum() for ch in text)
    if junk > 0.2 * len(text) or readable == 0:
        raise InputError("the message does not look like text (binary data or invalid UTF-8); send plain UTF-8 text")
    return text


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


def redact_tree(value: Any) -> Any:
    """A JSON-ready copy of `value` with every string (and long number) redacted; other objects become strings."""
    if isinstance(value, dict):
        return {str(k): redact_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        text = str(value)
        redacted = redact(text)[0]
        return value if redacted == text else redacted
    return redact(str(value))[0]
