"""One recommendation turn: what the person asked, which shown item they mean, what to show next."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from agent.scenarios.recommend.events import ItemStore
from agent.scenarios.recommend.model import Profile, Recommender, avoided_terms

if TYPE_CHECKING:
    import numpy as np

    from agent.store import Store

ORDINALS = {"first": 0, "1st": 0, "one": 0, "second": 1, "2nd": 1, "two": 1, "third": 2, "3rd": 2, "three": 2,
            "fourth": 3, "4th": 3, "fifth": 4, "5th": 4, "last": -1}
FOLLOW_UPS = {"more_like_this", "not_this", "like_this"}
STOP = {"the", "a", "an", "and", "or", "for", "with", "without", "like", "that", "this", "some", "something", "want",
        "need", "i", "me", "my", "to", "of", "in", "on", "but", "no", "not", "any", "is", "it", "can", "you", "do",
        "have", "what", "show", "please", "one", "more", "northwind", "card's"}


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
    stated = [t for past in store.user_requests(user, plugin) for t in avoided_terms(past)]
    anchor = None
    if label in FOLLOW_UPS and last is None:
        return "Which item do you mean? Ask me for something first, for example \"a card for travelling abroad\".", []
    if label in FOLLOW_UPS and target is None:
        return f"I showed {len(last['items'])} items; say which one, for example \"the second one\".", []
    if label in FOLLOW_UPS and target is not None and last is not None:
        header, request, exclude, avoid = _follow_up(store, rec, plugin, label, target, last, profile, conversation, record)
        avoid = list(dict.fromkeys([*avoid, *stated]))
        anchor = None if label == "not_this" else target.get("title")
    else:
        named = _named_item(text, rec)
        avoid = list(dict.fromkeys([*avoided_terms(text), *stated]))
        request = vector
        if named is not None:
            anchor = rec.vectors[rec.by_id[named.id]]
            request = _unit(vector + anchor)
        exclude = {named.id} if named is not None else set()
        anchor = named.title if named is not None else None
        header = _header(named.title if named else None, avoid)
    ranked = rec.rank(profile, request, rec.stats(events), exclude | (shown_ever if label in FOLLOW_UPS else set()),
                      avoid, _words(text), anchor=anchor)
    if not ranked:
        return "I have nothing new to suggest for that. Tell me more about what you are looking for.", []
    items = [{"id": s.item.id, "title": s.item.title, "reason": "; ".join(s.reasons), "score": round(s.score, 4)}
             for s in ranked]
    return header, items


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
        words = [w for w in re.findall(r"[a-z0-9]+", item.title.lower()) if w not in STOP]
        if len(words) >= 1 and all(f" {w} " in lowered or f" {w}s " in lowered for w in words) and len(words) > best_n:
            best, best_n = item, len(words)
    return best if best_n >= 2 else None


def _header(named: str | None, avoid: list[str]) -> str:
    """The line above the items."""
    without = f", without {' or '.join(avoid)}" if avoid else ""
    if named:
        return f"Like {named}{without}:"
    return f"Here are some ideas{without}:"


def _words(text: str) -> set[str]:
    """Content words of a request, to say which tags matched."""
    return {w.rstrip("s") if len(w) > 4 else w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOP and len(w) > 2}


def _unit(v: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return v / max(float(np.linalg.norm(v)), 1e-9)
