"""Personal data in text: e-mails, IBANs, Chinese resident IDs, payment cards, bank accounts and phone numbers,
replaced by typed placeholders before anything is stored or trained on.

Numbers are found wherever they stand: glued to the word before or after (letters, CJK, any punctuation), in URLs
and JSON. Only a digit next to a number makes it part of another one; validity checks keep false positives down.

Numbers are matched as people type them. Matching runs on a folded copy of the text that maps each
character to exactly one (so offsets line up and the span as typed is what gets replaced): digits of
any script and the full-width forms of ASCII (U+FF01..FF5E: digits, letters, '．', '／', '－', '＋')
become ASCII, every space character (no-break, narrow no-break, thin, figure, ideographic) a space, and
hyphen and dash variants (U+2010..2015, U+2212) a '-'. So groups may be separated by dots, slashes,
hyphens or any of those spaces, mixed within one number, in either width.

How a number is classified:
- an IBAN must have its country's length and pass the ISO 13616 mod-97 check; a resident ID 18 characters
  with a real date of birth and the ISO 7064 MOD 11-2 check character; a card (13 to 19 digits, first
  digit 2 to 6) the Luhn check; between their groups one separator (space . - /), or a slash or dash with
  a space each side; a trailing group that breaks the check (a date, the next word) is left out and tried again;
- every other run of digits with at most single separators between groups, 8 digits or more, is an
  account or a phone number: a mainland mobile (1[3-9] and 9 digits, maybe after +86 or 0086, in one
  block or 3-4-4) is a phone number whatever the words around it, and 15 digits in one block holding a
  date of birth an old resident ID; otherwise the nearest cue word in the 30 characters before it decides
  ("account", "acct", "a/c", "Konto", "compte", "rekening", 账号, 卡号 against "phone", "call", "mobile",
  "text", "Rückruf", 手机, 电话, ...), but a '+' or brackets make it a phone number whatever the cue, and
  so do three or more groups unless the nearest cue is an account one and no phone cue is in the window
  ("the phone on my account: 0491-571-363" is a phone number); over 15 digits it is an account (phone
  numbers have at most 15); a reference cue ("order", "invoice", "ticket", "tracking", "ISBN", "version",
  订单, 快递, ...) leaves it alone, unless a phone or account cue is in the window too ("call me about my
  order 0412 345 678") or it is shaped like a phone number ('+', brackets, a '00' prefix, a leading 0 with
  10 or 11 digits); without a cue, three groups, a '00' prefix or a leading 0 with 10 or 11 digits make it
  a phone number, two short groups (a ZIP+4 code, 8 or 9 digits), version numbers (10.0.19045.3803: dots
  only, four or more groups, the second of one or two digits) and runs of one or two repeated digits
  (888888888, 10000000000000) are left alone, and anything else is an account;
- a run that holds a date (2024-03-15, 15/03/2024) is left alone, and so is an IPv4 address with no
  phone or account cue, the digits inside a hash or a UUID, and shorter runs (amounts, order numbers,
  times, "card ending 4242").
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Callable, Iterable

KINDS = ("email", "iban", "id", "card", "account", "phone")  # what redact() finds
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}

_SEP = r"(?:[ ./-]| [./-] |\s{2,3}|[\t\r\n])"  # between the groups of a card or an IBAN: one separator, a slash or dash maybe spaced
_START = r"(?<!\d)(?<!\d[.-])"  # a number starts after anything but a digit (or a digit and a dot or dash): letters, CJK, punctuation
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IBAN = re.compile(rf"(?<!\d)[A-Z]{{2}}\d{{2}}(?:[A-Z0-9]{{11,30}}|(?:{_SEP}[A-Z0-9]{{1,4}}){{2,8}})", re.IGNORECASE)
_ID = re.compile(rf"{_START}[1-8](?:{_SEP}?\d){{16}}{_SEP}?[\dXx](?!\d)")  # a mainland resident ID: 17 digits and a check character
_CARD = re.compile(rf"{_START}[2-6](?:{_SEP}?\d){{12,18}}(?!\d)")
_NUMBER = re.compile(r"(?<![\d+])(?<!\d[/.-])\+?(?:\(\d{1,5}\)|\d{1,6})(?:[ ./-]?(?:\(\d{1,5}\)|\d{1,8})){0,7}(?!\d|:\d)")
_MOBILE_CN = re.compile(r"(?<![\d+])(?<!\d[./-])(?:(?:\+86|0086)[ ./-]?)?1[3-9](?:\d{9}|\d[ ./-]?\d{4}[ ./-]?\d{4})(?![\d])")  # 138 1234 5678
_HEX = re.compile(r"(?<![0-9a-z])(?=[0-9a-f]*[a-f])[0-9a-f]{32,}(?![0-9a-z])|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE)
_DATE = re.compile(r"\b(?:(?:19|20)\d\d[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:19|20)\d\d)\b")
_VERSION = re.compile(r"[1-9]\d?\.\d{1,2}(?:\.\d+){2,}")  # 10.0.19045.3803, 1.7.5.6310; not 12.345.678.901
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)")
_CUES = {
    "account": re.compile(r"(?<![a-z])(?:ac{1,3}o?u?n?t|ac{2,3}|a/c|konto|compte|rekening)\w*|账号|账户|帐号|帐户|户号|卡号|银行卡", re.IGNORECASE),
    "phone": re.compile(r"(?<![a-z])(?:phone|mobile|mob|cell|tel|telephone|call|ring|rang|text|sms|whats ?app|landline|fax|"
                        r"dial|reach|contact|hotline|helpline|r(?:ü|ue)ckruf|anruf|handy|rappel|appel|portable)\w*|手机|电话|联系|致电|来电|微信",
                       re.IGNORECASE),
    "reference": re.compile(r"(?<![a-z])(?:order|bestell|commande|invoice|rechnung|facture|ticket|tracking|parcel|shipment|"
                            r"ref\b|reference|serial|version|build\b|firmware|isbn|ean\b|gtin|sku)\w*|订单|单号|快递|运单|物流|编号|型号|版本",
                           re.IGNORECASE),
}
_MAY_HOLD = re.compile("[\\d@\uff20]")  # what fold() maps to a digit (decimal digits of any script) or to '@'
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\u00b7\u30fb\uff65\u30fc"  # and middle dots, ー
CUE_WINDOW = 30
_LATIN = re.compile(r"[A-Za-z_]")
_CURRENCY = re.compile(r" ?(?:元|块|万|亿|円|rmb\b|usd\b|eur\b|gbp\b|dollars?\b|euros?\b|pounds?\b)", re.IGNORECASE)
_CLOCK = re.compile(r"(?:[01]\d|2[0-3])[0-5]\d[0-5]\d")  # hhmmss after a date: 20240315143000


def redact(text: str, kinds: Iterable[str] = KINDS) -> tuple[str, int]:
    """`text` with the personal data of the given kinds replaced by placeholders, and how many were replaced."""
    if not _MAY_HOLD.search(text):  # every kind needs a digit (of any script) or an '@': most labels, notes, words
        return text, 0
    kinds, count, folded = set(kinds), 0, fold(text)

    def sub(pattern: re.Pattern[str], decide: Callable[[str, str, str], tuple[str | None, int]]) -> None:
        nonlocal text, folded, count
        spans, keep, pos = [], [m.span() for m in _HEX.finditer(folded)], 0  # digits inside a hash or a UUID are no one's
        while (m := pattern.search(folded, pos)) is not None:
            start = m.start()
            kind, size = (None, 0) if any(a <= start < b for a, b in keep) else decide(
                m.group(0), folded[max(start - CUE_WINDOW, 0): start], folded[m.end(): m.end() + CUE_WINDOW])
            if kind is not None and kind in kinds and size:
                spans.append((start, start + size, PLACEHOLDERS[kind]))
                pos = start + size
            else:
                pos = start + 1  # a later group of the same run may begin a number of its own ("order 3 4539 1488 ...")
        count += len(spans)
        text, folded = _splice(text, spans), _splice(folded, spans)

    sub(_EMAIL, lambda s, _, __: ("email", len(s)))
    sub(_IBAN, lambda s, _, __: ("iban", _iban_length(s)))
    sub(_ID, lambda s, _, __: ("id", len(s) if _id18_ok(re.sub(r"[ ./-]", "", s)) else 0))
    sub(_CARD, lambda s, _, __: ("card", _longest(s, lambda c: 13 <= len(_digits(c)) <= 19 and _luhn_ok(_digits(c)))))
    sub(_MOBILE_CN, lambda s, _, __: ("phone", len(s)))  # before the runs, which would join two numbers side by side
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


IBAN_LENGTHS = dict(  # ISO 13616: each country's IBANs have one length
    AD=24, AE=23, AL=28, AT=20, AZ=28, BA=20, BE=16, BG=22, BH=22, BI=27, BR=29, BY=28, CH=21, CR=22, CY=28, CZ=24,
    DE=22, DJ=27, DK=18, DO=28, EE=20, EG=29, ES=24, FI=18, FK=18, FO=18, FR=27, GB=22, GE=22, GI=23, GL=18, GR=27,
    GT=28, HN=28, HR=21, HU=28, IE=22, IL=23, IQ=23, IS=26, IT=27, JO=30, KW=30, KZ=20, LB=28, LC=32, LI=21, LT=20,
    LU=20, LV=21, LY=25, MC=27, MD=24, ME=22, MK=19, MN=20, MR=27, MT=31, MU=30, NI=28, NL=18, NO=15, OM=23, PK=24,
    PL=28, PS=29, PT=25, QA=29, RO=24, RS=22, RU=33, SA=24, SC=31, SD=18, SE=24, SI=19, SK=24, SM=27, SO=23, ST=25,
    SV=28, TL=23, TN=24, TR=26, UA=29, VA=22, VG=24, XK=20, YE=30)


def _iban_length(text: str) -> int:
    """Length of the IBAN `text` starts with: its country's number of letters and digits, if they pass mod-97; else 0."""
    size, count = IBAN_LENGTHS.get(text[:2].upper()), 0
    for end, ch in enumerate(text, 1):  # whatever is glued on after the last character is not read
        count += ch.isalnum()
        if count == size:
            return end if _iban_ok(text[:end]) else 0
    return 0


def _id18_ok(compact: str) -> bool:
    """A mainland resident ID: an area, a date of birth and the ISO 7064 MOD 11-2 check character."""
    if len(compact) != 18 or not _birth_ok(compact[6:14]):
        return False
    total = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(compact[:17]))
    return "10X98765432"[total % 11] == compact[17].upper()


def _id15_ok(digits: str) -> bool:
    """The first-generation (15-digit) resident ID: an area and a date of birth in the 1900s."""
    return len(digits) == 15 and digits[0] in "12345678" and _birth_ok("19" + digits[6:12])


def _birth_ok(yyyymmdd: str) -> bool:
    """A real calendar date from 1900 to 2099."""
    from datetime import date

    try:
        return 1900 <= int(yyyymmdd[:4]) <= 2099 and bool(date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])))
    except ValueError:
        return False


def _iban_ok(text: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (separators between groups ignored)."""
    compact = re.sub(r"[ ./-]", "", text).upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha():
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _account_or_phone(number: str, before: str, after: str) -> tuple[str | None, int]:
    """('account' | 'phone' | 'id' | None, length) for a run of digit groups, from its shape and the cues before it."""
    while len(_digits(number)) > 19 and (cut := number.rfind(" ")) > 0:
        number = number[:cut].rstrip(" ./-")  # two numbers side by side (a space between): judge the first, then the rest
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
    if _id15_ok(digits) and len(number) == 15:
        return "id", len(number)  # the old resident ID, written as one block
    if not strong and not dialled and _not_personal(number, digits, before, after):
        return None, 0
    if cue == "account" and groups >= 3 and "phone" in cues:
        cue = "phone"  # "the phone on my account: 0491-571-363"
    if cue == "account" and not dialled or len(digits) > 15:
        return "account", len(number)
    if cue == "phone" or dialled or groups >= 3 or number.startswith("00") and len(digits) >= 11:
        return "phone", len(number)
    if cue is None and groups == 2 and len(digits) <= 9:
        return None, 0  # a ZIP+4 code or a reference in two parts, without a cue saying otherwise
    if not strong and len(set(digits)) <= 2 and not phone_shaped:
        return None, 0  # 888888888, 10000000000000, 20202020: emphasis or a pattern, not a number someone was given
    return ("phone" if digits[0] == "0" and len(digits) in (10, 11) else "account"), len(number)


def _not_personal(number: str, digits: str, before: str, after: str) -> bool:
    """Shapes that, without a phone or account cue, are codes, dates, amounts or links: a number stuck to a Latin
    letter (XY12345678, 0x80070005, IMG_20240315, a hex id), in a URL's path, before a currency, or a date in one block."""
    if _LATIN.fullmatch(before[-1:]) or _LATIN.fullmatch(after[:1]) or _CURRENCY.match(after) or before[-1:] in ("$", "€", "£", "¥"):
        return True
    if "://" in before and not re.search(r"\s", before[before.rfind("://"):]):
        return True  # https://shop.example/item/100012345678.html
    return len(number) in (8, 14) and number.isdigit() and _birth_ok(number[:8]) and (len(number) == 8 or _CLOCK.fullmatch(number[8:]))


def _cues(before: str) -> dict[str, int]:
    """Each kind of cue word ('account', 'phone', 'reference') found in `before`, with where its last one ends."""
    return {kind: ends[-1] for kind, pattern in _CUES.items() if (ends := [m.end() for m in pattern.finditer(before)])}
