"""Incoming text: decode, normalise, refuse what cannot be a message, redact what must not be stored."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from agent.errors import InputError

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_CARD = re.compile(r"\b(?:\d[ .-]?){12,18}\d\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", re.IGNORECASE)
_ACCOUNT = re.compile(r"\b\d{8,19}\b|\b(?:\d[ .-]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w])(?:\+\d{1,3}[ .-]?)?(?:\(?\d{2,5}\)?[ .-]?){2,4}\d{3,4}(?![\w])")


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


def _luhn_ok(digits: str) -> bool:
    """The Luhn checksum that payment card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def redact(text: str) -> tuple[str, int]:
    """Replace e-mails, card numbers, IBANs, phone and account numbers by typed placeholders; return the count."""
    count = 0

    def sub(pattern: re.Pattern[str], placeholder: str, keep: "callable | None" = None) -> None:
        nonlocal text, count

        def repl(m: re.Match[str]) -> str:
            nonlocal count
            if keep is not None and not keep(m.group(0)):
                return m.group(0)
            count += 1
            return placeholder

        text = pattern.sub(repl, text)

    sub(_EMAIL, "<EMAIL>")
    sub(_CARD, "<CARD>", lambda s: _luhn_ok(re.sub(r"\D", "", s)))
    sub(_IBAN, "<IBAN>")
    sub(_PHONE, "<PHONE>", lambda s: 9 <= len(re.sub(r"\D", "", s)) <= 15 and not s.strip().isdigit())
    sub(_ACCOUNT, "<ACCOUNT>")
    return text, count


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
