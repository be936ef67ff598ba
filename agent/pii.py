"""Personal data in text: e-mails, IBANs, payment cards, bank accounts and phone numbers, replaced by
typed placeholders before anything is stored or trained on.

Numbers are matched as people type them. Matching runs on a folded copy of the text that maps each
character to exactly one (so offsets line up and the span as typed is what gets replaced): digits of
any script and the full-width forms of ASCII (U+FF01..FF5E: digits, letters, '．', '／', '－', '＋')
become ASCII, every space character (no-break, narrow no-break, thin, figure, ideographic) a space, and
hyphen and dash variants (U+2010..2015, U+2212) a '-'. So groups may be separated by dots, slashes,
hyphens or any of those spaces, mixed within one number, in either width.

How a number is classified:
- an IBAN must pass the ISO 13616 mod-97 check, a card (13 to 19 digits, first digit 2 to 6) the Luhn
  check; between their groups one separator (space . - /), or a slash or dash with a space each side;
  a trailing group that breaks the check (a date, the next word) is left out and tried again;
- every other run of digits with at most single separators between groups, 8 digits or more, is an
  account or a phone number: the nearest cue word in the 30 characters before it decides ("account",
  "acct", "a/c", "Konto", "compte", "rekening" against "phone", "call", "mobile", "text", "Rückruf", ...),
  but a '+' or brackets make it a phone number whatever the cue, and so do three or more groups unless
  the nearest cue is an account one and no phone cue is in the window ("the phone on my account:
  0491-571-363" is a phone number); over 15 digits it is an account (phone numbers have at most 15);
  a reference cue ("order", "invoice", "ticket", "tracking", "ISBN", "version", ...) leaves it alone,
  unless a phone or account cue is in the window too ("call me about my order 0412 345 678") or it is
  shaped like a phone number ('+', brackets, a '00' prefix, a leading 0 with 10 or 11 digits); without
  a cue, three groups, a '00' prefix or a leading 0 with 10 or 11 digits make it a phone number, two
  short groups (a ZIP+4 code, 8 or 9 digits) and version numbers (10.0.19045.3803: dots only, four or
  more groups, the second of one or two digits) are left alone, and anything else is an account;
- a run that holds a date (2024-03-15, 15/03/2024) is left alone, and so is an IPv4 address with no
  phone or account cue, and shorter runs (amounts, order numbers, times, "card ending 4242").
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Callable, Iterable

KINDS = ("email", "iban", "card", "account", "phone")  # what redact() finds
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}

_SEP = r"(?:[ ./-]| [./-] )"  # between the groups of a card or an IBAN: one separator, a slash or dash maybe spaced
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IBAN = re.compile(rf"\b[A-Z]{{2}}\d{{2}}(?:[A-Z0-9]{{11,30}}|(?:{_SEP}[A-Z0-9]{{1,4}}){{2,8}})\b", re.IGNORECASE)
_CARD = re.compile(rf"(?<![\w.-])[2-6](?:{_SEP}?\d){{12,18}}(?![\w-])")
_NUMBER = re.compile(r"(?<![\w+/.-])\+?(?:\(\d{1,5}\)|\d{1,6})(?:[ ./-]?(?:\(\d{1,5}\)|\d{1,8})){0,7}(?!\w|:\d)")
_DATE = re.compile(r"\b(?:(?:19|20)\d\d[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:19|20)\d\d)\b")
_VERSION = re.compile(r"[1-9]\d?\.\d{1,2}(?:\.\d+){2,}")  # 10.0.19045.3803, 1.7.5.6310; not 12.345.678.901
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)")
_CUES = {
    "account": re.compile(r"\b(?:ac{1,3}o?u?n?t|ac{2,3}|a/c|konto|compte|rekening)\w*", re.IGNORECASE),
    "phone": re.compile(r"\b(?:phone|mobile|mob|cell|tel|telephone|call|ring|rang|text|sms|whats ?app|landline|fax|"
                        r"dial|reach|contact|hotline|helpline|r(?:ü|ue)ckruf|anruf|handy|rappel|appel|portable)\w*", re.IGNORECASE),
    "reference": re.compile(r"\b(?:order|bestell|commande|invoice|rechnung|facture|ticket|tracking|parcel|shipment|"
                            r"ref\b|reference|serial|version|build\b|firmware|isbn|ean\b|gtin|sku)\w*", re.IGNORECASE),
}
_MAY_HOLD = re.compile("[\\d@\uff20]")  # what fold() maps to a digit (decimal digits of any script) or to '@'
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"
CUE_WINDOW = 30


def redact(text: str, kinds: Iterable[str] = KINDS) -> tuple[str, int]:
    """`text` with the personal data of the given kinds replaced by placeholders, and how many were replaced."""
    if not _MAY_HOLD.search(text):  # every kind needs a digit (of any script) or an '@': most labels, notes, words
        return text, 0
    kinds, count, folded = set(kinds), 0, fold(text)

    def sub(pattern: re.Pattern[str], decide: Callable[[str, str], tuple[str | None, int]]) -> None:
        nonlocal text, folded, count
        spans = []
        for m in pattern.finditer(folded):
            kind, size = decide(m.group(0), folded[max(m.start() - CUE_WINDOW, 0): m.start()])
            if kind is not None and kind in kinds and size:
                spans.append((m.start(), m.start() + size, PLACEHOLDERS[kind]))
        count += len(spans)
        text, folded = _splice(text, spans), _splice(folded, spans)

    sub(_EMAIL, lambda s, _: ("email", len(s)))
    sub(_IBAN, lambda s, _: ("iban", _longest(s, _iban_ok)))
    sub(_CARD, lambda s, _: ("card", _longest(s, lambda c: 13 <= len(_digits(c)) <= 19 and _luhn_ok(_digits(c)))))
    sub(_NUMBER, _account_or_phone)
    return text, count


def fold(text: str) -> str:
    """`text` with each character mapped to one ASCII look-alike where it has one (digits, spaces, dashes)."""
    return text if text.isascii() else "".join(map(_fold_char, text))


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    """One character as matching sees it: a digit in any script, a space of any width, a dash of any kind."""
    if (digit := unicodedata.decimal(ch, None)) is not None:
        return str(digit)
    if 0xFF01 <= ord(ch) <= 0xFF5E:  # the full-width forms of ASCII
        return chr(ord(ch) - 0xFEE0)
    if unicodedata.category(ch) == "Zs":
        return " "
    return "-" if ch in _DASHES else ch


def _splice(text: str, spans: list[tuple[int, int, str]]) -> str:
    """`text` with each (start, end) span, in order and not overlapping, replaced by its placeholder."""
    parts, last = [], 0
    for start, end, placeholder in spans:
        parts += [text[last:start], placeholder]
        last = end
    return "".join(parts) + text[last:]


def _digits(text: str) -> str:
    """Only the digits of a string."""
    return re.sub(r"\D", "", text)


def _longest(text: str, ok: Callable[[str], bool]) -> int:
    """Length of the longest prefix of `text`, cut between groups, that passes `ok`; 0 if none does."""
    while True:
        if ok(text):
            return len(text)
        cut = max(text.rfind(sep) for sep in " ./-")
        if cut <= 0:
            return 0
        text = text[:cut].rstrip(" ./-")


def _luhn_ok(digits: str) -> bool:
    """The Luhn checksum that payment card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (separators between groups ignored)."""
    compact = re.sub(r"[ ./-]", "", text).upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha():
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _account_or_phone(number: str, before: str) -> tuple[str | None, int]:
    """('account' | 'phone' | None, length) for a run of digit groups, from its shape and the cues before it."""
    digits = _digits(number)
    if len(digits) < 8 or len(digits) > 19 or _DATE.search(number):
        return None, 0
    cues, groups = _cues(before), len(re.findall(r"\d+", number))
    strong = {k: v for k, v in cues.items() if k != "reference"}  # a phone or account cue outweighs a reference one
    if _IPV4.fullmatch(number) and not strong:
        return None, 0  # an IP address
    cue = max(strong or cues, key=(strong or cues).__getitem__, default=None)  # the one that ends nearest
    dialled = number.startswith("+") or "(" in number  # shapes account numbers do not take
    phone_shaped = dialled or digits[:2] == "00" and len(digits) >= 11 or digits[0] == "0" and len(digits) in (10, 11)
    if cue == "reference" and not phone_shaped or not strong and _VERSION.fullmatch(number):
        return None, 0  # an order, invoice or tracking number, or a version, with no phone or account cue near
    if cue == "account" and groups >= 3 and "phone" in cues:
        cue = "phone"  # "the phone on my account: 0491-571-363"
    if cue == "account" and not dialled or len(digits) > 15:
        return "account", len(number)
    if cue == "phone" or dialled or groups >= 3 or number.startswith("00") and len(digits) >= 11:
        return "phone", len(number)
    if cue is None and groups == 2 and len(digits) <= 9:
        return None, 0  # a ZIP+4 code or a reference in two parts, without a cue saying otherwise
    return ("phone" if digits[0] == "0" and len(digits) in (10, 11) else "account"), len(number)


def _cues(before: str) -> dict[str, int]:
    """Each kind of cue word ('account', 'phone', 'reference') found in `before`, with where its last one ends."""
    return {kind: ends[-1] for kind, pattern in _CUES.items() if (ends := [m.end() for m in pattern.finditer(before)])}
