"""MovieLens small + TMDB overviews: popularity, content only, and the recommender after `agent finetune`.

    python bench/movielens.py [--epochs 1] [--skip-finetune]

Items are the movies with a TMDB overview. Each user's ratings are split in time: the last 20% of
their ratings >= 4 are the test, and only what they rated before the first test item is training.
Users with fewer than 5 ratings >= 4 are not scored. Training ratings become the scratch plugin's
interactions file (>= 4 like, 3 to 3.5 click, below 3 dislike). Candidates are all items the user has
not rated in training. Recall@10 = test items in the top 10 / test items; NDCG@10 with binary gains.
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

from common import SHARED_DATA

DATA = SHARED_DATA / "movielens_small"
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


def evaluate(plugin: Path, home: Path, train, test) -> dict[str, dict[str, float]]:
    """The three rankings for every scored user."""
    import numpy as np

    from agent.models.encoder import shared_encoder
    from agent.plugin.manifest import load_manifest
    from agent.scenarios.recommend.model import Profile, Recommender

    manifest = load_manifest(plugin)
    rec = Recommender(manifest, home / "indexes" / manifest.name, shared_encoder("cpu"), print)
    ids = [i.id for i in rec.items]
    events: dict[str, list[dict[str, str]]] = defaultdict(list)
    for e in rec.past:
        events[e["user_id"]].append(e)
    n_ratings = Counter(e["item_id"] for e in rec.past)
    pop = np.array([n_ratings.get(i, 0) for i in ids], dtype=np.float32)
    stats = rec.stats([])
    ours = {**rec.weights(), "request": 0.0}
    variants = {"ours": ours, "ours_without_interest": {**ours, "interest": 0.0},
                "ours_without_together": {**ours, "together": 0.0},
                "ours_interest_and_popularity_only": {**ours, "together": 0.0, "profile": 0.0}}
    out: dict[str, dict[str, list[str]]] = {"popularity": {}, "content": {}, **{name: {} for name in variants}}
    for user in test:
        seen = {rec.by_id[e["item_id"]] for e in events[user]}
        profile = Profile.from_events(user, sorted(events[user], key=lambda e: float(e["timestamp"])))
        liked = [rec.by_id[e["item_id"]] for e in events[user] if e["kind"] == "like"]
        out["popularity"][user] = [ids[i] for i in top10(pop, seen)]
        content = rec.vectors @ rec.vectors[liked].mean(0) if liked else np.zeros(len(ids), dtype=np.float32)
        out["content"][user] = [ids[i] for i in top10(content, seen)]
        exclude = {ids[i] for i in seen}
        for name, weights in variants.items():
            out[name][user] = [s.item.id for s in rec.rank(profile, None, stats, exclude, k=10, weights=weights)]
    return {name: metrics(ranked, test) for name, ranked in out.items()} | {
        "weights": rec.weights(), "interest_model": rec.interest.version if rec.interest else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", default="1")
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
        subprocess.run([sys.executable, "-m", "agent", "--device", "auto", "finetune", str(plugin), "--epochs", args.epochs],
                       env=env, check=True)
        figures["finetune_s"] = round(time.perf_counter() - start, 1)
    figures.update(evaluate(plugin, home, train, test))
    best = max(figures["popularity"]["ndcg@10"], figures["content"]["ndcg@10"])
    figures["ours_over_best_baseline_ndcg"] = round(figures["ours"]["ndcg@10"] / best, 3) if best else None
    print(json.dumps(figures, indent=2))
    print(f"scratch plugin and home: {work}")


if __name__ == "__main__":
    main()
