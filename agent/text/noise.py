"""Typo and casing noise for training and evaluation: what people's fingers do to text.

`perturb(text, rate)` changes about `rate` of the letters and digits, each by one of: swap with the
next character, delete, double, replace by a neighbouring key (QWERTY), or flip its case. The same
seed gives the same noise, so noisy test sets are reproducible.
"""

from __future__ import annotations

import random

_ROWS = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _ch in enumerate(_row):
        _near = [_row[i] for i in (_c - 1, _c + 1) if 0 <= i < len(_row)]
        _near += [_ROWS[j][k] for j in (_r - 1, _r + 1) if 0 <= j < len(_ROWS) for k in (_c, _c + 1) if k < len(_ROWS[j])]
        _NEIGHBOURS[_ch] = "".join(_near)
EDITS = ("swap", "delete", "double", "neighbour", "case")


def perturb(text: str, rate: float, rng: random.Random | None = None) -> str:
    """`text` with about `rate` of its letters and digits changed by one typo each."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate must be from 0 to 1, got {rate}")
    rng = rng or random.Random(0)
    chars, out, i = list(text), [], 0
    while i < len(chars):
        ch = chars[i]
        if not ch.isalnum() or rng.random() >= rate:
            out.append(ch)
            i += 1
            continue
        edit = rng.choice(EDITS)
        if edit == "swap" and i + 1 < len(chars):
            out += [chars[i + 1], ch]
            i += 2
            continue
        if edit == "double":
            out += [ch, ch]
        elif edit == "neighbour" and ch.lower() in _NEIGHBOURS:
            near = rng.choice(_NEIGHBOURS[ch.lower()])
            out.append(near.upper() if ch.isupper() else near)
        elif edit == "case":
            out.append(ch.lower() if ch.isupper() else ch.upper())
        elif edit != "delete":
            out.append(ch)
        i += 1
    return "".join(out) or text


def noisy(texts: list[str], rate: float, seed: int = 0) -> list[str]:
    """Each text perturbed at `rate`, reproducibly for a seed."""
    rng = random.Random(seed)
    return [perturb(t, rate, rng) for t in texts]
