"""A simulated deployment: BANKING77 from 10 examples per intent, some intents hidden, rounds of incoming
messages, a person's decisions each round, the plugin's [finetune] policy, test.csv after each round.

Two arms start from the same plugin and see the same messages:
- review: the person works from the proposals (accepting a group under the true label most of its
  messages carry; its other messages stay mislabelled, as a hurried person leaves them) and then
  from the review queue (a turn's true label; a turn of an intent the plugin does not know yet is
  left for the proposals);
- random: the person labels random turns of the round with their true labels.
After each round `agent finetune --due` runs what the policy (after_labels = the decisions per round,
min_hours = 0) asks for, as cron would, and `agent eval` scores test.csv (every intent, hidden ones too).

Usage: python bench/learning_loop.py [--rounds 10] [--per-round 900] [--decisions 50] [--hidden 10]
                                     [--arms review,random] [--work DIR] [--seed 0] [--mode head]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import SHARED_DATA

DATA = SHARED_DATA / "banking77"
PLUGIN = "banking77"
NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def read(name: str) -> list[tuple[str, str]]:
    """(text, intent) rows of a BANKING77 file."""
    with open(DATA / name, newline="", encoding="utf-8") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def setup(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[tuple[str, str]], set[str]]:
    """The starting examples (10 per visible intent), the incoming stream, the hidden intents."""
    rows = read("train.csv")
    rng = random.Random(args.seed)
    intents = sorted({lab for _, lab in rows})
    hidden = set(rng.sample([i for i in intents if NAME.fullmatch(i)], args.hidden))  # names a label may take
    by: dict[str, list[int]] = {}
    for i, (_, lab) in enumerate(rows):
        by.setdefault(lab, []).append(i)
    start = [i for lab in intents if lab not in hidden for i in rng.sample(by[lab], args.shots)]
    taken = set(start)
    stream = [i for i in range(len(rows)) if i not in taken]
    rng.shuffle(stream)
    return [rows[i] for i in start], [rows[i] for i in stream[: args.rounds * args.per_round]], hidden


def make_plugin(work: Path, start: list[tuple[str, str]], decisions: int, env: dict[str, str], mode: str | None) -> Path:
    """`agent new-plugin` from the starting examples, with a [finetune] policy due after each round's decisions."""
    csv_path = work / "start.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        w.writerows(start)
    plugin = work / "plugins" / PLUGIN
    cli(["new-plugin", str(plugin), "--examples", str(csv_path), "--label-column", "category"], env)
    toml = plugin / "plugin.toml"
    toml.write_text(toml.read_text() + f"\n[finetune]\nafter_labels = {decisions}\nmin_hours = 0\n"
                    + (f'mode = "{mode}"\n' if mode else ""))
    return plugin


def cli(args: list[str], env: dict[str, str]) -> str:
    """Run `agent ARGS`; its standard output."""
    out = subprocess.run([sys.executable, "-m", "agent", *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout


def answer(agent, messages: list[tuple[str, str]], rnd: int) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """Answer and log a round's messages; each turn's true intent by turn id."""
    from agent.reply.agent import Message

    truth: dict[int, str] = {}
    for s in range(0, len(messages), 64):
        chunk = messages[s : s + 64]
        replies = agent.replies([Message(t, f"r{rnd}-{s + j}", PLUGIN) for j, (t, _) in enumerate(chunk)])
        for reply, (_, lab) in zip(replies, chunk):
            if not isinstance(reply, Exception) and reply.turn_id:
                truth[reply.turn_id] = lab
    return truth


def review_person(agent, truth: dict[int, str], budget: int, created: set[str], hidden: set[str]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Decisions from the proposals first, then the review queue; what was decided."""
    from agent.review import proposals
    from agent.review import queue as review

    done = Counter()
    known = set(agent.runtimes[PLUGIN].labels) | created
    for p in proposals.propose(agent, PLUGIN):
        if done["total"] >= budget:
            break
        votes = Counter(truth[t] for t in p.turn_ids if t in truth)
        if not votes:
            continue
        label, n = votes.most_common(1)[0]
        if n * 2 < len(p.turn_ids):
            continue  # no label holds most of the group: the person passes
        proposals.accept(agent, p, label)
        done["total"] += 1
        done["group_turns"] += len(p.turn_ids)
        done["group_turns_mislabelled"] += sum(truth.get(t) != label for t in p.turn_ids)
        done["cluster_new" if label not in known else "cluster_merge"] += 1
        if label in hidden and label not in known:
            created.add(label)
        known.add(label)
    for item in review.build(agent, PLUGIN, limit=budget * 4):
        if done["total"] >= budget:
            break
        true = truth.get(item.turn_id)
        if true is None or (true in hidden and true not in created):
            continue  # an intent the plugin does not know yet: left for the proposals
        if true in agent.runtimes[PLUGIN].labels:
            review.decide(agent, item.turn_id, "confirm" if item.label == true else "correct", true)
        else:  # a label accepted from a proposal this round, not trained yet
            agent.feedback(item.turn_id, label=true, new_label=True)
        done["total"] += 1
        done["queue"] += 1
    return dict(done)


def random_person(agent, truth: dict[int, str], budget: int, rng: random.Random) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Label random turns of the round with their true intents."""
    known = set(agent.runtimes[PLUGIN].labels)  # a label taught but not trained yet is still new to the plugin
    for turn_id in rng.sample(sorted(truth), min(budget, len(truth))):
        agent.feedback(turn_id, label=truth[turn_id], new_label=truth[turn_id] not in known)
    return {"total": min(budget, len(truth))}


def evaluate(plugin: Path, out: Path, env: dict[str, str]) -> float:
    """test.csv accuracy of the plugin as it answers now."""
    cli(["eval", str(plugin), "--data", str(DATA / "test.csv"), "--label-column", "category", "--json", str(out)], env)
    return float(json.loads(out.read_text())["accuracy"])


def run_arm(arm: str, args: argparse.Namespace, work: Path) -> list[dict]:
    """One arm, every round: answer, decide, the policy's fine-tune, evaluate."""
    from agent.reply.agent import Agent
    from agent.settings import Settings

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "AGENT_HOME": str(work / "home"), "AGENT_PLUGINS_PATH": str(work / "plugins")}
    start, stream, hidden = setup(args)
    plugin = make_plugin(work, start, args.decisions, env, args.mode)
    rows = [{"round": 0, "accuracy": evaluate(plugin, work / "eval-0.json", env), "mode": "head (no fine-tune)"}]
    print(json.dumps({"arm": arm, **rows[0]}), flush=True)
    created: set[str] = set()
    truth: dict[int, str] = {}  # every logged turn's true intent: the queue also holds earlier rounds' turns
    rng = random.Random(args.seed + 1)
    for rnd in range(1, args.rounds + 1):
        t0 = time.perf_counter()
        os.environ["AGENT_HOME"] = env["AGENT_HOME"]
        agent = Agent(Settings(home=work / "home", plugin_paths=[plugin.parent]))
        new = answer(agent, stream[(rnd - 1) * args.per_round : rnd * args.per_round], rnd)
        truth.update(new)
        done = (review_person(agent, truth, args.decisions, created, hidden) if arm == "review"
                else random_person(agent, new, args.decisions, rng))
        agent.store.close()
        t1 = time.perf_counter()
        due = json.loads(cli(["finetune", "--due", "--json"], env) or "[]")
        t2 = time.perf_counter()
        acc = evaluate(plugin, work / f"eval-{rnd}.json", env)
        runs = [r for r in (due if isinstance(due, list) else [due]) if isinstance(r, dict)]
        row = {"round": rnd, "accuracy": acc, "decisions": done, "hidden_recovered": len(created & hidden),
               "mode": ", ".join(f"{r['mode']} {r['status']}" for r in runs if r.get("due")) or "no run due",
               "answer_decide_s": round(t1 - t0, 1), "finetune_s": round(t2 - t1, 1)}
        rows.append(row)
        print(json.dumps({"arm": arm, **row}), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=900)
    parser.add_argument("--decisions", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=10)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--arms", default="review,random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", default=None, help="the policy's mode (default: none, the default mode)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "agent-bench-learning-loop")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/banking77 beside the project")
    results = {arm: run_arm(arm, args, args.work / arm) for arm in args.arms.split(",")}
    print("\n| round | " + " | ".join(f"{a} accuracy" for a in results) + " | review: hidden intents recovered | modes |")
    print("|---|" + "---|" * (len(results) + 2))
    for i in range(args.rounds + 1):
        accs = " | ".join(f"{results[a][i]['accuracy']:.4f}" if i < len(results[a]) else "-" for a in results)
        first = next(iter(results.values()))
        extra = first[i] if i < len(first) else {}
        print(f"| {i} | {accs} | {extra.get('hidden_recovered', '-')} | {extra.get('mode', '-')} |")
    (args.work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
