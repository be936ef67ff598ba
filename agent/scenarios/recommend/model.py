"""The recommender of one plugin: item vectors, user profiles, the interest model, and the scoring formula.

    score(item) = w_request · cos(request, item)
                + w_collab · EASE(liked, item), scaled so the best item has 1   (agent.scenarios.recommend.collab)
                + w_profile · (cos(mean of liked, item) − ½ · max cos(disliked, item))
                + w_interest · cos(E(history text), E(item text))      E: the fine-tuned interest encoder
                + w_popularity · log(1 + likes and clicks) / log(1 + the most any item has)
                + w_together · Σ over liked items of how often people liked both (cosine of who liked
                  them), scaled so the best item has 1
                + adjustments for what the person asked to avoid ("without fees": −0.3 if an item has
                  fees, +0.15 if it says it has none)

The collaborative term and the interest encoder come from `agent finetune`, which also chooses the personal
weights on held-out likes; before any fine-tune the manifest's weights apply. Items the person rejected are never
shown again. Cosines are of unit vectors; `request` is the message,
or the message blended with an item it names ("like the travel card").
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agent.errors import ModelError
from agent.models.retrieval import VectorIndex, ensure_index
from agent.models.versions import Versions, versions_for
from agent.plugin.data import file_hash
from agent.scenarios.recommend.items import Item, read_interactions, read_items

if TYPE_CHECKING:
    import numpy as np

    from agent.models.encoder import Encoder
    from agent.plugin.manifest import Manifest

TERMS = ("request", "collab", "profile", "interest", "popularity", "together")
PERSONAL = TERMS[1:]  # the terms that read the person's history; a fine-tune chooses their weights
INTEREST_DIR = "interest"  # HOME/models/NAME/interest/: the fine-tuned versions (versions like the classifier's)
POSITIVE = ("like", "click")


@dataclass
class Profile:
    """What one user liked, clicked and rejected (each item's latest event wins), oldest first."""

    user: str
    liked: list[str] = field(default_factory=list)
    clicked: list[str] = field(default_factory=list)
    disliked: list[str] = field(default_factory=list)

    order: list[str] = field(default_factory=list)  # liked and clicked items in the order of their latest event

    @classmethod
    def from_events(cls, user: str, events: list[dict[str, Any]]) -> "Profile":
        """Build from events in time order (dicts with item_id and kind). A dislike stands until the item is liked."""
        latest: dict[str, str] = {}
        rejected: dict[str, None] = {}
        for e in events:
            item, kind = e["item_id"], e["kind"]
            if kind == "dislike":
                rejected[item] = None
            elif kind == "like":
                rejected.pop(item, None)
            latest.pop(item, None)  # re-inserted last: dict order follows the latest event
            latest[item] = kind
        p = cls(user, disliked=list(rejected))
        for item_id, kind in latest.items():
            if kind in POSITIVE and item_id not in rejected:
                (p.liked if kind == "like" else p.clicked).append(item_id)
                p.order.append(item_id)
        return p

    def like(self, item_id: str) -> None:
        """Record a like made in this turn."""
        if item_id in self.disliked:
            self.disliked.remove(item_id)
        if item_id in self.order:
            self.order.remove(item_id)
        self.liked.append(item_id)
        self.order.append(item_id)

    def positives(self, known: set[str] | None = None) -> list[str]:
        """Liked and clicked items, oldest first (by their latest event)."""
        return [i for i in self.order if known is None or i in known]


@dataclass
class Stats:
    """What everyone's likes and clicks say about the items: popularity and liked-together."""

    popularity: "np.ndarray"  # log-scaled to 0..1
    together: "np.ndarray"  # items x items: cosine of the sets of users who liked each, diagonal 0


@dataclass
class Scored:
    """One candidate with the parts of its score."""

    item: Item
    score: float
    parts: dict[str, float]
    reasons: list[str]


def history_text(items: list[Item]) -> str:
    """The text the interest model reads for a user: their latest liked or clicked items, newest first."""
    return "; ".join(f"{i.title} ({', '.join(i.tags[:3])})" if i.tags else i.title for i in reversed(items))


def item_index(manifest: "Manifest", index_dir: Path, encoder: "Encoder", items: list[Item],
               notify: Callable[[str], None] | None) -> VectorIndex:
    """The items' base-encoder vectors, built once and reused while the items file is unchanged."""
    config = manifest.tables["recommend"]
    assert config is not None
    path = manifest.data_file(config.items, "recommend.items")
    from agent.text.spelling import READING

    expect = {"encoder": encoder.fingerprint, "data": file_hash(path, extra=READING)}

    def build() -> tuple["np.ndarray", dict[str, Any]]:
        if notify:
            notify(f"encoding {len(items)} items of {manifest.name}")
        return encoder.encode([i.text for i in items]), {"ids": [i.id for i in items]}

    return ensure_index(index_dir, "items", expect, build, notify)


class Interest:
    """A promoted fine-tune of the recommender: the collaborative weights, the interest encoder and the items' vectors
    under it (when one was trained), and the weights the fine-tune chose."""

    def __init__(self, folder: Path, device: str) -> None:
        import numpy as np

        try:
            self.config = json.loads((folder / "config.json").read_text())
            self.vectors = np.load(folder / "items.npy") if (folder / "items.npy").is_file() else None
            self.collab = np.load(folder / "collab.npy", mmap_mode="r") if (folder / "collab.npy").is_file() else None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder}: the recommender's fine-tuned model is incomplete ({exc}); fine-tune again or roll back") from exc
        self.encoder = None
        if (folder / "encoder").is_dir():
            from agent.models.encoder import Encoder

            self.encoder = Encoder(path=folder / "encoder", device=device, max_length=128)
        self.version = folder.name
        self._cache: dict[str, "np.ndarray"] = {}

    @classmethod
    def from_parts(cls, encoder: "Encoder | None", vectors: "np.ndarray | None", config: dict[str, Any], version: str,
                   collab: "np.ndarray | None" = None) -> "Interest":
        """A fine-tuned model still in memory (a fine-tune evaluating its candidate)."""
        self = cls.__new__(cls)
        self.encoder, self.vectors, self.config, self.version, self._cache = encoder, vectors, config, version, {}
        self.collab = collab
        return self

    def fits(self, n_items: int) -> bool:
        """Whether its matrices are of this many items."""
        return all(m is None or m.shape[0] == n_items for m in (self.vectors, self.collab))

    def user_vector(self, text: str) -> "np.ndarray":
        """The history text's vector (the last few are kept: a profile changes only with feedback)."""
        assert self.encoder is not None
        if text not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[text] = self.encoder.encode([text])[0]
        return self._cache[text]


class Recommender:
    """Items, their vectors, popularity, the interest model: everything a recommendation turn needs."""

    def __init__(self, manifest: "Manifest", index_dir: Path, encoder: "Encoder",
                 notify: Callable[[str], None] | None = None, versions: Versions | None = None) -> None:
        assert manifest.tables.get("recommend") is not None
        self.manifest, self.config, self.encoder, self.notify = manifest, manifest.tables["recommend"], encoder, notify
        items_path = manifest.data_file(self.config.items, "recommend.items")
        self.items = read_items(items_path)
        self.items_hash = file_hash(items_path)
        self.by_id = {item.id: n for n, item in enumerate(self.items)}
        self.vectors = item_index(manifest, index_dir, encoder, self.items, notify).vectors()
        self.past = self._interactions()
        self.versions = versions or versions_for(Path(index_dir).parent.parent / "models", manifest, INTEREST_DIR)
        self._stamp: Any = None
        self.interest: Interest | None = None
        self.refresh()

    def _interactions(self) -> list[dict[str, str]]:
        """Events from the plugin's interactions file, if it has one."""
        if not self.config.interactions:
            return []
        rows, problems = read_interactions(self.manifest.data_file(self.config.interactions, "recommend.interactions"),
                                           set(self.by_id))
        for problem in problems:
            if self.notify:
                self.notify(f"{self.manifest.name}: {problem}")
        return rows

    def refresh(self) -> bool:
        """Pick up a promoted or rolled-back interest model (one stat); True when it changed."""
        stamp = self.versions.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        current = self.versions.current()
        if current is None:
            self.interest = None
            return True
        interest = Interest(self.versions.path(current), self.encoder.device)
        if (not interest.fits(len(self.items)) or interest.config.get("item_ids") != [i.id for i in self.items]
                or interest.config.get("items_hash") not in (None, self.items_hash)):
            if self.notify:
                self.notify(f"{self.manifest.name}: fine-tuned model {current} was trained on other items; "
                            "not used until `agent finetune` runs again")
            self.interest = None
            return True
        self.interest = interest
        return True

    def weights(self) -> dict[str, float]:
        """The formula's weights: the manifest's, with the personal ones a promoted interest model chose."""
        chosen = dict(self.interest.config.get("weights", {})) if self.interest else {}
        chosen.pop("request", None)  # the request's weight is always the manifest's
        return {**self.config.weights(), **chosen}

    def stats(self, events: list[dict[str, Any]], with_past: bool = True) -> Stats:
        """Popularity and liked-together from the interactions file (unless `with_past` is off) and these events."""
        import numpy as np

        key = (len(events), with_past)  # feedback is only ever added: the same count means the same events
        if key == getattr(self, "_stats_key", None):
            return self._stats
        positives = [e for e in [*(self.past if with_past else []), *events] if e["kind"] in POSITIVE and e["item_id"] in self.by_id]
        counts = Counter(e["item_id"] for e in positives)
        n = np.array([counts.get(i.id, 0) for i in self.items], dtype=np.float32)
        top = float(n.max()) if len(n) else 0.0
        popularity = np.log1p(n) / math.log1p(top) if top > 0 else n
        users = {u: k for k, u in enumerate(dict.fromkeys(str(e["user_id"]) for e in positives))}
        x = np.zeros((max(len(users), 1), len(self.items)), dtype=np.float32)
        for e in positives:
            x[users[str(e["user_id"])], self.by_id[e["item_id"]]] = 1.0
        norm = np.sqrt(x.sum(0)) + 1e-9
        together = (x.T @ x) / norm[:, None] / norm[None, :]
        np.fill_diagonal(together, 0.0)
        self._stats_key, self._stats = key, Stats(popularity, together)
        return self._stats

    def rank(self, profile: Profile, request: "np.ndarray | None", stats: Stats, exclude: set[str] = frozenset(),
             avoid: list[str] = (), words: set[str] = frozenset(), k: int | None = None,
             weights: dict[str, float] | None = None, anchor: str | None = None, pin: str | None = None) -> list[Scored]:
        """The top-k items for this user and request, with the parts of each score and the reasons.

        `pin` is an item the person asked for by name: it is shown first, or last when it mentions something
        they asked to avoid (never when they rejected it or it is excluded)."""
        import numpy as np

        w = weights or self.weights()
        parts = self.parts(profile, request, stats, w, avoid)
        total = sum(w.get(name, 0.0) * parts[name] for name in TERMS)
        total = total + parts["avoid"]
        banned = set(profile.disliked) | set(exclude)
        order = [int(i) for i in np.argsort(-total, kind="stable") if self.items[int(i)].id not in banned]
        n = k or self.config.top_k
        pinned = self.by_id.get(pin) if pin is not None else None
        if pinned is None or pinned not in order:
            top = order[:n]
        else:
            rest = [i for i in order if i != pinned][: n - 1]
            top = rest + [pinned] if mentions(self.items[pinned], list(avoid)) else [pinned, *rest]
        return [Scored(self.items[i], float(total[i]), {name: float(v[i]) for name, v in parts.items()},
                       self._reasons(i, profile, parts, avoid, words, w, anchor, pinned=i == pinned)) for i in top]

    def parts(self, profile: Profile, request: "np.ndarray | None", stats: Stats,
              weights: dict[str, float], avoid: list[str] = ()) -> dict[str, "np.ndarray"]:
        """Each term of the formula, per item (zeros where it does not apply)."""
        import numpy as np

        zeros = np.zeros(len(self.items), dtype=np.float32)
        liked = [self.by_id[i] for i in profile.positives(set(self.by_id))]
        disliked = [self.by_id[i] for i in profile.disliked if i in self.by_id]
        profile_part = zeros.copy()
        if liked:
            centre = self.vectors[liked].mean(0)
            profile_part = self.vectors @ (centre / max(float(np.linalg.norm(centre)), 1e-9))
        if disliked:
            profile_part = profile_part - 0.5 * (self.vectors @ self.vectors[disliked].T).max(1)
        interest_part = zeros
        learned = self.interest
        if learned is not None and learned.encoder is not None and liked and weights.get("interest", 0) > 0:
            text = history_text([self.items[i] for i in liked[-self.config.history:]])
            interest_part = learned.vectors @ learned.user_vector(text)
        collab_part = zeros
        if learned is not None and learned.collab is not None and weights.get("collab", 0) > 0:
            from agent.scenarios.recommend.collab import scores

            collab_part = scores(learned.collab, liked)
        together = zeros
        if liked and weights.get("together", 0) > 0:
            together = stats.together[liked].sum(0)
            together = together / max(float(together.max()), 1e-9)
        return {"request": self.vectors @ request if request is not None else zeros, "collab": collab_part, "profile": profile_part,
                "interest": interest_part, "popularity": stats.popularity, "together": together,
                "avoid": avoid_adjustment(self.items, list(avoid)) if avoid else zeros}

    def _reasons(self, row: int, profile: Profile, parts: dict[str, "np.ndarray"], avoid: list[str],
                 words: set[str], w: dict[str, float], anchor: str | None = None, pinned: bool = False) -> list[str]:
        """Why an item is shown: what matched, which past like it resembles, what it avoids, popularity."""
        item, reasons = self.items[row], []
        if pinned:
            reasons.append("the one you asked about")
            clash = mentions(item, list(avoid))
            if clash:
                reasons.append(f"mentions {join_terms(clash, 'and')}, which you asked to avoid")
        free = free_of(item, list(avoid)) if avoid else []
        if free:
            reasons.append("no " + " and no ".join(free))
        if parts["request"][row] > 0.3 and not pinned:
            reasons.append(f"similar to {anchor}" if anchor else "matches your request" + _shared(item, words))
        liked = [self.by_id[i] for i in profile.positives(set(self.by_id)) if self.by_id[i] != row]
        if liked and w.get("profile", 0) > 0:
            sims = self.vectors[liked] @ self.vectors[row]
            best = int(sims.argmax())
            if sims[best] >= 0.45 and self.items[liked[best]].title != anchor:
                reasons.append(f"like {self.items[liked[best]].title}, which you liked")
        if parts["collab"][row] >= 0.5 and w.get("collab", 0) > 0:
            reasons.append("liked by people who like what you like")
        if parts["together"][row] >= 0.5 and w.get("together", 0) > 0:
            reasons.append("often liked together with your likes")
        if parts["popularity"][row] >= 0.6:
            reasons.append("popular")
        return reasons[:3] or ["close to what you asked for"]


def join_terms(terms: list[str], joiner: str = "or") -> str:
    """'fees', 'fees or a monthly fee', 'a, b or c'."""
    return terms[0] if len(terms) == 1 else f"{', '.join(terms[:-1])} {joiner} {terms[-1]}"


def _shared(item: Item, words: Any) -> str:
    """' (tags: travel, no-fees)' for the request words an item's tags share, or ''."""
    if not words:
        return ""
    shared = [t for t in item.tags if any(w in t.split("-") or w == t for w in words)]
    return f" ({', '.join(shared[:3])})" if shared else ""


NOT_TERMS = {"one", "ones", "that", "this", "these", "those", "thanks", "more", "first", "second", "third", "fourth",
             "fifth", "last", "interested", "sure", "really", "too", "very", "much", "quite", "like", "keen", "bad",
             "good", "great", "for", "now", "yet", "again", "worry", "problem", "idea"}
# Words that end an avoided phrase: "no foreign fees please" -> "foreign fees", "without fees for students" -> "fees".
PHRASE_END = NOT_TERMS | {"and", "or", "but", "please", "with", "on", "in", "of", "at", "to", "from", "by", "when", "if",
                          "so", "which", "who", "as", "than", "abroad", "overseas", "anymore", "though", "any", "all",
                          "whatsoever", "i", "we", "you", "it", "is", "are", "the", "a", "an", "what", "do", "can"}
_NEGATION = re.compile(r"\b(?:without|no|not|never|avoid|except|minus|free of)\s+(?:any\s+|the\s+|a\s+|an\s+)?"
                       r"([a-z][a-z\-]{2,}(?:\s+[a-z][a-z\-]*){0,2})", re.IGNORECASE)
_FREE = r"\b(?:no|without|zero|free of|0)\s+(?:\w+\s+){0,2}"
_GAP = r"(?:[\s-]+\w+)?[\s-]+"  # a phrase's words may have one word between them: "foreign transaction fees"


def avoided_terms(text: str) -> list[str]:
    """What a request asks to avoid, as whole phrases: 'without fees' -> ['fees'], 'no foreign fees' -> ['foreign fees']."""
    terms = (_phrase(m.group(1).lower().split()) for m in _NEGATION.finditer(text))
    return list(dict.fromkeys(t for t in terms if t))


def _phrase(words: list[str]) -> str:
    """The words up to the first that ends a phrase ('' when the first does: 'not that one')."""
    kept: list[str] = []
    for word in words:
        if word in PHRASE_END:
            break
        kept.append(word)
    return " ".join(kept)


@lru_cache(maxsize=256)
def _patterns(term: str) -> tuple[str, "re.Pattern[str]", "re.Pattern[str]"]:
    """(its last word's stem, mentions it, says it is free of it), for lowercased text; 'no fees' and a 'no-fees'
    tag also free an item of 'foreign fees'."""
    words = [re.escape(w) for w in term.lower().split()]
    stem = term.lower().split()[-1].rstrip("s")
    head = re.escape(stem) + "s?"
    phrase = _GAP.join([*words[:-1], head])
    free = rf"{_FREE}{phrase}\b|\b{phrase}[- ]free\b|\bno-{phrase}\b"
    if len(words) > 1:
        free += rf"|\b(?:no|without|zero|free of)\s+{head}\b|\bno-{head}\b|\b{head}[- ]free\b"
    return stem, re.compile(rf"\b{phrase}\b"), re.compile(free)


def _verdict(text: str, term: str) -> int:
    """+1 when the lowercased text says it is free of the term, −1 when it mentions having it, else 0."""
    stem, has, free = _patterns(term)
    if stem not in text:  # every pattern holds the stem: most items are settled here
        return 0
    return 1 if free.search(text) else -1 if has.search(text) else 0


def _searchable(item: Item) -> str:
    """The text the avoided terms are looked for in: title, category, description and tags, lowercased."""
    return f"{item.text} {' '.join(item.tags)}".lower()


def free_of(item: Item, terms: list[str]) -> list[str]:
    """The terms an item says it has none of ('no foreign transaction fees', a 'no-fees' tag)."""
    text = _searchable(item)
    return [t for t in terms if _verdict(text, t) > 0]


def mentions(item: Item, terms: list[str]) -> list[str]:
    """The terms an item says it has ('a £2 monthly fee'), not counting those it says it is free of."""
    text = _searchable(item)
    return [t for t in terms if _verdict(text, t) < 0]


def avoid_adjustment(items: list[Item], terms: list[str]) -> "np.ndarray":
    """+0.15 for each term an item says it is free of, −0.3 for each it mentions having."""
    import numpy as np

    verdicts = [[_verdict(_searchable(i), t) for t in terms] for i in items]
    return np.array([0.15 * v.count(1) - 0.3 * v.count(-1) for v in verdicts], dtype=np.float32)
