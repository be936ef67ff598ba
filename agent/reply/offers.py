"""Two likely labels: when the top two are close, the reply offers both, and the person's pick is learned.

As in a two-stage fallback: a turn that would fall back, but whose second label is at least
`[thresholds] two_choices` times as likely as the first, asks "did you mean 1 or 2?" instead of
refusing; a turn that is answered while its second label is at least `second_choice` times as likely
adds "or did you mean 2?". The next message of the conversation ("1", "2", "the second one", or a
label's name or description) picks one: that turn is answered for the label picked, and the pick is
stored as the offering turn's label, which `agent finetune` learns like any correction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.plugin.loaded import Decision
    from agent.plugin.manifest import Thresholds

_PICK = re.compile(r"(?:(?:it'?s|i meant|i mean|i want|make it|take)\s+)?(?:the\s+|number\s+|option\s+|no\.?\s*|#)?"
                   r"(1|2|one|two|first|second|1st|2nd)(?:\s+(?:one|option))?(?:\s+please)?[\s.!)]*")
_WORDS = {"1": 0, "one": 0, "first": 0, "1st": 0, "2": 1, "two": 1, "second": 1, "2nd": 1}
NOTE = "picked from the two likely labels offered"


@dataclass
class Choice:
    """One label offered, with its probability, what it is about, and the answer it would give."""

    label: str
    probability: float
    about: str
    answer_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"label": self.label, "probability": self.probability, "about": self.about, "answer_id": self.answer_id}


@dataclass
class Picked:
    """A message that picks one of the labels the conversation's last turn offered."""

    turn_id: int | None  # the offering turn (None when it was not logged)
    plugin: str
    choice: Choice


class Offer(Enum):
    """What a turn offers of its top two labels."""

    NONE = "none"  # answer the top label alone
    ASK = "ask"  # a fallback: ask which of the two
    ALSO = "also"  # answer the top label and add "or did you mean 2?"


def offer(decision: "Decision", th: "Thresholds") -> Offer:
    """ASK which of the top two (instead of a fallback), ALSO offer the second beside the answer, or NONE."""
    if len(decision.top) < 2 or (decision.fallback_reason or "").startswith("out_of_scope"):
        return Offer.NONE
    (_, p1), (_, p2) = decision.top[0], decision.top[1]
    if p1 <= 0:
        return Offer.NONE
    if decision.fallback_reason is not None:
        return Offer.ASK if p2 >= th.two_choices * p1 else Offer.NONE
    return Offer.ALSO if p2 >= th.second_choice * p1 else Offer.NONE


def asking(choices: list[Choice]) -> str:
    """The reply of a turn that asks which of two labels was meant."""
    lines = [f"{n}. {c.about}" for n, c in enumerate(choices, 1)]
    return "I am not sure which you mean:\n" + "\n".join(lines) + "\nReply 1 or 2, or say it in other words."


def also(answer: str, second: Choice) -> str:
    """An answer followed by the second label on offer."""
    return f"{answer}\n\nIf you meant something else ({second.about[:1].lower()}{second.about[1:]}), reply 2."


def pick(text: str, choices: list[Choice]) -> Choice | None:
    """The choice a message names: by number or ordinal, by label, or by what the label is about; None if none."""
    lowered = " ".join(text.lower().split()).strip(" .!?")
    m = _PICK.fullmatch(lowered)
    if m:
        n = _WORDS[m.group(1)]
        return choices[n] if n < len(choices) else None
    for c in choices:
        if lowered in (c.label.lower(), c.label.lower().replace("_", " "), c.about.lower().strip(" .")):
            return c
    return None


def might_pick(text: str) -> bool:
    """Cheap test before looking up a conversation's offer: short enough to be a number, a label or its description."""
    return len(text) <= 80


def dumps(choices: list[Choice]) -> str | None:
    """The choices column of a turn."""
    return json.dumps([c.to_dict() for c in choices], ensure_ascii=False) if choices else None


def loads(value: str | None) -> list[Choice]:
    """Choices read back from a turn's column (a damaged value reads as none)."""
    try:
        rows = json.loads(value or "[]")
        return [Choice(str(r["label"]), float(r["probability"]), str(r["about"]), r.get("answer_id")) for r in rows]
    except (ValueError, TypeError, KeyError):
        return []
