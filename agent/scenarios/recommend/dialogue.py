"""One recommendation turn: what the person asked, which shown item they mean, what to show next."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from agent.scenarios.recommend.events import ItemStore
from agent.scenarios.recommend.model import Profile, Recommender, avoided_terms, free_of, join_terms, mentions

if TYPE_CHECKING:
    import numpy as np

    from agent.store import Store

ORDINALS = {"first": 0, "1st": 0, "one": 0, "second": 1, "2nd": 1, "two": 1, "third": 2, "3rd": 2, "three": 2,
            "fourth": 3, "4th": 3, "fifth": 4, "5th": 4, "last": -1}
FOLLOW_UPS = {"more_like_this", "not_this", "like_this"}
STOP = {"the", "a", "an", "and", "or", "for", "with", "without", "like", "that", "this", "some", "something", "want",
        "need", "i", "me", "my", "to", "of", "in", "on", "but", "no", "not", "any", "is", "it", "can", "you", "do",
        "have", "what", "show", "please", "one", "more", "northwind", "card's"}
# Words before a named item that ask for something like it ("like") or other than it ("other"), not for the item.
_RELATION = re.compile(r"\b(?P<like>like|similar to|comparable to|close to|along the lines of)\s+(?:(?:the|a|an|my|your|this|"
                       r"that|northwind)\s+)*$|\b(?P<other>other than|instead of|rather than|apart from|except(?: for)?|"
                       r"besides|alternatives? to|not|but)\s+(?:(?:the|a|an|my|your|this|that|northwind)\s+)*$")
_WANT = re.compile(r"(?:\bwould|\bwe'd|\bi'd|\byou'd|\bthey'd|\bd)\s+(?:really\s+|also\s+)?$")  # "I'd like the X": the X itself


def respond(store: "Store", rec: Recommender, plugin: str, text: str, vector: "np.ndarray", conversation: str,
            user: str, label: str | None, record: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """The reply text and the items to show for one turn; 'not that one' and 'I like it' are stored as feedback
    (unless `record` is off, as in a dry run)."""
    store = ItemStore(store)  # type: ignore[assignment]
    events = store.item_events(plugin)
    profile = Profile.from_events(user, [e for e in events if e["user_id"] == user])
    previous = store.last_turns_with_items(conversation, plugin)
    shown_ever = {i["id"] for t in previous for i in t["items"]}
    last = previous[0] if previous else None
    target = _target(text, last["items"]) if last else None
    stated = [t for past in store.user_requests(user, plugin) for t in _avoided(past, rec)]
    named = _named_item(text, rec)
    if label in FOLLOW_UPS and named is not None and (last is None or named.id not in {i["id"] for i in last["items"]}):
        label = "recommend"  # "something like the travel card" names an item it has not been shown: a request
    anchor, pin = None, None
    if label in FOLLOW_UPS and last is None:
        return "Which item do you mean? Ask me for something first, for example \"a card for travelling abroad\".", []
    if label in FOLLOW_UPS and target is None:
        return f"I showed {len(last['items'])} items; say which one, for example \"the second one\".", []
    if label in FOLLOW_UPS and target is not None and last is not None:
        header, request, exclude, avoid = _follow_up(store, rec, plugin, label, target, last, profile, conversation, record)
        avoid = list(dict.fromkeys([*avoid, *stated]))
        anchor = None if label == "not_this" else target.get("title")
    else:
        avoid = list(dict.fromkeys([*_avoided(text, rec), *stated]))
        header, request, exclude, pin = _request(rec, text, vector, named, profile, avoid)
        anchor = named.title if named is not None else None
    ranked = rec.rank(profile, request, rec.stats(events), exclude | (shown_ever if label in FOLLOW_UPS else set()),
                      avoid, _words(text), anchor=anchor, pin=pin)
    if not ranked:
        return "I have nothing new to suggest for that. Tell me more about what you are looking for.", []
    items = [{"id": s.item.id, "title": s.item.title, "reason": "; ".join(s.reasons), "score": round(s.score, 4)}
             for s in ranked]
    return header, items


def _request(rec: Recommender, text: str, vector: "np.ndarray", named: Any, profile: Profile,
             avoid: list[str]) -> tuple[str, "np.ndarray", set[str], str | None]:
    """A new request: the header, the request vector, what to leave out, the item to pin (one it asks for by name)."""
    if named is None:
        return _header(None, None, avoid, profile), vector, set(), None
    request = _unit(vector + rec.vectors[rec.by_id[named.id]])
    relation = _relation(text, named)
    if relation != "same":
        return _header(named, relation, avoid, profile), request, {named.id}, None
    return _header(named, relation, avoid, profile), request, set(), named.id


def _follow_up(store: "Store", rec: Recommender, plugin: str, label: str, target: dict[str, Any], last: dict[str, Any],
               profile: Profile, conversation: str, record: bool) -> tuple[str, "np.ndarray", set[str], list[str]]:
    """'more like that', 'not that one', 'I like that one': feedback stored, and what to show instead."""
    title = target.get("title") or target["id"]
    known = target["id"] in rec.by_id
    if label == "not_this":
        if record:
            store.add_item_feedback(last["id"], target["id"], "dislike")
        profile.disliked.append(target["id"])
        request_text = store.last_request(conversation, plugin) or last["text"]
        request = rec.encoder.encode([request_text])[0]
        return f"Understood, not {title}. How about these instead?", request, {target["id"]}, avoided_terms(request_text)
    if label == "like_this":
        if record:
            store.add_item_feedback(last["id"], target["id"], "like")
        profile.like(target["id"])
        header = f"Noted, you like {title}. Similar ones:"
    else:
        header = f"More like {title}:"
    request = rec.vectors[rec.by_id[target["id"]]] if known else rec.encoder.encode([title])[0]
    return header, request, {target["id"]}, []


def _target(text: str, shown: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The shown item a follow-up means: by ordinal ('the second one'), by number, by title words, else the first."""
    if not shown:
        return None
    words = re.findall(r"[a-z0-9#]+", text.lower())
    for w in words:
        if w in ORDINALS and (w not in ("one", "two", "three") or "number" in words or "option" in words):
            n = ORDINALS[w]
            return shown[n] if -len(shown) <= n < len(shown) else None
        digits = w.lstrip("#")
        if digits.isdigit() and w.startswith("#") or digits.isdigit() and ("number" in words or "option" in words):
            return shown[int(digits) - 1] if 1 <= int(digits) <= len(shown) else None
    lowered = text.lower()
    for item in shown:
        title_words = [t for t in re.findall(r"[a-z0-9]+", str(item.get("title", "")).lower()) if t not in STOP]
        if title_words and all(t in lowered for t in title_words):
            return item
    return shown[0]


def _named_item(text: str, rec: Recommender) -> Any:
    """An item the request names ('like the travel card'): the one whose title words it contains most fully."""
    lowered = " " + re.sub(r"[^a-z0-9 ]", " ", text.lower()) + " "
    best, best_n = None, 0
    for item in rec.items:
        words = _name_words(item.title)
        if len(words) >= 1 and all(f" {w} " in lowered or f" {w}s " in lowered for w in words) and len(words) > best_n:
            best, best_n = item, len(words)
    return best if best_n >= 2 else None


@lru_cache(maxsize=8192)
def _name_words(title: str) -> tuple[str, ...]:
    """The words of a title a request may name it by (each title split once, not on every turn)."""
    return tuple(w for w in re.findall(r"[a-z0-9]+", title.lower()) if w not in STOP)


def _avoided(text: str, rec: Recommender) -> list[str]:
    """What a request asks to avoid, less the item it names ('not the travel card' avoids no words)."""
    named = _named_item(text, rec)
    title = set(_title_words(named.title)) if named is not None else set()
    return [t for t in avoided_terms(text) if not set(t.split()) <= title]


def _title_words(title: str) -> list[str]:
    """The words of a title that name it (not 'Northwind', not 'the')."""
    return [w for w in re.findall(r"[a-z0-9]+", title.lower()) if w not in STOP]


def _relation(text: str, item: Any) -> str:
    """Does the request ask for the named item ('same'), one like it ('like') or one other than it ('other')?"""
    lowered = text.lower().replace("\u2019", "'")
    before = lowered[: _mention(lowered, _title_words(item.title))]
    found = _RELATION.search(before)
    if found is None:
        return "same"
    if found.group("like") == "like" and _WANT.search(before[: found.start()]):
        return "same"
    return "like" if found.group("like") else "other"


def _mention(lowered: str, words: list[str]) -> int:
    """Where the title is mentioned: the start of the shortest stretch holding all its words ('student account')."""
    at = [[m.start() for m in re.finditer(rf"\b{re.escape(w)}s?\b", lowered)] for w in words]
    best: tuple[int, int] | None = None
    for start in sorted(p for ps in at for p in ps):
        ends = [min((p for p in ps if p >= start), default=-1) for ps in at]
        if -1 not in ends and (best is None or (max(ends) - start, start) < best):
            best = (max(ends) - start, start)
    return best[1] if best else 0


def _header(named: Any, relation: str | None, avoid: list[str], profile: Profile) -> str:
    """The sentences above the items: where the named item is, what the others are like, what they avoid."""
    without = f" without {join_terms(avoid)}" if avoid else ""
    if named is None:
        return f"Here are some ideas{without}:"
    if relation in ("like", "other"):
        kind = "ideas similar to" if relation == "like" else "alternatives to"
        return f"Here are some {kind} {named.title}{',' + without if avoid else ''}:"
    if named.id in profile.disliked:
        return f"You turned down {named.title} before, so here are some other ideas{without}:"
    clash = mentions(named, avoid)
    if clash:
        return f"{named.title} is listed last, as it mentions {join_terms(clash, 'and')}. Here are some ideas{without}:"
    if not avoid:
        return f"{named.title} fits what you asked for. You might also like:"
    says = "fits what you asked for" if len(free_of(named, avoid)) == len(avoid) else "is the one you asked about"
    return f"{named.title} {says}. Here are some ideas{without}:"


def _words(text: str) -> set[str]:
    """Content words of a request, to say which tags matched."""
    return {w.rstrip("s") if len(w) > 4 else w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOP and len(w) > 2}


def _unit(v: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return v / max(float(np.linalg.norm(v)), 1e-9)
