"""`agent finetune` for a plugin with [recommend]: the collaborative term (EASE, its λ and what a click counts for
chosen on held-out likes), the interest encoder when asked for (trained on (history text, item text) pairs), then
the formula's personal weights chosen on each user's last liked item, held out: half the users choose, the other
half judge the candidate against the current version."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agent.errors import InputError
from agent.models.retrieval import atomic_write
from agent.models.versions import Versions
from agent.scenarios.recommend.events import ItemStore
from agent.scenarios.recommend.model import PERSONAL, POSITIVE, Interest, Profile, Recommender, Stats, history_text

if TYPE_CHECKING:
    import numpy as np

    from agent.learn.trainer import CancelFn, ProgressFn
    from agent.models.encoder import Encoder
    from agent.plugin.manifest import Manifest
    from agent.store import Store

GRID = {"collab": (0.0, 0.5, 1.0, 2.0), "profile": (0.0, 0.25, 0.5, 1.0), "interest": (0.0, 0.5, 1.0, 2.0),
        "popularity": (0.0, 0.1, 0.25, 0.5, 1.0), "together": (0.0, 0.25, 0.5, 1.0)}
MAX_PAIRS = 20  # training pairs per user (their latest), so heavy users do not drown the others
TOLERANCE = 0.005


@dataclass
class Held:
    """One user's held-out check: their events before their latest likes, and those likes."""

    user: str
    before: list[dict[str, Any]]
    targets: list[str]


@dataclass
class Split:
    """Training pairs and held-out checks."""

    pairs: list[tuple[list[str], str]] = field(default_factory=list)  # (history item ids, next liked item id)
    held: list[Held] = field(default_factory=list)
    train_events: list[dict[str, Any]] = field(default_factory=list)


def events_by_user(rec: Recommender, store: "Store", plugin: str) -> dict[str, list[dict[str, Any]]]:
    """Every user's events in time order: the interactions file (by timestamp when given), then the log."""
    past = sorted(rec.past, key=lambda e: float(e.get("timestamp") or 0)) if rec.past else []
    out: dict[str, list[dict[str, Any]]] = {}
    for e in [*past, *ItemStore(store).item_events(plugin)]:
        if e["item_id"] in rec.by_id:
            out.setdefault(str(e["user_id"]), []).append({"user_id": str(e["user_id"]), "item_id": e["item_id"],
                                                          "kind": e["kind"]})
    return out


def split(events: dict[str, list[dict[str, Any]]], history: int, max_pairs: int = MAX_PAIRS) -> Split:
    """Hold out each user's latest likes (the last 20% of them with 5 or more, else the last one of a user with 3 or
    more liked or clicked items); only what came before the first of them trains. Pairs from what trains."""
    s = Split()
    for user, evs in events.items():
        likes = [n for n, e in enumerate(evs) if e["kind"] == "like"]
        positives = [n for n, e in enumerate(evs) if e["kind"] in POSITIVE]
        held = likes[-math.ceil(0.2 * len(likes)):] if len(likes) >= 5 else likes[-1:] if len(positives) >= 3 else []
        targets = list(dict.fromkeys(evs[n]["item_id"] for n in held))
        train = [e for e in evs[: held[0]] if e["item_id"] not in targets] if held else evs
        if held:
            s.held.append(Held(user, train, targets))
        s.train_events += train
        seq = list(dict.fromkeys(e["item_id"] for e in train if e["kind"] in POSITIVE))
        pairs = [(seq[max(0, j - history):j], seq[j]) for j in range(1, len(seq))]
        s.pairs += pairs[-max_pairs:]
    return s


def train_interest(rec: Recommender, pairs: list[tuple[list[str], str]], device: str, epochs: float, lr: float,
                   batch_size: int, seed: int, progress: "ProgressFn | None", cancel: "CancelFn | None",
                   max_seconds: float | None) -> tuple["Encoder", dict[str, Any]]:
    """Contrastive training: each history text should be closest to its own next item among the batch's items."""
    import torch

    from agent.learn.trainer import Loop, adamw
    from agent.models.encoder import Encoder

    random.seed(seed)
    torch.manual_seed(seed)
    enc = Encoder(device=device, max_length=128)
    model, tok = enc.model.train(), (enc.tokenizer, enc.vocab)  # text spelt as the encoder reads it (agent.text.spelling)
    opt = adamw(list(model.parameters()), lr=lr)
    loop = Loop(opt, max(1, math.ceil(len(pairs) / batch_size * epochs)), str(enc.device), "interest", progress, cancel,
                max_seconds, trim=False)
    texts = {i.id: i.text for i in rec.items}

    def run(batch: list[tuple[list[str], str]]) -> float:
        users = _embed(model, tok, [history_text([rec.items[rec.by_id[h]] for h in hist]) for hist, _ in batch], enc.device)
        targets = _embed(model, tok, [texts[item] for _, item in batch], enc.device)
        same = torch.tensor([[a[1] == b[1] or b[1] in a[0] for b in batch] for a in batch], device=enc.device)
        logits = (users @ targets.T * 20.0).masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool, device=enc.device), -1e4)
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch), device=enc.device))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    while not loop.done:
        order = random.sample(range(len(pairs)), len(pairs))
        loop.epoch(([pairs[i] for i in order[b : b + batch_size]] for b in range(0, len(order), batch_size)), run)
    model.eval()
    run_stats = {"steps": loop.step, "planned_steps": loop.total, "seconds": round(time.perf_counter() - loop.start, 1),
                 "pairs": len(pairs), "final_loss": loop.final_loss(), "device": str(enc.device), "stopped_early": loop.stopped}
    return enc, run_stats


def _embed(model: Any, tok: Any, texts: list[str], device: Any) -> Any:
    """Mean-pooled unit vectors, with gradients."""
    import torch

    from agent.text.spelling import spelt

    tokenizer, vocab = tok
    enc = tokenizer(spelt(texts, vocab), padding=True, truncation=True, max_length=128, return_tensors="pt").to(device)
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)


def evaluate(rec: Recommender, held: list[Held], stats: Stats, weights: dict[str, float]) -> dict[str, float]:
    """NDCG@10 and Recall@10 of the held-out likes with these weights (no request)."""
    import numpy as np

    blocks, wanted = _blocks(rec, held, stats)
    return _figures(np.array([weights.get(n, 0.0) for n in PERSONAL], dtype=np.float32), blocks, wanted)


def _blocks(rec: Recommender, held: list[Held], stats: Stats) -> tuple["np.ndarray", "np.ndarray"]:
    """Per held-out user, the personal terms over all items (users x terms x items; seen items NaN), and which
    items each user went on to like (users x items)."""
    import numpy as np

    on = {n: 1.0 for n in PERSONAL}
    blocks = np.zeros((len(held), len(PERSONAL), len(rec.items)), dtype=np.float32)
    wanted = np.zeros((len(held), len(rec.items)), dtype=bool)
    for u, h in enumerate(held):
        parts = rec.parts(Profile.from_events(h.user, h.before), None, stats, on)
        blocks[u] = np.stack([parts[n] for n in PERSONAL])
        seen = list({rec.by_id[e["item_id"]] for e in h.before})
        if seen:
            blocks[u][:, seen] = np.nan
        wanted[u, [rec.by_id[t] for t in h.targets]] = True
    return blocks, wanted


def _figures(w: "np.ndarray", blocks: "np.ndarray", wanted: "np.ndarray") -> dict[str, float]:
    """Mean NDCG@10 (binary gains) and Recall@10 over users of the top 10 unseen items under weights `w`."""
    import numpy as np

    if not len(wanted):
        return {"ndcg@10": 0.0, "recall@10": 0.0, "users": 0}
    scores = np.nan_to_num(np.einsum("t,uti->ui", w, blocks), nan=-np.inf)
    k = min(10, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable"), 1)
    gains = np.take_along_axis(wanted, top, 1).astype(np.float32)
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    n = wanted.sum(1)
    ideal = np.array([discount[: min(int(m), k)].sum() for m in n])
    return {"ndcg@10": round(float(((gains * discount).sum(1) / ideal).mean()), 4),
            "recall@10": round(float((gains.sum(1) / n).mean()), 4), "users": int(len(wanted))}


def choose_weights(rec: Recommender, held: list[Held], stats: Stats, learned: set[str]) -> tuple[dict[str, float], dict[str, float]]:
    """The grid weights with the best NDCG@10 on the held-out items (learned terms only where a model has them),
    and those figures."""
    import itertools

    import numpy as np

    blocks, wanted = _blocks(rec, held, stats)
    grids = [GRID[n] if n not in ("collab", "interest") or n in learned else (0.0,) for n in PERSONAL]
    best: tuple[float, dict[str, float], dict[str, float]] = (-1.0, {}, {})
    for combo in itertools.product(*grids):
        if any(combo):
            fig = _figures(np.array(combo, dtype=np.float32), blocks, wanted)
            if fig["ndcg@10"] > best[0]:
                best = (fig["ndcg@10"], dict(zip(PERSONAL, map(float, combo))), fig)
    return best[1], best[2]


def cross_chosen(rec: Recommender, pick: list[Held], judge: list[Held], stats: Stats,
                 learned: set[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Weights chosen on all held-out users, and how well weights chosen on one half rank the other half's likes
    (both ways, averaged by users): a figure from users the weights were not chosen on."""
    chosen, _ = choose_weights(rec, pick + judge if pick is not judge else pick, stats, learned)
    if pick is judge:
        return chosen, evaluate(rec, judge, stats, chosen)
    halves_ = [evaluate(rec, b, stats, choose_weights(rec, a, stats, learned)[0]) for a, b in ((pick, judge), (judge, pick))]
    users = sum(f["users"] for f in halves_) or 1
    fig = {k: round(sum(f[k] * f["users"] for f in halves_) / users, 4) for k in ("ndcg@10", "recall@10")}
    return chosen, {**fig, "users": users}


def halves(held: list[Held]) -> tuple[list[Held], list[Held], bool]:
    """Users to choose the weights on and users to judge the model on (the same ones when fewer than 8)."""
    if len(held) < 8:
        return held, held, False
    return held[0::2], held[1::2], True


def scaled(chosen: dict[str, float], configured: dict[str, float]) -> dict[str, float]:
    """Chosen weights rescaled to the configured sum of the personal terms, so the request keeps its say."""
    total = sum(chosen.values()) or 1.0
    budget = sum(configured[k] for k in PERSONAL)
    return {k: round(v * budget / total, 4) for k, v in chosen.items()}


def finetune_interest(manifest: "Manifest", index_root: Path, store: "Store", encoder: "Encoder", device: str,
                      epochs: float | None, lr: float | None, seed: int, force: bool, max_minutes: float | None,
                      progress: "ProgressFn | None", cancel: "CancelFn | None",
                      say: Callable[[str], None], versions: Versions) -> dict[str, Any]:
    """Learn the collaborative term (and the interest encoder when asked), choose the weights, judge the candidate
    against the current version (or none) on other held-out users, save a version; promote it unless it is worse."""
    started = time.perf_counter()
    rec = Recommender(manifest, Path(index_root) / manifest.name, encoder, say, versions)
    events = events_by_user(rec, store, manifest.name)
    data = _checked_split(rec, events, manifest.name, say)
    stats = rec.stats(data.train_events, with_past=False)
    pick, judge, apart = halves(data.held)
    current, bar_name = rec.interest, "the current model " + rec.interest.version if rec.interest else "no fine-tuned model"
    rec.interest = None
    base_w, base_fig = cross_chosen(rec, pick, judge, stats, set())
    bar = _current_figures(rec, current, data, data.held, stats) if current is not None else base_fig
    collab = _learn_collab(rec, data.train_events, data.held, stats, say)
    n_epochs = epochs if epochs is not None else rec.config.interest_epochs
    enc, vectors, run = None, None, {"steps": 0, "pairs": len(data.pairs), "seconds": 0.0, "device": device}
    if n_epochs > 0 and data.pairs:
        enc, run = train_interest(rec, data.pairs, device, n_epochs, lr or 3e-5, 32, seed, progress, cancel,
                                  max_minutes * 60 if max_minutes else None)
        vectors = enc.encode([i.text for i in rec.items])
    rec.interest = Interest.from_parts(enc, vectors, {"item_ids": [i.id for i in rec.items]}, "candidate",
                                       collab["train"] if collab else None)
    learned = {"collab"} if collab else set()
    chosen, fig = cross_chosen(rec, pick, judge, stats, learned | ({"interest"} if enc is not None else set()))
    weights = {"request": rec.config.w_request, **scaled(chosen, rec.config.weights())}
    promote = force or fig["ndcg@10"] >= bar["ndcg@10"] - TOLERANCE
    decision = (f"held-out NDCG@10 {fig['ndcg@10']:.4f} against {bar['ndcg@10']:.4f} for {bar_name}"
                + ("" if apart else " (fewer than 8 users held out: weights chosen and judged on the same ones)"))
    final = _final_collab(rec, events, collab, say)
    report = {"plugin": manifest.name, "kind": "interest", "status": "promoted" if promote else "rejected",
              "decision": decision, "run": run, "weights": weights, "chosen_grid_weights": chosen,
              "collab": {k: v for k, v in (collab or {}).items() if k != "train"} or None,
              "heldout": {"candidate": fig, "current": bar if current is not None else None,
                          "without_learning": {**base_fig, "weights": base_w}},
              "epochs": n_epochs, "seconds": round(time.perf_counter() - started, 1)}
    report["version"] = _save(versions, say, promote, report, enc, vectors, final, rec, encoder, fig)
    return report


def _checked_split(rec: Recommender, events: dict[str, list[dict[str, Any]]], name: str, say: Callable[[str], None]) -> Split:
    """The split, or an error that says what feedback is missing."""
    data = split(events, rec.config.history)
    if not data.pairs and not data.held:
        raise InputError(f"{name}: no liked or clicked items to learn from yet; like items in the chat "
                         "(agent feedback TURN --like ITEM) or add an interactions file under [recommend]")
    users = len({e['user_id'] for e in data.train_events})
    say(f"{len(data.pairs)} training pairs from {users} user{'s' if users != 1 else ''}; {len(data.held)} users held out")
    if not data.held:
        raise InputError(f"{name}: no user has 3 or more liked or clicked items yet, so a new model could not be "
                         "checked against the current one; gather more feedback first")
    if users < 2:
        say(f"{name}: only one user so far: what people like together is learned from that user alone")
    return data


def _learn_collab(rec: Recommender, train_events: list[dict[str, Any]], held: list[Held], stats: Stats,
                  say: Callable[[str], None]) -> dict[str, Any] | None:
    """EASE on the training events, with λ and what a click counts for chosen together on the held-out likes."""
    from agent.scenarios.recommend import collab

    if len(rec.items) > collab.MAX_ITEMS:
        say(f"{rec.manifest.name}: {len(rec.items):,} items is more than the collaborative term handles "
            f"({collab.MAX_ITEMS:,}); the formula goes on without it")
        return None
    start = time.perf_counter()
    on = {"collab": 1.0}
    trials: dict[str, float] = {}

    def score(lam: float, click: float) -> float:
        rec.interest = Interest.from_parts(None, None, {}, "trial", collab.fit(collab.user_item_matrix(train_events, rec.by_id, click), lam))
        trials[f"lambda={lam:g} click={click:g}"] = evaluate(rec, held, stats, on)["ndcg@10"]
        return trials[f"lambda={lam:g} click={click:g}"]

    lam, click = max(((lam, click) for click in collab.CLICKS for lam in collab.LAMBDAS), key=lambda knob: score(*knob))
    weights = collab.fit(collab.user_item_matrix(train_events, rec.by_id, click), lam)
    rec.interest = None
    seconds = round(time.perf_counter() - start, 1)
    say(f"collaborative term: λ {lam:g}, a click counts {click:g} ({len(trials)} trials, {seconds} s)")
    return {"lambda": lam, "click": click, "validation_ndcg@10": trials, "seconds": seconds, "train": weights}


def _final_collab(rec: Recommender, events: dict[str, list[dict[str, Any]]], chosen: dict[str, Any] | None,
                  say: Callable[[str], None]) -> "np.ndarray | None":
    """The collaborative weights refitted on every event (held-out likes too) with the chosen λ and click weight."""
    from agent.scenarios.recommend import collab

    if chosen is None:
        return None
    every = [e for evs in events.values() for e in evs]
    return collab.fit(collab.user_item_matrix(every, rec.by_id, chosen["click"]), chosen["lambda"])


def _current_figures(rec: Recommender, current: Interest, data: Split, judge: list[Held], stats: Stats) -> dict[str, float]:
    """The current version judged as the candidate is: its collaborative term refitted without the held-out likes."""
    from agent.scenarios.recommend import collab

    learned = current.config.get("collab") or {}
    weights = collab.fit(collab.user_item_matrix(data.train_events, rec.by_id, learned.get("click", 1.0)), learned["lambda"]) \
        if current.collab is not None and learned.get("lambda") else None
    rec.interest = Interest.from_parts(current.encoder, current.vectors, current.config, current.version, weights)
    fig = evaluate(rec, judge, stats, {**rec.config.weights(), **current.config.get("weights", {})})
    rec.interest = None
    return fig


def _save(versions: Versions, say: Callable[[str], None], promote: bool, report: dict[str, Any], enc: "Encoder | None",
          vectors: "np.ndarray | None", weights: "np.ndarray | None", rec: Recommender, encoder: "Encoder", fig: dict[str, Any]) -> str:
    """Write the version (collab.npy, the interest encoder and its item vectors when trained, config, report)."""
    import numpy as np

    from agent.learn.versioned_run import conclude, locked, new_versions

    with locked(say, versions):
        with new_versions((versions, "version")) as (slot,):
            if enc is not None:
                _write_interest(slot.partial, enc, vectors, rec)
            if weights is not None:
                np.save(slot.partial / "collab.npy", weights)
            config = {"item_ids": [i.id for i in rec.items], "items_hash": rec.items_hash, "weights": report["weights"],
                      "base_model": encoder.fingerprint, "heldout": fig, "history": rec.config.history, "collab": report["collab"]}
            atomic_write(slot.partial / "config.json", json.dumps(config).encode())
            report["row"] = row(report)
            atomic_write(slot.partial / "report.json", json.dumps({**report, "version": slot.name}, indent=2).encode())
        conclude([slot], promote, say)
    return slot.name


def _write_interest(folder: Path, enc: "Encoder", vectors: "np.ndarray", rec: Recommender) -> None:
    """The interest encoder and the items' vectors under it, into a version folder."""
    import numpy as np

    enc.model.save_pretrained(folder / "encoder", safe_serialization=True)
    enc.tokenizer.save_pretrained(folder / "encoder")
    np.save(folder / "items.npy", vectors)


def row(rep: dict[str, Any]) -> dict[str, Any]:
    """The line of `agent finetune --versions`: held-out NDCG@10 stands for accuracy."""
    held = rep["heldout"]
    return {"mode": "interest", "device": rep["run"]["device"], "accuracy": held["candidate"]["ndcg@10"],
            "current_accuracy": (held["current"] or {}).get("ndcg@10"), "finished_at": "-"}
