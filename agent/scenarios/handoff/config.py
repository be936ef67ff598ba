"""The [handoff] table of plugin.toml: which labels ask for a person, after how many fallbacks, what the customer is told."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NOTICE = "A person will reply here shortly."
KEYS = {"labels", "after_fallbacks", "notice"}


@dataclass(frozen=True)
class HandoffConfig:
    """When a conversation of this plugin goes to a person, and the one line the customer then reads."""

    labels: tuple[str, ...] = ()
    after_fallbacks: int = 0  # 0: repeated fallbacks never hand over
    notice: str = NOTICE


def parse_handoff(table: Any, labels: list[str]) -> HandoffConfig | None:
    """The parsed table (None when absent); a label the plugin does not declare is refused, naming it and the choices."""
    t = table.sub("handoff", KEYS)
    if t is None:
        return None
    asked = t.get("labels", list, [], "a list of the plugin's labels, e.g. [\"speak_to_human\"]")
    for label in asked:  # a plugin whose labels come only from its examples file is checked when it loads, not here
        if not isinstance(label, str) or (labels and label not in labels):
            raise t.fail("labels", f"a list of this plugin's labels ({', '.join(labels) or 'none declared'})", label)
    after = t.get("after_fallbacks", int, 0, "a whole number of fallbacks in a row (0: never)")
    if isinstance(after, bool) or after < 0:
        raise t.fail("after_fallbacks", "a whole number of fallbacks in a row, 0 or more (0: never)", after)
    notice = t.get("notice", str, NOTICE, "the text the customer reads once when a person is asked for")
    if not notice.strip():
        raise t.fail("notice", "a line for the customer, e.g. \"A person will reply here shortly.\"", notice)
    return HandoffConfig(tuple(dict.fromkeys(asked)), after, notice.strip())
