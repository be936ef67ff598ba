"""The chat app's memory around a fine-tune it runs itself: resident memory before, the run's peak, and after.

    python bench/chat_memory.py

A copy of plugins/customer_service in a scratch home, with a `[finetune]` policy (after 3 labels, no
waiting). The real app (Textual, headless, in this process) loads, answers 5 messages, and its RSS is
read. Then (1) a fine-tune as F5 starts it, in the default mode; when it has ended, 5 more messages
(the promoted model answers them) and the RSS again; (2) three replies corrected, so that the
plugin's own policy starts a run; the same reading after it. Each "after" is compared with "before".
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLICY = "\n[finetune]\nafter_labels = 3\nmin_hours = 0\n"
MESSAGES = ("I lost my card", "my transfer has not arrived", "how do I change my PIN", "the app keeps crashing",
            "what are your opening hours")
CORRECTIONS = (("someone took my card from my bag", "card_lost_or_stolen"),
               ("money sent to my sister last week is still not there", "transfer_not_received"),
               ("the cash machine kept my money", "atm_cash_not_dispensed"))


def rss_mb() -> float:
    """This process's resident memory now (MB)."""
    from agent.memory import rss_mb as now

    return now()


async def chatted(app: object, pilot: object) -> float:
    """Send MESSAGES, let the app's threads finish what the replies started, and read the RSS (MB)."""
    for text in MESSAGES:
        await send(app, pilot, text)
    await asyncio.sleep(3.0)
    return rss_mb()


async def send(app: object, pilot: object, text: str) -> None:
    """Type a message and wait for its reply."""
    from tui.widgets import HistoryInput

    before = getattr(app, "last", None)
    app.query_one(HistoryInput).value = text  # type: ignore[attr-defined]
    await pilot.press("enter")  # type: ignore[attr-defined]
    start = time.perf_counter()
    while getattr(app, "last", None) is before:
        if time.perf_counter() - start > 120:
            raise RuntimeError(f"no reply to {text!r} within 120 s")
        await asyncio.sleep(0.05)


async def finished(app: object, started: float, limit: float = 3600) -> None:
    """Wait until the app's background fine-tune has started and ended."""
    while not app.finetuning:  # type: ignore[attr-defined]
        if time.perf_counter() - started > 120:
            raise RuntimeError("the fine-tune did not start within 120 s")
        await asyncio.sleep(0.1)
    while app.finetuning:  # type: ignore[attr-defined]
        if time.perf_counter() - started > limit:
            raise RuntimeError("the fine-tune did not end within the hour")
        await asyncio.sleep(0.5)


def last_run(home: Path) -> dict:
    """The newest version's report: status, seconds and peak RSS."""
    models = home / "models" / "customer_service"
    newest = max(models.glob("v*/report.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(newest.read_text())
    run = report["run"]
    return {"version": newest.parent.name, "status": report.get("status"), "seconds": run.get("seconds"),
            "peak_rss_mb": run.get("peak_rss_mb")}


async def measure(settings: object, home: Path) -> dict:
    """Before, F5's run, and the policy's run, as the app lives through them."""
    from tui.app import AgentApp
    from tui.session import Session

    app = AgentApp(Session(settings, "cpu"))
    out: dict = {}
    async with app.run_test(size=(100, 30)) as pilot:
        while not app.ready.is_set():
            await pilot.pause(0.1)
        out["before_mb"] = await chatted(app, pilot)
        started = time.perf_counter()
        app.start_finetune("customer_service")  # what F5's picker calls
        await finished(app, started)
        out["f5_run"] = last_run(home)
        out["after_f5_mb"] = await chatted(app, pilot)
        started = time.perf_counter()
        for text, label in CORRECTIONS:
            await send(app, pilot, text)
            app.correct(label)
            await pilot.pause(0.5)
        await finished(app, started)
        out["policy_run"] = last_run(home)
        out["after_policy_mb"] = await chatted(app, pilot)
    out["f5_growth_mb"] = round(out["after_f5_mb"] - out["before_mb"], 1)
    out["policy_growth_mb"] = round(out["after_policy_mb"] - out["before_mb"], 1)
    return out


def main() -> None:
    sys.path.insert(0, str(REPO))
    from agent.settings import Settings

    scratch = Path(tempfile.mkdtemp(prefix="bench-chat-memory-"))
    try:
        plugin = scratch / "plugins" / "customer_service"
        shutil.copytree(REPO / "plugins" / "customer_service", plugin, ignore=shutil.ignore_patterns("model", "__pycache__"))
        with open(plugin / "plugin.toml", "a", encoding="utf-8") as fh:
            fh.write(POLICY)
        home = scratch / "home"
        settings = Settings(home=home, plugin_paths=[scratch / "plugins"])
        print(json.dumps(asyncio.run(measure(settings, home)), indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
