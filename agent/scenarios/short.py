"""Messages without words, a default plugin: ":)", "👍", "?" or "…" alone get a reply that fits them
(thanks, a question back, or the plugin's fallback) instead of a label guessed from no words at all.
It answers before every other kind (tryfirst) and leaves any message with a letter or digit alone."""

from __future__ import annotations

import re
from typing import Any

from agent.plugin.hookspecs import hookimpl

REASON = "no_words"  # only punctuation, emoticons or emoji: no label is guessed
THANKS = "Thanks! Is there anything else I can help with?"
QUESTION = "What would you like to know? Ask me in a few words"
# Emoticons spelt with letters or digits (":D", "xD", ":3"): taken out before looking for words.
POSITIVE_EMOTICONS = (":-)", ":)", ":]", "=)", "(:", ":-D", ":D", "=D", "xD", "XD", ";-)", ";)", ":-P", ":P", ":p",
                      ";P", ";p", "^_^", "^^", "<3", ":3", ":-*", ":*")
NEGATIVE_EMOTICONS = (":-(", ":(", ":'(", ":[", "=(", ">:(", "D:", ":-/", ":/", ":|", "</3", "-_-", ":S", ":s")
_EMOTICON = re.compile("|".join(re.escape(e) for e in sorted({*POSITIVE_EMOTICONS, *NEGATIVE_EMOTICONS}, key=len,
                                                             reverse=True)))
QUESTION_MARKS = set("?¿？؟⁇⁈⁉‽❓❔")
POSITIVE_EMOJI = set("👍👌👏🙌🙏💪✌🤝🤙✅✔☑💯🎉🥳🎊⭐🌟✨🔥🆗🆒❤🧡💛💚💙💜🤎🖤🤍🩷🩵🩶♥💕💖💗💓💞💝😀😃😄😁😆😊☺🙂😉😍🥰"
                     "😘😗😙😚😋😎🤩🤗😇😂🤣😅😸😹😺😻💐🌹🥂🤘🫶🫡")
# Joiners, variation selectors, skin tones, keycaps and tag characters only modify the emoji before them.
_MODIFIERS = re.compile("[\u200d\ufe0e\ufe0f\u20e3\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]")


@hookimpl(tryfirst=True)
def respond(turn: Any) -> dict[str, Any] | None:
    """Thanks for a positive emoticon or emoji, a question back for "?", else the fallback; None for words."""
    kind = wordless(turn.text)
    if kind is None:
        return None
    if kind == "question":
        examples = turn.runtime.examples if turn.manifest.examples else []  # not a label description: they are no questions
        return {"text": question_back(examples), "fallback_reason": REASON}
    if kind == "positive":
        return {"text": THANKS, "fallback_reason": REASON}
    m = turn.manifest
    return {"text": f"{m.fallback_message} {m.handoff}", "fallback_reason": REASON}


def wordless(text: str) -> str | None:
    """'question', 'positive' or 'other' for a message with no letter or digit outside emoticons; None otherwise."""
    emoticons = _EMOTICON.findall(text)
    rest = _MODIFIERS.sub("", _EMOTICON.sub(" ", text))
    if any(ch.isalnum() for ch in rest):
        return None
    if QUESTION_MARKS & set(rest):
        return "question"
    pictures = [ch for ch in rest if not ch.isspace() and ch not in "!.…¡,"]
    toned = [e in POSITIVE_EMOTICONS for e in emoticons] + [ch in POSITIVE_EMOJI for ch in pictures]
    return "positive" if toned and all(toned) else "other"


def question_back(examples: list[tuple[str, str]]) -> str:
    """The question back, with the plugin's first example as a hint of what to ask."""
    return f"{QUESTION}, for example: \"{examples[0][0]}\"" if examples else f"{QUESTION}."
