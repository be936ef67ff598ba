"""Personal data in text: e-mails, IBANs, payment cards, bank accounts and phone numbers, replaced by
typed placeholders before anything is stored or trained on.

How a number is classified:
- an IBAN must pass the ISO 13616 mod-97 check, a card (13 to 19 digits, first digit 2 to 6) the Luhn
  check; a trailing group that breaks the check (a date, the next word) is left out and tried again;
- every other run of digits with at most single separators (space . - /) between groups, 8 digits or
  more, is an account or a phone number: the nearest cue word in the 30 characters before it decides
  ("account", "acct", "a/c" against "phone", "call", "mobile", "text", ...), unless a '+', brackets or
  three or more groups make it a phone number whatever the cue; without a cue, a '00' prefix or a
  leading 0 with 10 or 11 digits also make it a phone number, two short groups (a ZIP+4 code, 8 or 9
  digits) are left alone, and anything else is an account number;
- a run that holds a date (2024-03-15, 15/03/2024) is left alone, and so are shorter runs (amounts,
  order numbers, times, "card ending 4242").
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

KINDS = ("email", "iban", "card", "account", "phone")  # what redact() finds
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?:[ -][A-Z0-9]{1,4}){2,8})\b", re.IGNORECASE)
_CARD = re.compile(r"(?<![\w.-])[2-6](?:[ -]?\d){12,18}(?![\w-])")
_NUMBER = re.compile(r"(?<![\w+/.-])\+?(?:\(\d{1,5}\)|\d{1,6})(?:[ ./-]?(?:\(\d{1,5}\)|\d{1,8})){0,7}(?!\w|:\d)")
_DATE = re.compile(r"\b(?:(?:19|20)\d\d[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:19|20)\d\d)\b")
_ACCOUNT_CUE = re.compile(r"\b(?:ac{1,3}o?u?n?t|ac{2,3}|a/c)\w*", re.IGNORECASE)
_PHONE_CUE = re.compile(r"\b(?:phone|mobile|mob|cell|tel|telephone|call|ring|rang|text|sms|whats ?app|landline|fax|"
                        r"dial|reach|contact)\w*", re.IGNORECASE)
CUE_WINDOW = 30


def redact(text: str, kinds: Iterable[str] = KINDS) -> tuple[str, int]:
    """`text` with the personal data of the given kinds replaced by placeholders, and how many were replaced."""
    kinds, count = set(kinds), 0

    def sub(pattern: re.Pattern[str], decide: Callable[[str, str], tuple[str | None, int]]) -> None:
        nonlocal text, count

        def repl(m: re.Match[str]) -> str:
            nonlocal count
            kind, size = decide(m.group(0), text[max(m.start() - CUE_WINDOW, 0): m.start()])
            if kind is None or kind not in kinds or not size:
                return m.group(0)
            count += 1
            return PLACEHOLDERS[kind] + m.group(0)[size:]

        text = pattern.sub(repl, text)

    sub(_EMAIL, lambda s, _: ("email", len(s)))
    sub(_IBAN, lambda s, _: ("iban", _longest(s, _iban_ok)))
    sub(_CARD, lambda s, _: ("card", _longest(s, lambda c: 13 <= len(_digits(c)) <= 19 and _luhn_ok(_digits(c)))))
    sub(_NUMBER, _account_or_phone)
    return text, count


def _digits(text: str) -> str:
    """Only the digits of a string."""
    return re.sub(r"\D", "", text)


def _longest(text: str, ok: Callable[[str], bool]) -> int:
    """Length of the longest prefix of `text`, cut between groups, that passes `ok`; 0 if none does."""
    while True:
        if ok(text):
            return len(text)
        cut = max(text.rfind(" "), text.rfind("-"))
        if cut <= 0:
            return 0
        text = text[:cut]


def _luhn_ok(digits: str) -> bool:
    """The Luhn checksum that payment card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces and dashes ignored)."""
    compact = re.sub(r"[ -]", "", text).upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha():
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _account_or_phone(number: str, before: str) -> tuple[str | None, int]:
    """('account' | 'phone' | None, length) for a run of digit groups, from its shape and the cue before it."""
    digits = _digits(number)
    if len(digits) < 8 or len(digits) > 19 or _DATE.search(number):
        return None, 0
    cue, groups = _nearest_cue(before), len(re.findall(r"\d+", number))
    phone = number.startswith("+") or "(" in number or groups >= 3  # shapes account numbers do not take
    if cue == "account" and not phone or len(digits) > 15:
        return "account", len(number)
    if cue == "phone" or phone or number.startswith("00") and len(digits) >= 11:
        return "phone", len(number)
    if cue is None and groups == 2 and len(digits) <= 9:
        return None, 0  # a ZIP+4 code or a reference in two parts, without a cue saying otherwise
    return ("phone" if digits[0] == "0" and len(digits) in (10, 11) else "account"), len(number)


def _nearest_cue(before: str) -> str | None:
    """'account' or 'phone', whichever cue word ends nearest to the number; None without one."""
    best: tuple[int, str | None] = (-1, None)
    for kind, pattern in (("account", _ACCOUNT_CUE), ("phone", _PHONE_CUE)):
        for m in pattern.finditer(before):
            if m.end() > best[0]:
                best = (m.end(), kind)
    return best[1]
