"""Incoming text: decode, normalise, refuse what cannot be a message, redact what must not be stored."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Callable

from agent.errors import InputError

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
KINDS = ("email", "iban", "card", "account", "phone")  # what redact() finds, in the order it looks
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?:[ -][A-Z0-9]{2,4}){2,8})\b", re.IGNORECASE)
_CARD = re.compile(r"(?<![\w.-])(?:\d[ -]?){12,18}\d(?![\w-])")
_ACCOUNT_CUE = re.compile(r"\b(?:account|acct|a/c)(?:\s*(?:number|num|no\.?|nr\.?|#|ending))?\b[^\d\n<]{0,12}?"
                          r"(\d(?:[ -]?\d){5,17})(?![\w-])", re.IGNORECASE)
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?(?:\(\d{1,5}\)|\d{1,5})(?:[ .-]?(?:\(\d{1,5}\)|\d{1,5})){1,7}(?!\w|:\d)")
_DIGITS = re.compile(r"(?<![\w.,-])(?:\d{8,19}|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]?\d{1,3})?)(?![\w-])")
_DATE = re.compile(r"\b(?:(?:19|20)\d\d[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:19|20)\d\d)\b")


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


def redact(text: str, kinds: "tuple[str, ...] | list[str]" = KINDS) -> tuple[str, int]:
    """Replace e-mails, IBANs, card numbers, account and phone numbers by typed placeholders; return the count.

    `kinds` limits what is looked for (a plugin's `[privacy] redact`). Card numbers must pass the Luhn
    check and IBANs the mod-97 check; a run of 8 to 19 digits that is neither is taken for an account.
    """
    count = 0

    def sub(pattern: re.Pattern[str], kind: str, keep: "Callable[[str], int] | None" = None, group: int = 0) -> None:
        nonlocal text, count
        if kind not in kinds:
            return

        def repl(m: re.Match[str]) -> str:
            nonlocal count
            whole, found = m.group(0), m.group(group)
            size = len(found) if keep is None else keep(found)  # how much of `found` is the item (0: none)
            if not size:
                return whole
            count += 1
            start = m.start(group) - m.start(0)
            return whole[:start] + PLACEHOLDERS[kind] + whole[start + size:]

        text = pattern.sub(repl, text)

    sub(_EMAIL, "email")
    sub(_IBAN, "iban", _iban_ok)
    sub(_CARD, "card", _card_ok)
    sub(_ACCOUNT_CUE, "account", group=1)
    sub(_PHONE, "phone", lambda s: len(s) * _phone_like(s))
    sub(_DIGITS, "account")
    return text, count


def _digits(text: str) -> str:
    """Only the digits of a string."""
    return re.sub(r"\D", "", text)


def _card_ok(text: str) -> int:
    """Length of the longest prefix of `text` (whole groups) that is 13 to 19 digits passing the Luhn check, or 0."""
    while True:
        digits = _digits(text)
        if len(digits) < 13:
            return 0
        if len(digits) <= 19 and _luhn_ok(digits):
            return len(text)
        cut = max(text.rfind(" "), text.rfind("-"))
        if cut < 0:
            return 0
        text = text[:cut]  # digits after the card (a date, an amount) may have been taken in


def _iban_ok(text: str) -> int:
    """Length of the longest prefix of `text` (whole groups) that passes the ISO 13616 mod-97 check, or 0."""
    while True:
        compact = re.sub(r"[ -]", "", text).upper()
        if len(compact) < 15:
            return 0
        moved = compact[4:] + compact[:4]
        if len(compact) <= 34 and int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1:
            return len(text)
        cut = max(text.rfind(" "), text.rfind("-"))
        if cut < 4:
            return 0
        text = text[:cut]  # the last group may be the next word: try without it


def _phone_like(text: str) -> bool:
    """Whether digit groups look like a phone number rather than a date, a postcode or an amount."""
    digits = _digits(text)
    groups = len(re.findall(r"\d+", text))
    international = text.startswith(("+", "00"))
    if not 9 <= len(digits) <= 15 or (groups == 1 and not international) or _DATE.search(text):
        return False  # too short or long, a plain digit run (left to the account check), or a date
    return international or "(" in text or groups >= 3 or len(digits) >= 10


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
