"""MovieLens small + TMDB overviews: popularity, text only, item-kNN, EASE and the recommender after `agent finetune`.

    python bench/movielens.py [--epochs N] [--skip-finetune]

The default runs `agent finetune` as a team would (the collaborative term and the weights; no interest encoder);
`--epochs N` also trains the interest encoder for N epochs.

Items are the movies with a TMDB overview. Each user's ratings are split in time: the last 20% of
their ratings >= 4 are the test, and only what they rated before the first test item is training.
Users with fewer than 5 ratings >= 4 are not scored. Training ratings become the scratch plugin's
interactions file (>= 4 like, 3 to 3.5 click, below 3 dislike). Candidates are all items the user has
not rated in training. Recall@10 = test items in the top 10 / test items; NDCG@10 with binary gains.

Item-kNN and EASE learn from the training likes, their knob chosen on a validation split cut from the training
ratings the same way (bench/baselines.py). The cold-item slice: test items with fewer than 5 training ratings;
each model ranks only such items there, for the users who have one among their test items. Each training step's
time is printed (timings_s).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from common import SHARED_DATA

DATA = SHARED_DATA / "movielens_small"
COLD = 5  # a test item with fewer training ratings than this is in the cold-item slice
PLUGIN = """name = "movies"
description = "Movie recommendations from MovieLens ratings and TMDB overviews"
[labels]
recommend = "Asking for movie suggestions"
more_like_this = "Wanting more movies like one that was shown"
not_this = "Rejecting a movie that was shown"
like_this = "Approving of a movie that was shown"
[recommend]
items = "items.csv"
interactions = "interactions.csv"
top_k = 10
"""


def load_items() -> dict[str, dict[str, str]]:
    """movieId -> title, genres, overview, for movies whose TMDB entry has an overview."""
    csv.field_size_limit(10**8)
    overview = {}
    with open(DATA / "tmdb_5000_movies_first3000rows.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if (row.get("overview") or "").strip():
                overview[row["id"]] = " ".join(row["overview"].split())
    tmdb = {}
    with open(DATA / "links.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["tmdbId"] in overview:
                tmdb[row["movieId"]] = overview[row["tmdbId"]]
    items = {}
    with open(DATA / "movies.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["movieId"] in tmdb:
                genres = [] if row["genres"] == "(no genres listed)" else row["genres"].lower().split("|")
                items[row["movieId"]] = {"title": row["title"], "genres": genres, "overview": tmdb[row["movieId"]]}
    return items


def split(items: dict[str, dict[str, str]]) -> tuple[list[tuple[str, str, float, int]], dict[str, set[str]]]:
    """Training ratings (user, movie, rating, time) and each scored user's test movies."""
    by_user: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    with open(DATA / "ratings.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["movieId"] in items:
                by_user[row["userId"]].append((int(row["timestamp"]), row["movieId"], float(row["rating"])))
    train, test = [], {}
    for user, rows in by_user.items():
        rows.sort()
        liked = [r for r in rows if r[2] >= 4]
        if len(liked) >= 5:
            held = liked[-math.ceil(0.2 * len(liked)):]
            cut = held[0][0]
            test[user] = {m for _, m, _ in held}
            rows = [r for r in rows if r[0] < cut and r[1] not in test[user]]
        train += [(user, m, r, t) for t, m, r in rows]
    return train, test


def write_plugin(folder: Path, items: dict[str, dict[str, str]], train: list[tuple[str, str, float, int]]) -> Path:
    """A scratch plugin: items, interactions, manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.toml").write_text(PLUGIN)
    with open(folder / "items.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "title", "category", "tags", "description"])
        for mid, it in items.items():
            w.writerow([mid, it["title"], it["genres"][0] if it["genres"] else "", ";".join(it["genres"]), it["overview"]])
    with open(folder / "interactions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "kind", "timestamp"])
        for user, mid, rating, t in train:
            w.writerow([user, mid, "like" if rating >= 4 else "click" if rating >= 3 else "dislike", t])
    return folder


def metrics(ranked: dict[str, list[str]], test: dict[str, set[str]]) -> dict[str, float]:
    """Mean Recall@10 and NDCG@10 over users."""
    recall = ndcg = 0.0
    for user, want in test.items():
        top = ranked[user][:10]
        gains = [1.0 if m in want else 0.0 for m in top]
        recall += sum(gains) / len(want)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(want), 10)))
        ndcg += sum(g / math.log2(i + 2) for i, g in enumerate(gains)) / ideal
    return {"recall@10": round(recall / len(test), 4), "ndcg@10": round(ndcg / len(test), 4)}


def top10(scores, seen: set[int]) -> list[int]:
    """Rows of the 10 best scores, skipping seen rows."""
    import numpy as np

    s = scores.copy()
    if seen:
        s[list(seen)] = -np.inf
    return [int(i) for i in np.argsort(-s, kind="stable")[:10]]


def cold_items(train: list[tuple[str, str, float, int]], test: dict[str, set[str]]) -> set[str]:
    """Test items with fewer than COLD training ratings (of any value): where collaboration cannot reach."""
    n = Counter(m for _, m, _, _ in train)
    return {m for want in test.values() for m in want if n.get(m, 0) < COLD}


def baselines(train, test, ids: list[str], timings: dict[str, float]) -> tuple[dict[str, dict[str, list[str]]], dict, dict]:
    """Item-kNN and EASE, each with its knob chosen on the validation split: the rankings, the knobs and the
    weights (for the cold slice)."""
    from baselines import LAMBDAS, NEIGHBOURS, ease, fit_and_rank, item_knn, tune

    out, knobs, weights = {}, {}, {}
    for name, fit, grid in (("item_knn", item_knn, NEIGHBOURS), ("ease", ease, LAMBDAS)):
        start = time.perf_counter()
        knob, knobs[name] = tune(name, fit, grid, train, ids, metrics, top10)
        timings[f"{name}_tune_s"] = round(time.perf_counter() - start, 1)
        out[name], weights[name], seconds = fit_and_rank(fit, knob, train, ids, list(test), top10)
        timings[f"{name}_fit_s"] = round(seconds, 2)
    return out, knobs, weights


def evaluate(plugin: Path, home: Path, train, test) -> dict[str, Any]:
    """Every model's top 10 for every scored user, on the whole test set and on the cold-item slice."""
    import numpy as np
    from baselines import likes_matrix

    from agent.models.encoder import shared_encoder
    from agent.plugin.manifest import load_manifest
    from agent.scenarios.recommend.model import TERMS, Profile, Recommender

    timings: dict[str, float] = {}
    start = time.perf_counter()
    manifest = load_manifest(plugin)
    rec = Recommender(manifest, home / "indexes" / manifest.name, shared_encoder("cpu"), print)
    timings["items_encoded_s"] = round(time.perf_counter() - start, 1)
    ids = [i.id for i in rec.items]
    events: dict[str, list[dict[str, str]]] = defaultdict(list)
    for e in rec.past:
        events[e["user_id"]].append(e)
    n_ratings = Counter(e["item_id"] for e in rec.past)
    pop = np.array([n_ratings.get(i, 0) for i in ids], dtype=np.float32)
    stats = rec.stats([])
    ours = {**rec.weights(), "request": 0.0}
    variants = {"ours": ours, "ours_without_collab": {**ours, "collab": 0.0}, "ours_without_interest": {**ours, "interest": 0.0},
                "ours_without_together": {**ours, "together": 0.0},
                "ours_interest_and_popularity_only": {**ours, "together": 0.0, "profile": 0.0}}
    ranked, knobs, weights = baselines(train, test, ids, timings)
    ranked |= {"popularity": {}, "content": {}, **{name: {} for name in variants}}
    cold = cold_items(train, test)
    cold_test = {u: want & cold for u, want in test.items() if want & cold}
    not_cold = {n for n, i in enumerate(ids) if i not in cold}
    cold_ranked: dict[str, dict[str, list[str]]] = defaultdict(dict)
    users = sorted({r[0] for r in train})
    row = {u: n for n, u in enumerate(users)}
    x = likes_matrix(train, users, {m: n for n, m in enumerate(ids)})  # the users' likes, as the baselines read them
    for user in test:
        seen = {rec.by_id[e["item_id"]] for e in events[user]}
        profile = Profile.from_events(user, sorted(events[user], key=lambda e: float(e["timestamp"])))
        liked = [rec.by_id[e["item_id"]] for e in events[user] if e["kind"] == "like"]
        content = rec.vectors @ rec.vectors[liked].mean(0) if liked else np.zeros(len(ids), dtype=np.float32)
        scores = {"popularity": pop, "content": content, **{name: x[row[user]] @ w for name, w in weights.items()}}
        for name, weights_ in variants.items():
            parts = rec.parts(profile, None, stats, weights_)
            scores[name] = sum(weights_.get(t, 0.0) * parts[t] for t in TERMS)
            ranked[name][user] = [s.item.id for s in rec.rank(profile, None, stats, {ids[i] for i in seen}, k=10,
                                                             weights=weights_)]
        for name in ("popularity", "content"):
            ranked[name][user] = [ids[i] for i in top10(scores[name], seen)]
        if user in cold_test:
            for name, sc in scores.items():
                cold_ranked[name][user] = [ids[i] for i in top10(sc, seen | not_cold)]
    whole = {name: metrics(r, test) for name, r in ranked.items()}
    sliced = {name: metrics(r, cold_test) for name, r in cold_ranked.items()}
    return {"whole": whole, "cold_items": {"items": len(cold), "users": len(cold_test), **sliced}, "knobs": knobs,
            "timings_s": timings, "weights": rec.weights(), "interest_model": rec.interest.version if rec.interest else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", help="also train the interest encoder for this many epochs")
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--work", type=Path, help="keep the scratch plugin and home here")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found; this benchmark needs ../shared/data/movielens_small")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-movielens-"))
    items = load_items()
    train, test = split(items)
    print(f"{len(items)} movies with an overview; {len(train):,} training ratings; {len(test)} users scored, "
          f"{sum(len(t) for t in test.values()):,} test items", flush=True)
    plugin = work / "plugins" / "movies"
    home = work / "home"
    if not (home / "models" / "movies" / "interest" / "current").is_file():
        write_plugin(plugin, items, train)
    env = {**os.environ, "AGENT_HOME": str(home), "AGENT_PLUGINS_PATH": str(plugin.parent)}
    figures: dict[str, object] = {}
    if not args.skip_finetune:
        start = time.perf_counter()
        epochs = ["--epochs", args.epochs] if args.epochs else []
        subprocess.run([sys.executable, "-m", "agent", "--device", "auto", "finetune", str(plugin), *epochs], env=env, check=True)
        figures["finetune_s"] = round(time.perf_counter() - start, 1)
    figures.update(evaluate(plugin, home, train, test))
    if "finetune_s" in figures:
        figures["timings_s"]["interest_finetune_s"] = figures.pop("finetune_s")
    whole, cold = figures["whole"], figures["cold_items"]
    best = max(whole["ease"]["ndcg@10"], whole["item_knn"]["ndcg@10"])
    figures["ours_over_best_of_ease_and_item_knn_ndcg"] = round(whole["ours"]["ndcg@10"] / best, 3) if best else None
    figures["cold_ours_over_ease_ndcg"] = round(cold["ours"]["ndcg@10"] / cold["ease"]["ndcg@10"], 3) \
        if cold["ease"]["ndcg@10"] else None
    print(json.dumps(figures, indent=2))
    print(f"scratch plugin and home: {work}")


if __name__ == "__main__":
    main()
