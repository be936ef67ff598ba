"""New intents proposed from the questions the agent could not place.

Undecided turns that fell back, or whose two likeliest labels came close, are grouped with FAISS k-means
(spherical, on the shared encoder's embeddings). A group of at least `min_size` similar messages becomes a
proposal: a suggested label name from its most telling words, its most central messages, and the existing
label it sits nearest (to merge into, when it is the same question). Accepting a proposal labels every one of
its turns (a new label, learned by the next fine-tune) and writes an FAQ stub to fill in the home.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.learn.trainset import GROUP_NOTE
from agent.review.queue import CLOSE, UNDECIDED, top_two

if TYPE_CHECKING:
    import numpy as np

    from agent.reply.agent import Agent

MAX_GROUPS = 256  # k-means over-splits (about one group per two messages), then similar groups merge
LINK = 0.5  # mean cosine similarity between two groups' messages at which they merge (average linkage)
COHESION = 0.55  # mean cosine similarity to the group's centre below which a group is too loose to propose
STOP = set("""a an the and or but if of to in on at for from by with about as into over after before is are was were be been
being do does did have has had i me my we our you your he she it its they them their this that these those what which
who whom whose when where why how can could would should will shall may might must not no yes please hi hello thanks
thank there here just so too very any some all get got up out off again still also than then one""".split())


@dataclass
class Proposal:
    """A group of similar unknown messages, put forward as a label."""

    id: str  # stable while the same turns make it up
    plugin: str
    name: str  # suggested label name
    size: int
    cohesion: float
    examples: list[str]  # the most central messages
    turn_ids: list[int]
    nearest_label: str | None  # the existing label it sits closest to
    nearest_similarity: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def unknown_turns(agent: "Agent", plugin: str, pool: int = 5000) -> list[dict[str, Any]]:
    """Undecided turns of a plugin that fell back or were close calls, newest first."""
    rows = agent.store.query(
        f"SELECT id, text, label, fallback_reason FROM turns t WHERE plugin = ? AND picked_from IS NULL AND {UNDECIDED} "
        "ORDER BY id DESC LIMIT ?", [plugin, int(pool)])
    top = top_two(agent, [r["id"] for r in rows])
    out = []
    for r in rows:
        p = top.get(r["id"], [])
        margin = p[0][1] - (p[1][1] if len(p) > 1 else 0.0) if p else 0.0
        if (r["text"] or "").strip() and (r["fallback_reason"] or margin < CLOSE):  # a close call counts as unknown too
            out.append(r)
    return out


def propose(agent: "Agent", plugin: str, min_size: int = 3, seed: int = 0) -> list[Proposal]:
    """Groups of similar unknown messages, largest first."""
    import numpy as np

    rows = unknown_turns(agent, plugin)
    if len(rows) < min_size:
        return []
    vectors = agent.encoder.encode([r["text"] for r in rows]).astype(np.float32)
    assign, centres = _merged(vectors, *_kmeans(vectors, max(1, min(MAX_GROUPS, len(rows) // 2)), seed))
    label_names, label_centres = _label_centres(agent, plugin)
    everyone = Counter(w for r in rows for w in set(_words(r["text"])))
    taken = set(label_names)  # suggested names are new: never an existing label's, never another proposal's
    out = []
    for c in range(len(centres)):
        members = np.flatnonzero(assign == c)
        if len(members) < min_size:
            continue
        sims = vectors[members] @ centres[c]
        if float(sims.mean()) < COHESION:
            continue
        order = members[np.argsort(-sims)]
        near, near_sim = _nearest(centres[c], label_names, label_centres)
        ids = sorted(int(rows[i]["id"]) for i in members)
        name = _unique(_name([rows[i]["text"] for i in members], everyone, len(rows)), taken)
        taken.add(name)
        out.append(Proposal(_pid(plugin, ids), plugin, name, len(members), round(float(sims.mean()), 4),
                            [rows[i]["text"] for i in order[:5]], ids, near, round(near_sim, 4)))
    return sorted(out, key=lambda p: (-p.size, -p.cohesion))


def propose_all(agent: "Agent", plugin: str | None = None) -> list[Proposal]:
    """The proposals of one plugin, or of every responder."""
    return [p for name in ([plugin] if plugin else agent.responder_names()) for p in propose(agent, name)]


def _kmeans(vectors: "np.ndarray", k: int, seed: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Spherical k-means (FAISS): each row's group and the unit-length group centres."""
    import faiss
    import numpy as np

    km = faiss.Kmeans(vectors.shape[1], k, niter=25, nredo=5, seed=seed, spherical=True, verbose=False, min_points_per_centroid=1)
    km.train(np.ascontiguousarray(vectors))
    _, assign = km.index.search(np.ascontiguousarray(vectors), 1)
    centres = km.centroids / np.linalg.norm(km.centroids, axis=1, keepdims=True).clip(1e-9)
    return assign[:, 0], centres


def _merged(vectors: "np.ndarray", assign: "np.ndarray", centres: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """Average-linkage merging of the k-means groups: the two groups whose messages are most similar on average
    join, while that average is at least LINK; each message's final group and the unit-length group centres."""
    import numpy as np

    groups = [np.flatnonzero(assign == c) for c in range(len(centres))]
    groups = [g for g in groups if len(g)]
    sums = np.stack([vectors[g].sum(0) for g in groups]).astype(np.float64)
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    alive = np.ones(len(groups), dtype=bool)
    while alive.sum() > 1:
        link = (sums @ sums.T) / np.outer(sizes, sizes)
        link[~alive] = -np.inf
        link[:, ~alive] = -np.inf
        np.fill_diagonal(link, -np.inf)
        i, j = np.unravel_index(int(link.argmax()), link.shape)
        if link[i, j] < LINK:
            break
        groups[i] = np.concatenate([groups[i], groups[j]])
        sums[i] += sums[j]
        sizes[i] += sizes[j]
        alive[j] = False
    kept = [groups[n] for n in np.flatnonzero(alive)]
    joined = np.empty(len(vectors), dtype=np.int64)
    for n, g in enumerate(kept):
        joined[g] = n
    new = np.stack([vectors[g].mean(0) for g in kept])
    return joined, new / np.linalg.norm(new, axis=1, keepdims=True).clip(1e-9)


def _label_centres(agent: "Agent", plugin: str) -> tuple[list[str], "np.ndarray"]:
    """Each label of the plugin and the unit-length mean of its examples' embeddings."""
    import numpy as np

    runtime = agent.runtimes.get(plugin)
    if runtime is None or runtime.examples_index.index.ntotal == 0:
        return [], np.zeros((0, 1), dtype=np.float32)
    index = runtime.examples_index
    vectors = index.index.reconstruct_n(0, index.index.ntotal)
    names = sorted({n for n in index.labels if n})
    labels = np.asarray(index.labels)
    centres = np.stack([vectors[labels == n].mean(0) for n in names])
    return names, centres / np.linalg.norm(centres, axis=1, keepdims=True).clip(1e-9)


def _nearest(centre: "np.ndarray", names: list[str], centres: "np.ndarray") -> tuple[str | None, float]:
    """The existing label whose examples sit closest to a group's centre, and how close."""
    if not names:
        return None, 0.0
    sims = centres @ centre
    best = int(sims.argmax())
    return names[best], float(sims[best])


def _words(text: str) -> list[str]:
    """Lower-case words of three letters or more, without the commonest ones; a plural 's' dropped."""
    words = [w for w in re.findall(r"[a-z][a-z']{2,}", text.lower()) if w not in STOP]
    return [w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w for w in words]


def _name(texts: list[str], everyone: Counter, total: int) -> str:
    """A label name from the two words most typical of the group against all unknown messages."""
    here = Counter(w for t in texts for w in set(_words(t)))
    scored = sorted(here, key=lambda w: (-(here[w] / len(texts)) * (1 - everyone[w] / (total + 1) / 2), w))
    words = [w.replace("'", "")[:30] for w in scored[:2]]
    return "_".join(words) or "new_intent"


def _unique(name: str, taken: set[str]) -> str:
    """The name, or the name with the first free number after it (new_intent_2, ...)."""
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def _pid(plugin: str, ids: list[int]) -> str:
    """A short id from the plugin and the turns making the group up."""
    return hashlib.sha1(f"{plugin}:{','.join(map(str, ids))}".encode()).hexdigest()[:8]


def accept(agent: "Agent", proposal: Proposal, label: str | None = None) -> dict[str, Any]:
    """Label every turn of a proposal (its suggested name, another new one, or an existing label to merge
    into) and add an FAQ stub to fill in for a new label; what was done."""
    label = (label or proposal.name).strip()
    known = set(agent.labels_of(proposal.plugin))  # declared, learned, or already taught: a merge, no new stub
    open_ids = _undecided(agent, proposal.turn_ids)  # a turn decided since the proposal was made keeps its decision
    for turn_id in open_ids:
        agent.feedback(turn_id, label=label, new_label=label not in known, note=f"{GROUP_NOTE}{proposal.id}")
    stub = None if label in known or not open_ids else write_stub(agent.settings.home, proposal, label)
    return {"proposal": proposal.id, "label": label, "merged": label in known, "turns": len(open_ids),
            "faq_stub": str(stub) if stub else None}


def _undecided(agent: "Agent", ids: list[int]) -> list[int]:
    """Those of the turns that have no decision yet."""
    marks = ",".join("?" * len(ids))
    rows = agent.store.query(f"SELECT id FROM turns t WHERE id IN ({marks}) AND {UNDECIDED}", list(ids)) if ids else []
    return sorted(r["id"] for r in rows)


def write_stub(home: Path, proposal: Proposal, label: str) -> Path:
    """Append a row for the new label to HOME/proposals/PLUGIN/faq_stub.csv (id,question,answer,label)."""
    path = Path(home) / "proposals" / proposal.plugin / "faq_stub.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(csv.reader(path.open(encoding="utf-8"))) if path.exists() else []
    ids = {r[0] for r in rows[1:] if r}
    n = 1
    while f"{label}-{n}" in ids:
        n += 1
    with open(path, "a", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if not rows:
            w.writerow(["id", "question", "answer", "label"])
        w.writerow([f"{label}-{n}", proposal.examples[0], "", label])
    return path


def find(agent: "Agent", plugin: str, proposal_id: str) -> Proposal:
    """A proposal by its id, as listed now."""
    from agent.errors import InputError

    for p in propose(agent, plugin):
        if p.id == proposal_id:
            return p
    raise InputError(f"no proposal {proposal_id} for {plugin} now (new turns or decisions change them); "
                     f"list them again with: agent review {plugin} --proposals")
