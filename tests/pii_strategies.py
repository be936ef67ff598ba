"""Hypothesis strategies for personal data: valid values of every kind, written with every separator style, placed
in random contexts (glued to words, after any punctuation mark, in Chinese, Arabic or Cyrillic, in URLs and JSON).

Digits come from a seeded random generator, so shrinking keeps values that look like real ones (no 00000000).
"""

from __future__ import annotations

import json
import random
import re
import sys
import unicodedata
from dataclasses import dataclass

from hypothesis import strategies as st

SEPARATORS = ["", " ", "-", ".", "/", "\u00a0", "\u202f", "\u2009", "\u2007", "\u3000", "\u2010", "\u2013", "\u2212",
              "\uff0e", "\uff0f", "\uff0d"]  # plain, ASCII, no-break and other spaces, dashes, full-width forms
PUNCTUATION = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)).startswith("P")]
SCRIPTS = {"latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "chinese": (0x4E00, 0x9FA5),
           "arabic": (0x0621, 0x064A), "cyrillic": (0x0410, 0x044F)}
ACCOUNT_CUES = ["account", "acct", "a/c", "Konto", "compte", "rekening", "账号", "账户", "卡号", "Account no."]
IBAN_COUNTRIES = {"DE": 22, "GB": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27, "BE": 16, "CH": 21, "PL": 28, "IE": 22}
CARD_PREFIXES = [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16),
                 ("35", 16), ("62", 16), ("62", 17), ("62", 18), ("62", 19)]  # Visa, Mastercard, Amex, Discover, JCB, UnionPay


@dataclass(frozen=True)
class Planted:
    """A message holding one personal value: the message, the value as typed, and its kind."""

    text: str
    value: str
    kind: str

    def forms(self) -> set[str]:
        """What must not reach disk: the value as typed, and its digits with the separators taken out (either width)."""
        digits = "".join(ch for ch in self.value if ch.isalnum())
        ascii_digits = "".join(str(unicodedata.decimal(ch, ch)) if ch.isdigit() else ch for ch in digits)
        return {self.value, digits, ascii_digits} if len(ascii_digits) >= 8 else {self.value}


def luhn_complete(body: str) -> str:
    """`body` with the Luhn check digit appended."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def group(digits: str, sizes: list[int], sep: str) -> str:
    """`digits` cut into groups of the given sizes (the last takes the rest), joined by `sep`."""
    parts, i = [], 0
    for size in sizes:
        if i >= len(digits):
            break
        parts.append(digits[i:i + size])
        i += size
    if i < len(digits):
        parts.append(digits[i:])
    return sep.join(p for p in parts if p)


def full_width(text: str) -> str:
    """ASCII digits as their full-width forms."""
    return "".join(chr(0xFF10 + int(ch)) if ch.isdigit() and ch.isascii() else ch for ch in text)


@st.composite
def cards(draw: st.DrawFn) -> str:
    """A Luhn-valid card number of a real issuer's shape, in groups of four (Amex 4-6-5), maybe in full-width digits."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    prefix, length = draw(st.sampled_from(CARD_PREFIXES))
    number = luhn_complete(prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1)))
    text = group(number, [4, 6, 5] if length == 15 else [4, 4, 4, 4], draw(st.sampled_from(SEPARATORS)))
    return full_width(text) if draw(st.booleans()) else text


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    """A mainland resident ID: 18 characters with a birth date and the MOD 11-2 check character, or the old 15 digits."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    area = str(rng.randint(110000, 829999))
    born = f"{rng.randint(1930, 2012)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    if draw(st.booleans()):
        return area + born[2:] + f"{rng.randint(0, 999):03d}"
    body = area + born + f"{rng.randint(0, 999):03d}"
    check = "10X98765432"[sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(body)) % 11]
    number = body + (check.lower() if check == "X" and draw(st.booleans()) else check)
    return group(number, [6, 8, 4], draw(st.sampled_from(["", "", " ", "-"])))


@st.composite
def phones(draw: st.DrawFn) -> str:
    """A mainland mobile number (1[3-9] and 9 digits, maybe after +86 or 0086) or an international one after '+'."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    sep = draw(st.sampled_from(SEPARATORS))
    if draw(st.integers(0, 3)):
        number = group(f"1{rng.randint(3, 9)}" + "".join(rng.choice("0123456789") for _ in range(9)), [3, 4, 4], sep)
        return draw(st.sampled_from(["", "+86", "+86 ", "0086", "0086 ", "+86-", "(+86) "])) + number
    country = draw(st.sampled_from(["44", "1", "49", "33", "61", "852", "91"]))
    rest = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 10)))
    return f"+{country}{draw(st.sampled_from([' ', '-', sep]))}{group(rest, [3, 3, 4], sep)}"


@st.composite
def ibans(draw: st.DrawFn) -> str:
    """A mod-97-valid IBAN of a common country, compact or in groups of four."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    country = draw(st.sampled_from(sorted(IBAN_COUNTRIES)))
    bban = "".join(rng.choice("0123456789") for _ in range(IBAN_COUNTRIES[country] - 4))
    moved = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    number = f"{country}{98 - int(moved) % 97:02d}{bban}"
    return group(number, [4] * 9, draw(st.sampled_from(["", " ", "-", ".", "\u00a0"])))


@st.composite
def accounts(draw: st.DrawFn) -> str:
    """A bank account number of 8 to 12 digits in groups of four, with any separator."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    digits = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(rng.randint(7, 11)))
    return group(digits, [4, 4, 4], draw(st.sampled_from(SEPARATORS)))


@st.composite
def emails(draw: st.DrawFn) -> str:
    """An e-mail address."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    local = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789._") for _ in range(rng.randint(3, 12))).strip("._")
    host = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
    return f"{local or 'jo'}@{host}.{rng.choice(['com', 'cn', 'de', 'co.uk', 'com.cn'])}"


VALUES = {"card": cards(), "id": resident_ids(), "phone": phones(), "iban": ibans(), "account": accounts(), "email": emails()}


@st.composite
def words(draw: st.DrawFn) -> str:
    """One to eight letters of one script (Latin, Chinese, Arabic or Cyrillic), never a digit."""
    script = SCRIPTS[draw(st.sampled_from(sorted(SCRIPTS)))]
    if isinstance(script, str):
        return draw(st.text(st.sampled_from(script), min_size=1, max_size=8))
    return draw(st.text(st.characters(min_codepoint=script[0], max_codepoint=script[1]), min_size=1, max_size=8))


@st.composite
def placed(draw: st.DrawFn, kind: str) -> Planted:
    """A value of `kind` in a random context; an account number follows one of its cue words, as it would in speech."""
    value = draw(VALUES[kind])
    before, after = draw(words()), draw(words())
    cue = draw(st.sampled_from(ACCOUNT_CUES)) if kind == "account" else ""
    shape = draw(st.sampled_from(["glued", "punctuation", "spaced", "url", "json"]))
    if shape == "glued":
        text = f"{before} {cue}{value}{after}" if cue else f"{before}{value}{after}"
    elif shape == "punctuation":
        text = f"{cue}{before}{draw(st.sampled_from(PUNCTUATION))}{value}{draw(st.sampled_from(PUNCTUATION))}{after}"
    elif shape == "spaced":
        text = f"{before} {cue} {value} {after}"
    elif shape == "url":
        path = f"pay?{cue}=" if cue else draw(st.sampled_from(["u/", "q?v=", "a?x=1&id="]))
        text = f"{before} https://example.com/{path}{value}{draw(st.sampled_from(['', '/', '&lang=zh']))} {after}"
    else:
        text = f"{before} " + json.dumps({"note": f"{cue}{after}{value}"}, ensure_ascii=False)
    return Planted(re.sub(r"\s+", " ", text).strip(), value, kind)


@st.composite
def ordinary(draw: st.DrawFn) -> str:
    """Text with numbers that are no one's personal data: amounts, dates, times, short order numbers, failed checks."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    card = luhn_complete("4" + "".join(rng.choice("0123456789") for _ in range(14)))
    broken = card[:-1] + str((int(card[-1]) + 1) % 10)
    pieces = [f"${rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}", f"{rng.randint(1, 28)}/{rng.randint(1, 12)}/20{rng.randint(10, 30)}",
              f"20{rng.randint(10, 30)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}",
              f"order {rng.randint(1000, 9999999)}", f"订单号{broken}", f"{rng.randint(1, 999)}元", f"tracking {broken}",
              f"{rng.randint(2, 9)}0% off", f"room {rng.randint(100, 999)}"]
    picked = draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=4))
    return " ".join(f"{draw(st.sampled_from(FILLERS))} {p}" for p in picked)


FILLERS = ["paid", "on", "at", "for", "since", "价格", "日期", "下午", "оплата", "дата", "دفع", "تاريخ"]  # no cue words
