"""One encoder pass per turn with fine-tuned plugins: a scratch home where bundled plugins are fine-tuned in
the default mode with the real `agent finetune`, then, in that home:
  - `Agent.reply` p50 / p99 against one pass of the home's encoder, on the same BANKING77 test messages;
  - peak and settled RSS of `agent chat` (in tmux, 80x24) after it shows "ready" and answers a few messages;
  - the disk each version takes.
The home is kept (`--work`), so `python bench/replay.py --keep WORK --skip-taskmaster` replays in it.

Usage: python bench/one_pass.py [--work DIR] [--plugins customer_service sentiment_monitor] [--all] [--n 500]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "banking77" / "test.csv"


def agent_cmd(home: Path, *args: str) -> list[str]:
    """`agent --home HOME --device cpu ARGS` in this interpreter."""
    return [sys.executable, "-m", "agent", "--home", str(home), "--device", "cpu", *args]


def finetune_all(home: Path, names: list[str]) -> dict[str, dict]:
    """`agent finetune plugins/NAME --json` for each plugin, in order; wall time and what each run did."""
    out = {}
    for name in names:
        if name == "recommender":
            seed_likes(home)
        start = time.perf_counter()
        done = subprocess.run(agent_cmd(home, "finetune", str(REPO / "plugins" / name), "--json"), check=True,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "AGENT_PLUGINS_PATH": ""})
        rep = json.loads(done.stdout)
        out[name] = {"seconds": round(time.perf_counter() - start, 1), "status": rep.get("status"),
                     "mode": (rep.get("run") or {}).get("mode"), "version": rep.get("version"),
                     "encoder_version": rep.get("encoder_version")}
        print(json.dumps({name: out[name]}), flush=True)
    return out


def seed_likes(home: Path) -> None:
    """A few people ask the recommender for items and like the first one shown (its fine-tune learns from likes)."""
    from agent.reply.agent import Agent
    from agent.settings import Settings

    agent = Agent(Settings(home=home, plugin_paths=[REPO / "plugins"]), device="cpu")
    asks = ["a card for travelling abroad", "something for the kitchen", "a good book for the weekend",
            "headphones for running", "a savings account with good interest", "a gift for a coffee lover"]
    for n, text in enumerate(asks * 2):
        user, conv = f"u{n % 4}", f"likes{n}"
        shown = agent.reply(text, conv, plugin="recommender", user=user)
        if shown.extra("items"):
            agent.reply("I like the first one", conv, plugin="recommender", user=user)


def latency(home: Path, n: int) -> dict:
    """p50 / p99 of Agent.reply and of one pass of the same encoder, interleaved on the same messages."""
    from latency import measure

    from agent.reply.agent import Agent
    from agent.settings import Settings

    with open(DATA, newline="", encoding="utf-8") as fh:
        messages = [row["text"] for row in csv.DictReader(fh)][:n]
    agent = Agent(Settings(home=home, plugin_paths=[REPO / "plugins"]), device="cpu")
    result = measure(agent, messages)
    runtimes = {**agent.runtimes, **agent.observers}
    result.update({"encoder": agent.encoder.fingerprint, "models": {n: rt.model_state for n, rt in runtimes.items()},
                   "own_encoders": [n for n, rt in runtimes.items() if rt.classifier.encoder is not None]})
    return result


def chat_rss(home: Path) -> dict:
    """RSS (MB) of `agent chat` in tmux once it is ready and has answered five messages: now, and its peak."""
    session = f"rss{os.getpid()}"
    agent = str(Path(sys.executable).with_name("agent"))
    cmd = f"env AGENT_HOME={home} AGENT_PLUGINS_PATH= {agent} --device cpu chat"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", cmd], check=True)
    try:
        _wait(session, "ready:", 240)
        for text in ("I lost my card", "the app keeps crashing and I'm furious", "where is my order",
                     "recommend me a good film", "how do I change my PIN"):
            subprocess.run(["tmux", "send-keys", "-t", session, text, "Enter"], check=True)
            time.sleep(1.5)
        pid = subprocess.run(["tmux", "list-panes", "-t", session, "-F", "#{pane_pid}"], capture_output=True,
                             text=True).stdout.split()[0]
        status = _status(_leaf(int(pid)))
        return {"rss_mb": round(status["VmRSS"] / 1024, 1), "peak_rss_mb": round(status["VmHWM"] / 1024, 1)}
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def _wait(session: str, text: str, seconds: float) -> None:
    """Until the pane shows `text`."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        screen = subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout
        if text in screen:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the app did not show {text!r} within {seconds} s:\n{screen}")


def _leaf(pid: int) -> int:
    """The deepest child of a process (the python under `env`)."""
    while True:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not kids:
            return pid
        pid = int(kids[0])


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (kB) of a process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def disk(home: Path) -> dict[str, float]:
    """MB on disk of each version folder under the home's encoder/ and models/."""
    out = {}
    for root in (home / "encoder", *sorted((home / "models").glob("*"))):
        for v in sorted(root.glob("v*")) + sorted(root.glob("*/v*")):
            if v.is_dir():
                out[str(v.relative_to(home))] = round(sum(f.stat().st_size for f in v.rglob("*") if f.is_file()) / 1e6, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--plugins", nargs="*", default=["customer_service", "sentiment_monitor"])
    parser.add_argument("--all", action="store_true", help="fine-tune every bundled plugin (the recommender too)")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--skip-finetune", action="store_true", help="measure the home as it is")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data beside the project")
    work = args.work or Path(tempfile.mkdtemp(prefix="agent-one-pass-"))
    home = work / "home"
    names = ["customer_service", "sentiment_monitor", "order_tracking", "recommender"] if args.all else args.plugins
    result = {"home": str(home)}
    if not args.skip_finetune:
        result["finetune"] = finetune_all(home, names)
    result["latency"] = latency(home, args.n)
    print(json.dumps({"latency": result["latency"]}, indent=1), flush=True)
    result["chat"] = chat_rss(home)
    result["disk_mb"] = disk(home)
    print(json.dumps(result, indent=1))
    (work / "one_pass.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
