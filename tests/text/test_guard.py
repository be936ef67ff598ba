"""Input normalisation and PII redaction."""

from __future__ import annotations

import pytest

from agent.errors import InputError
from agent.text.guard import clean, redact


def test_clean_normalises_whitespace_and_controls() -> None:
    assert clean("  hello\t\x00 world \n", 100) == "hello world"
    assert clean(b"caf\xc3\xa9", 100) == "café"


def test_clean_keeps_punctuation_only_refuses_junk_and_too_long() -> None:
    assert clean("?!?! ...", 100) == "?!?! ..."
    with pytest.raises(InputError, match="does not look like text"):
        clean("\ufffd\ufffd ?", 100)
    with pytest.raises(InputError, match="101 characters; the limit is 100"):
        clean("a" * 101, 100)


@pytest.mark.parametrize("text, expected", [
    ("card 4111 1111 1111 1111 please", "card <CARD> please"),
    ("card 4111-1111-1111-1112 please", "card <ACCOUNT> please"),  # fails Luhn: a number, not a card
    ("account 12345678 sort code 12-34-56", "account <ACCOUNT> sort code 12-34-56"),
    ("mail me at ann.lee+bank@example.co.uk", "mail me at <EMAIL>"),
    ("my IBAN is GB82 WEST 1234 5698 7654 32", "my IBAN is <IBAN>"),
    ("call +44 20 7946 0100 now", "call <PHONE> now"),
    ("I paid 250 pounds on 12 May", "I paid 250 pounds on 12 May"),
])
def test_redact(text: str, expected: str) -> None:
    assert redact(text)[0] == expected
