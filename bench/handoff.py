"""People in the loop, end to end.

latency  A real `agent serve --public-chat` process on a loopback port and a real headless Chromium: N times, a new
         customer opens the web page and asks for a person; the operator finds the conversation in GET /v1/handoffs,
         takes it and replies (POST .../reply); we time from the reply's POST until the page shows it (marked as a
         person's), then release. Prints p50/p90/p99/max. Target: p99 under 1 s. A screenshot of the last page.
crash    20 conversations ask for a person and write two more messages each; the server is killed with SIGKILL and
         started again: all 20 must still wait, each with its 3 messages.
learn    A 10-intent BANKING77 plugin from 5 examples per intent; 50 conversations, each answered by a simulated
         operator who takes it, replies, labels the customer's message with its true intent and releases it. Then
         `agent finetune --mode MODE`; the agent's accuracy on those 50 messages before (as answered) and after.

Usage: python bench/handoff.py [--parts latency,crash,learn] [--handoffs 100] [--waiting 20] [--learn 50]
                               [--mode head] [--work DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from serve import create_key, free_port, percentile

REPO = Path(__file__).resolve().parents[1]
BANKING = REPO.parent / "shared" / "data" / "banking77"
ASK = "I want to speak to a real person please"


def start(home: Path, port: int, public: bool = True) -> subprocess.Popen:
    """`agent serve` with the bundled plugins (and --public-chat); waits until /readyz says ready."""
    import httpx

    env = {**os.environ, "AGENT_HOME": str(home)}
    cmd = ["agent", "--device", "cpu", "serve", "--port", str(port), "--rate", "100000/second"] + (["--public-chat"] if public else [])
    server = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    server.kill()
    sys.exit("the server did not become ready in 300 s")


def latency(work: Path, n: int) -> dict[str, Any]:
    """Time n handoffs from the operator's reply to the customer's page showing it."""
    import httpx
    from playwright.sync_api import sync_playwright

    home, port = work / "latency-home", free_port()
    home.mkdir(parents=True)
    key = create_key(home, "operator")
    server = start(home, port)
    url = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    seen: set[str] = set()
    times: list[float] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
            for i in range(n):
                times.append(_one_handoff(browser, api, url, seen, work / "customer.png" if i == n - 1 else None))
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    ms = [t * 1000 for t in times]
    return {"handoffs": n, "p50_ms": round(percentile(ms, 50), 1), "p90_ms": round(percentile(ms, 90), 1),
            "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms), 1), "under_1s": sum(t < 1.0 for t in times)}


def _one_handoff(browser: Any, api: Any, url: str, seen: set[str], shot: Path | None) -> float:
    """A customer asks for a person; the operator takes it and replies; seconds until the page shows the reply."""
    context = browser.new_context(viewport={"width": 900, "height": 700})
    page = context.new_page()
    page.goto(url)
    page.fill("#text", ASK)
    page.press("#text", "Enter")
    page.locator("li.msg.system", has_text="Waiting for a person").wait_for(timeout=30_000)
    waiting = [h["conversation_id"] for h in api.get("/v1/handoffs").json()["handoffs"] if h["conversation_id"] not in seen]
    assert len(waiting) == 1, f"expected one new conversation waiting, found {waiting}"
    conversation = waiting[0]
    seen.add(conversation)
    api.post(f"/v1/handoffs/{conversation}/take").raise_for_status()
    start_t = time.perf_counter()
    api.post(f"/v1/handoffs/{conversation}/reply", json={"text": "Hello, this is Ana from the team. How can I help?"}).raise_for_status()
    page.locator("li.msg.person").wait_for(timeout=30_000)
    took = time.perf_counter() - start_t
    if shot is not None:
        page.screenshot(path=str(shot))
    api.post(f"/v1/handoffs/{conversation}/release").raise_for_status()
    context.close()
    return took


def crash(work: Path, n: int) -> dict[str, Any]:
    """n conversations wait for a person; SIGKILL; after a restart all still wait with every message."""
    import httpx

    home, port = work / "crash-home", free_port()
    home.mkdir(parents=True)
    chat, operator = create_key(home, "chat"), create_key(home, "operator")
    server = start(home, port, public=False)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {chat}"}, timeout=30)
    sent: dict[str, list[str]] = {}
    for i in range(n):
        conversation = f"crash-{i}"
        sent[conversation] = [ASK, f"my card number ends in {1000 + i} and it was stolen", f"hello? message {i}"]
        for text in sent[conversation]:
            client.post(f"/v1/conversations/{conversation}/messages", json={"text": text}).raise_for_status()
    server.send_signal(signal.SIGKILL)
    server.wait(30)
    server = start(home, port, public=False)
    ops = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {operator}"}, timeout=30)
    try:
        waiting = {h["conversation_id"]: h for h in ops.get("/v1/handoffs").json()["handoffs"]}
        complete = 0
        for conversation, texts in sent.items():
            shown = ops.get(f"/v1/handoffs/{conversation}").json()
            logged = [t["text"] for t in shown.get("turns", [])]
            complete += len(logged) == len(texts) and waiting.get(conversation, {}).get("state") == "waiting"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    return {"conversations": n, "waiting_after_restart": len(waiting), "with_every_message": complete}


def learn(work: Path, n: int, mode: str, seed: int) -> dict[str, Any]:
    """Operators label n handed-over messages; accuracy on them before and after `agent finetune`."""
    from agent.reply.agent import Agent, Message
    from agent.scenarios.handoff import inbox
    from agent.settings import Settings

    folder, messages = _plugin(work / "plugins", n, seed)
    home = work / "learn-home"
    agent = Agent(Settings(home=home, plugin_paths=[work / "plugins"]), device="cpu")
    before = 0
    for i, (text, intent) in enumerate(messages):
        conversation = f"learn-{i}"
        turn = agent.reply(text, conversation)
        before += turn.label == intent
        inbox.take(agent.store, conversation, "ana")
        inbox.reply(agent.store, conversation, "Thanks, I have sorted this out for you.", "ana")
        inbox.label(agent, conversation, turn.turn_id, intent, "ana", new_label=False)
        inbox.release(agent.store, conversation, "ana")
    agent.store.close()
    env = {**os.environ, "AGENT_PLUGINS_PATH": str(work / "plugins")}
    t = time.perf_counter()
    out = subprocess.run(["agent", "--home", str(home), "--device", "cpu", "finetune", str(folder), "--mode", mode, "--json"],
                         env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if out.returncode:
        sys.exit(f"agent finetune failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    after_agent = Agent(Settings(home=home, plugin_paths=[work / "plugins"]), device="cpu")
    replies = after_agent.replies([Message(text, f"check-{i}") for i, (text, _) in enumerate(messages)], log=False)
    after = sum(r.label == intent for r, (_, intent) in zip(replies, messages))
    return {"messages": n, "mode": mode, "accuracy_before": round(before / n, 3), "accuracy_after": round(after / n, 3),
            "finetune_s": round(seconds, 1), "outcome": _promoted(result)}


def _promoted(report: dict[str, Any]) -> str:
    """The fine-tune's outcome (promoted or rejected), as its report says."""
    return str(report.get("status"))


def _plugin(root: Path, n: int, seed: int) -> tuple[Path, list[tuple[str, str]]]:
    """A 10-intent BANKING77 plugin from 5 examples per intent; n other messages of those intents."""
    with open(BANKING / "train.csv", newline="", encoding="utf-8") as fh:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    rng = random.Random(seed)
    intents = sorted(rng.sample(sorted({lab for _, lab in rows}), 10))
    rng.shuffle(rows)
    examples = [r for lab in intents for r in [x for x in rows if x[1] == lab][:5]]
    used = set(examples)
    rest = [r for r in rows if r[1] in intents and r not in used]
    folder = root / "bank10"
    folder.mkdir(parents=True)
    with open(folder / "examples.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label"), *examples])
    (folder / "plugin.toml").write_text('name = "bank10"\ndescription = "Ten banking intents"\n\n[data]\nexamples = "examples.csv"\n')
    return folder, rest[:n]


def main() -> None:
    """Run the parts asked for; print each one's figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="latency,crash,learn")
    parser.add_argument("--handoffs", type=int, default=100)
    parser.add_argument("--waiting", type=int, default=20)
    parser.add_argument("--learn", type=int, default=50)
    parser.add_argument("--mode", default="head", choices=["head", "shared", "full", "lora"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="handoff-bench-"))
    parts = args.parts.split(",")
    print(f"python bench/handoff.py --parts {args.parts} --handoffs {args.handoffs} --waiting {args.waiting} "
          f"--learn {args.learn} --mode {args.mode} --seed {args.seed}  (work: {work})")
    if "latency" in parts:
        print("latency", json.dumps(latency(work, args.handoffs)), flush=True)
    if "crash" in parts:
        print("crash", json.dumps(crash(work, args.waiting)), flush=True)
    if "learn" in parts:
        print("learn", json.dumps(learn(work, args.learn, args.mode, args.seed)), flush=True)


if __name__ == "__main__":
    main()
