"""`agent finetune` for a plugin with [recommend]: the interest model, trained on (history text, item
text) pairs from the interactions file and logged feedback, then the formula's weights chosen on
each user's last liked item, held out."""

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
from agent.scenarios.recommend.model import POSITIVE, Interest, Profile, Recommender, Stats, history_text

if TYPE_CHECKING:
    import numpy as np

    from agent.learn.trainer import CancelFn, ProgressFn
    from agent.models.encoder import Encoder
    from agent.plugin.manifest import Manifest
    from agent.store import Store

GRID = {"profile": (0.0, 0.5, 1.0), "interest": (0.0, 0.5, 1.0, 2.0), "popularity": (0.0, 0.1, 0.25, 0.5, 1.0),
        "together": (0.0, 0.25, 0.5, 1.0)}
MAX_PAIRS = 20  # training pairs per user (their latest), so heavy users do not drown the others
TOLERANCE = 0.005


@dataclass
class Held:
    """One user's held-out check: their events before their last liked item, and that item."""

    user: str
    before: list[dict[str, Any]]
    target: str


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
    """Hold out each user's last liked or clicked item (users with 3 or more); pairs from what came before."""
    s = Split()
    for user, evs in events.items():
        positives = [n for n, e in enumerate(evs) if e["kind"] in POSITIVE]
        cut = positives[-1] if len(positives) >= 3 else len(evs)
        if cut < len(evs):
            s.held.append(Held(user, evs[:cut], evs[cut]["item_id"]))
        train = evs[:cut]
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

    from agent.learn.trainer import Loop
    from agent.models.encoder import Encoder

    random.seed(seed)
    torch.manual_seed(seed)
    enc = Encoder(device=device, max_length=128)
    model, tok = enc.model.train(), (enc.tokenizer, enc.vocab)  # text spelt as the encoder reads it (agent.text.spelling)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
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
    """NDCG@10 and Recall@10 of the last liked items with these weights (no request)."""
    import numpy as np

    names = ("profile", "interest", "popularity", "together")
    w = np.array([weights.get(n, 0.0) for n in names], dtype=np.float32)
    ranks = np.array([_rank(w @ block, target) for block, target in _blocks(rec, held, stats, weights.get("interest", 0) > 0)])
    hit = ranks < 10
    ndcg = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean()) if len(ranks) else 0.0
    return {"ndcg@10": round(ndcg, 4), "recall@10": round(float(hit.mean()) if len(ranks) else 0.0, 4), "users": len(ranks)}


def _blocks(rec: Recommender, held: list[Held], stats: Stats, with_interest: bool) -> list[tuple["np.ndarray", int]]:
    """Per held-out user: the four personal terms over all items (seen items NaN), and the target's row."""
    import numpy as np

    rows = []
    for h in held:
        profile = Profile.from_events(h.user, h.before)
        parts = rec.parts(profile, None, stats, {"interest": 1.0 if with_interest else 0.0, "together": 1.0})
        seen = list({rec.by_id[e["item_id"]] for e in h.before} - {rec.by_id[h.target]})
        block = np.stack([parts[n] for n in ("profile", "interest", "popularity", "together")])
        if seen:
            block[:, seen] = np.nan
        rows.append((block, rec.by_id[h.target]))
    return rows


def choose_weights(rec: Recommender, held: list[Held], stats: Stats, with_interest: bool) -> tuple[dict[str, float], dict[str, float]]:
    """The grid weights with the best NDCG@10 on the held-out items, and those figures."""
    import itertools

    import numpy as np

    names = ("profile", "interest", "popularity", "together")
    rows = _blocks(rec, held, stats, with_interest)
    best: tuple[float, float, dict[str, float]] = (-1.0, 0.0, {})
    grids = [GRID[n] if n != "interest" or with_interest else (0.0,) for n in names]
    for combo in itertools.product(*grids):
        if not any(combo):
            continue
        w = np.array(combo, dtype=np.float32)
        ranks = np.array([_rank(w @ block, target) for block, target in rows])
        hit = ranks < 10
        ndcg = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean()) if len(rows) else 0.0
        if ndcg > best[0]:
            best = (ndcg, float(hit.mean()) if len(rows) else 0.0, dict(zip(names, map(float, combo))))
    return best[2], {"ndcg@10": round(best[0], 4), "recall@10": round(best[1], 4), "users": len(rows)}


def _rank(scores: "np.ndarray", target: int) -> float:
    """The target's 0-based rank among the unseen items (NaN: seen); ties count half."""
    import numpy as np

    mine = scores[target]
    return float(np.nansum(scores > mine) + 0.5 * (np.nansum(scores == mine) - 1))


def halves(held: list[Held]) -> tuple[list[Held], list[Held], bool]:
    """Users to choose the weights on and users to judge the model on (the same ones when fewer than 8)."""
    if len(held) < 8:
        return held, held, False
    return held[0::2], held[1::2], True


def scaled(chosen: dict[str, float], configured: dict[str, float]) -> dict[str, float]:
    """Chosen weights rescaled to the configured sum of the personal terms, so the request keeps its say."""
    total = sum(chosen.values()) or 1.0
    budget = sum(configured[k] for k in ("profile", "interest", "popularity", "together"))
    return {k: round(v * budget / total, 4) for k, v in chosen.items()}


def finetune_interest(manifest: "Manifest", index_root: Path, store: "Store", encoder: "Encoder", device: str,
                      epochs: float | None, lr: float | None, seed: int, force: bool, max_minutes: float | None,
                      progress: "ProgressFn | None", cancel: "CancelFn | None",
                      say: Callable[[str], None], versions: Versions) -> dict[str, Any]:
    """Train, evaluate against the current model (or none), save a version; promote it unless it is worse."""
    started = time.perf_counter()
    rec = Recommender(manifest, Path(index_root) / manifest.name, encoder, say, versions)
    data = split(events_by_user(rec, store, manifest.name), rec.config.history)
    if not data.pairs:
        raise InputError(f"{manifest.name}: no liked or clicked items to learn from yet; like items in the chat "
                         "(agent feedback TURN --like ITEM) or add an interactions file under [recommend]")
    stats = rec.stats(data.train_events, with_past=False)
    say(f"{len(data.pairs)} training pairs from {len({e['user_id'] for e in data.train_events})} users; "
        f"{len(data.held)} users held out")
    if not data.held:
        raise InputError(f"{manifest.name}: no user has 3 or more liked or clicked items yet, so a new model could not be "
                         "checked against the current one; gather more feedback first")
    pick, judge, apart = halves(data.held)
    base_w, _ = choose_weights(rec, pick, stats, with_interest=False)
    base_fig = evaluate(rec, judge, stats, base_w)
    current = rec.interest
    current_fig = evaluate(rec, judge, stats, rec.weights()) if current is not None else None
    n_epochs = epochs if epochs is not None else 1.0
    enc, run = train_interest(rec, data.pairs, device, n_epochs, lr or 3e-5, 32, seed, progress, cancel,
                                max_minutes * 60 if max_minutes else None)
    vectors = enc.encode([i.text for i in rec.items])
    candidate = Interest.from_parts(enc, vectors, {"item_ids": [i.id for i in rec.items]}, "candidate")
    rec.interest = candidate
    chosen, _ = choose_weights(rec, pick, stats, with_interest=True)
    fig = evaluate(rec, judge, stats, chosen)
    weights = {"request": rec.config.w_request, **scaled(chosen, rec.config.weights())}
    bar = current_fig["ndcg@10"] if current_fig else base_fig["ndcg@10"]
    promote = force or fig["ndcg@10"] >= bar - TOLERANCE
    decision = (f"held-out NDCG@10 {fig['ndcg@10']:.4f} against {bar:.4f} for "
                f"{'the current model ' + current.version if current else 'no interest model'}"
                + ("" if apart else " (fewer than 8 users held out: weights chosen and judged on the same ones)"))
    report = {"plugin": manifest.name, "kind": "interest", "status": "promoted" if promote else "rejected",
              "decision": decision, "run": run, "weights": weights, "chosen_grid_weights": chosen,
              "heldout": {"candidate": fig, "current": current_fig, "without_interest": {**base_fig, "weights": base_w}},
              "epochs": n_epochs, "seconds": round(time.perf_counter() - started, 1)}
    from agent.learn.versioned_run import conclude, locked, new_versions

    with locked(say, versions):
        with new_versions((versions, "version")) as (slot,):
            _write_interest(slot.partial, enc, vectors, rec, {"weights": weights, "base_model": encoder.fingerprint, "heldout": fig})
            report["row"] = row(report)
            atomic_write(slot.partial / "report.json", json.dumps({**report, "version": slot.name}, indent=2).encode())
        conclude([slot], promote, say)
    version = slot.name
    return {**report, "version": version}


def _write_interest(folder: Path, enc: "Encoder", vectors: "np.ndarray", rec: Recommender, extra: dict[str, Any]) -> None:
    """The interest model's encoder, its item vectors and its config into a version folder."""
    import numpy as np

    enc.model.save_pretrained(folder / "encoder", safe_serialization=True)
    enc.tokenizer.save_pretrained(folder / "encoder")
    np.save(folder / "items.npy", vectors)
    config = {"item_ids": [i.id for i in rec.items], "items_hash": rec.items_hash, **extra, "history": rec.config.history}
    atomic_write(folder / "config.json", json.dumps(config).encode())


def row(rep: dict[str, Any]) -> dict[str, Any]:
    """The line of `agent finetune --versions`: held-out NDCG@10 stands for accuracy."""
    held = rep["heldout"]
    return {"mode": "interest", "device": rep["run"]["device"], "accuracy": held["candidate"]["ndcg@10"],
            "current_accuracy": (held["current"] or {}).get("ndcg@10"), "finished_at": "-"}
