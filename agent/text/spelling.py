"""Emoji and pictographs the encoder's vocabulary lacks, spelt out in words before tokenising.

The packaged encoder reads every emoji as the same unknown token, so "👍" and "😡" would embed alike.
Each such character becomes its Unicode name in lower case ("thumbs up", "pouting face"); skin
tones, joiners and variation selectors, which carry no meaning of their own, are dropped, and a
flag reads "flag". Text the vocabulary covers (letters, digits, '€', '£', '♥') is left as it is.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any, Sequence

READING = "spelt-1"  # part of what saved indexes must match: embeddings of emoji changed with it
_DROP_WORDS = {"sign", "heavy"}  # "THUMBS UP SIGN" reads as "thumbs up"
# Where the Unicode name hides what a face means, the word people use for it.
_MEANING = {"😡": "angry face", "🤬": "furious face cursing", "😤": "frustrated face", "🙄": "annoyed eye roll",
            "🤮": "disgusted face vomiting", "🥳": "party face", "😒": "unamused annoyed face", "😖": "frustrated face",
            "🤦": "facepalm", "💔": "broken heart", "🤡": "clown", "❤": "red heart love", "😅": "relieved grinning face"}


def spelt(texts: Sequence[str], vocab: Any) -> list[str]:
    """Each text with the pictographs `vocab` lacks spelt out (ASCII text is returned as it is)."""
    return [text if text.isascii() else _spell(text, vocab) for text in texts]


def _spell(text: str, vocab: Any) -> str:
    """One text, spelt."""
    out = []
    for ch in text:
        word = _word(ch) if ch not in vocab else None
        out.append(ch if word is None else f" {word} " if word else "")
    return "".join(out)


@lru_cache(maxsize=4096)
def _word(ch: str) -> str | None:
    """The words for a pictograph, '' for a modifier to drop, None for a character to keep."""
    if ch in _MEANING:
        return _MEANING[ch]
    category = unicodedata.category(ch)
    if ch in "\u200d\ufe0e\ufe0f\u20e3" or "\U0001f3fb" <= ch <= "\U0001f3ff" or "\U000e0020" <= ch <= "\U000e007f":
        return ""
    if "\U0001f1e6" <= ch <= "\U0001f1ff":  # the two letters of a flag
        return "flag"
    if category != "So" and not ("\U0001f000" <= ch <= "\U0001fbff"):
        return None
    name = unicodedata.name(ch, "")
    return " ".join(w for w in name.lower().split() if w not in _DROP_WORDS) or None
