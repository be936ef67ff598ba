"""A recommendation reply against one encoder forward pass, on the same messages, in one run.

    python bench/recommender_latency.py [--n 300]

A scratch copy of plugins/recommender and a scratch home. Two users like a few items each and
`agent finetune` trains an interest model, so every term of the formula is in play. Then each message
is sent as a recommendation request by one of them (`Agent.reply`, logged) and, in the same loop,
encoded once on its own. Messages are built from the plugin's own items: "something like TITLE",
"CATEGORY without fees", follow-ups ("more like that", "not the second one").
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def messages(items: list, n: int) -> list[str]:
    """Requests and follow-ups made from the item titles and categories."""
    out = []
    templates = ["something like the {title}", "I need {category} for my family", "{category} without fees",
                 "what {category} would you suggest?", "more like that", "not the second one", "I like the first one"]
    for i in range(n):
        item = items[(i * 7) % len(items)]
        out.append(templates[i % len(templates)].format(title=item.title.replace("Northwind ", ""), category=item.category))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from agent.learn.finetune import Options, finetune
    from agent.models.encoder import shared_encoder
    from agent.reply.agent import Agent
    from agent.scenarios.recommend.events import item_feedback
    from agent.scenarios.recommend.plugin import __name__ as RECOMMENDER
    from agent.settings import Settings

    scratch = Path(tempfile.mkdtemp(prefix="bench-rec-"))
    plugin = scratch / "plugins" / "recommender"
    shutil.copytree(REPO / "plugins" / "recommender", plugin, ignore=shutil.ignore_patterns("interest", "__pycache__"))
    settings = Settings(home=scratch / "home", plugin_paths=[plugin.parent])
    encoder = shared_encoder("cpu")
    agent = Agent(settings, encoder=encoder)
    for user, wants in (("ann", "saving for a first home"), ("bo", "travel gear for a long trip"),
                        ("cy", "books about money"), ("dee", "headphones for running")):
        for text in (wants, "more like that", "more like that"):
            shown = agent.reply(text, f"{user}-warm", "recommender", user=user)
            for item in shown.extra("items"):
                item_feedback(agent, shown.turn_id, item["id"], "like")
    result = finetune(plugin, settings, Options(device="cpu", epochs=3), encoder=encoder)
    print(f"interest model {result.version}: {result.status} ({result.report['decision']})", flush=True)
    rec = agent.runtimes["recommender"].extensions[RECOMMENDER].rec
    texts = messages(rec.items, args.n)
    for t in texts[:20]:
        agent.reply(t, "warm", "recommender", user="ann")
    replies, passes, parts = [], [], []
    for i, text in enumerate(texts):
        start = time.perf_counter()
        reply = agent.reply(text, f"c{i // 7}", "recommender", user=("ann", "bo", "cy", "dee")[i % 4])
        replies.append((time.perf_counter() - start) * 1000)
        parts.append(reply.timings_ms.get("respond", 0.0))
        start = time.perf_counter()
        encoder.encode([text])
        passes.append((time.perf_counter() - start) * 1000)
    interest = rec.interest.version if rec.interest else None
    figures = {"messages": len(texts), "interest_model": interest, "reply_p50_ms": round(statistics.median(replies), 2),
               "encoder_p50_ms": round(statistics.median(passes), 2), "recommend_stage_p50_ms": round(statistics.median(parts), 2)}
    figures["ratio_p50"] = round(figures["reply_p50_ms"] / figures["encoder_p50_ms"], 2)
    print(json.dumps(figures, indent=2))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
