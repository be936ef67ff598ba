"""The chat app's responsiveness: start-up against loading the encoder, and keypress echo while a
full fine-tune of customer_service trains in the background.

    python bench/tui.py [--keys 200] [--starts 3]

Start-up: wall time from spawning a process to (a) the encoder loaded and warm, in a bare Python
process, and (b) `agent chat` in a real terminal (tmux, 80x24) showing its "ready" line (all of
the repository's plugins loaded, their indexes already built). Keypress echo: a copy of plugins/customer_service in a scratch home;
keys are delivered to the running app as its terminal driver delivers them, and timed until the
prompt holds them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENCODER = "from agent.models.encoder import Encoder; Encoder(device='cpu').encode(['warm up']); print('ready', flush=True)"


def encoder_start() -> float:
    """Seconds from spawn to a warm encoder in a fresh process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", ENCODER], check=True, capture_output=True)
    return time.perf_counter() - start


def app_start(env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawning `agent chat` in tmux to its prompt on screen, and to its 'ready' line."""
    agent = str(Path(sys.executable).with_name("agent"))
    session = f"bench{os.getpid()}"
    cmd = f"env AGENT_HOME={env['AGENT_HOME']} {agent} --device cpu chat"
    start, prompt = time.perf_counter(), None
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd], check=True)
    try:
        while time.perf_counter() - start < 120:
            screen = subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout
            if prompt is None and "Type a message" in screen:
                prompt = time.perf_counter() - start
            if "ready:" in screen:
                return prompt or time.perf_counter() - start, time.perf_counter() - start
            time.sleep(0.02)
        raise RuntimeError("the app did not show 'ready' within 120 s:\n" + screen)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def first_start(env: dict[str, str]) -> None:
    """Build the scratch home's indexes once, so start-up is measured as people meet it every day."""
    subprocess.run([sys.executable, "-m", "agent", "--device", "cpu", "ask", "hello"], env=env, check=True, capture_output=True)


async def echo(keys: int, settings: object) -> dict[str, object]:
    """Keypress echo (ms) while a full fine-tune of customer_service trains, and at rest."""
    from textual import events

    from tui.app import AgentApp
    from tui.session import Session
    from tui.widgets import HistoryInput

    app = AgentApp(Session(settings, "cpu"))

    async def one(ch: str) -> float:
        prompt = app.query_one(HistoryInput)
        want = prompt.value + ch
        t = time.perf_counter()
        app._driver.send_message(events.Key(ch, ch))
        while prompt.value != want:
            await asyncio.sleep(0.0002)
        return (time.perf_counter() - t) * 1000

    async with app.run_test(size=(80, 24)) as pilot:
        while not app.ready.is_set():
            await pilot.pause(0.1)
        idle = []
        for _ in range(50):
            idle.append(await one("x"))
            await asyncio.sleep(0.02)
        app.query_one(HistoryInput).value = ""
        app.start_finetune("customer_service", "full")
        while "step" not in str(app.query_one("#ft-stats").render()):
            await asyncio.sleep(0.05)
        busy = []
        for n in range(keys):
            busy.append(await one("abcdefghij"[n % 10]))
            await asyncio.sleep(0.05)
            if n % 20 == 0:
                app.query_one(HistoryInput).value = ""
        stats = str(app.query_one("#ft-stats").render())
        still = app.finetuning is not None
        app.action_cancel_finetune()
        while app.finetuning:
            await asyncio.sleep(0.1)
    return {"idle": summary(idle), "during_finetune": summary(busy), "training_throughout": still, "progress_at_end": stats}


def summary(ms: list[float]) -> dict[str, float]:
    """p50, p95 and max of a list of milliseconds."""
    ordered = sorted(ms)
    return {"keys": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p95_ms": round(ordered[int(0.95 * (len(ms) - 1))], 2), "max_ms": round(max(ms), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from agent.settings import Settings

    scratch = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    try:
        plugins = scratch / "plugins"
        shutil.copytree(REPO / "plugins" / "customer_service", plugins / "customer_service",
                        ignore=shutil.ignore_patterns("model", "__pycache__"))
        env = {**os.environ, "AGENT_HOME": str(scratch / "home")}  # the plugins a user of this folder gets
        first_start(env)
        out: dict[str, object] = {}
        encoder = [encoder_start() for _ in range(args.starts)]
        out["encoder_load_s"] = round(statistics.median(encoder), 2)
        if shutil.which("tmux"):
            starts = [app_start(env) for _ in range(args.starts)]
            out["app_prompt_s"] = round(statistics.median(s[0] for s in starts), 2)
            out["app_ready_s"] = round(statistics.median(s[1] for s in starts), 2)
            out["ratio"] = round(out["app_ready_s"] / out["encoder_load_s"], 2)
        print(json.dumps(out), flush=True)
        settings = Settings(home=scratch / "home", plugin_paths=[plugins])
        out["keypress"] = asyncio.run(echo(args.keys, settings))
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
