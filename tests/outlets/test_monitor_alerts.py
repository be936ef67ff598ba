"""The monitor's alerts reach the outlets: `agent monitor` on a small feed with a spike, a webhook on 127.0.0.1."""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import shutil
from pathlib import Path

from click.testing import CliRunner
from receiver import Receiver

from agent.cli.main import cli
from agent.store import Store
from conftest import REPO

PLUGIN = REPO / "plugins" / "sentiment_monitor"
T0 = 1795392000.0  # 2026-11-23T00:00:00Z


def spiky_feed(per_window: int = 12) -> str:
    """JSONL about the app: one negative item in 12 for six hourly windows, then 11 in 12 for three, then one more item."""
    with open(PLUGIN / "sentences.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["topic"] == "app"]
    bad = [r["text"] for r in rows if r["label"] == "negative"]
    good = [r["text"] for r in rows if r["label"] == "positive"]
    lines = []
    for w in range(9):
        negatives = 11 if w >= 6 else 1
        for i in range(per_window):
            text = bad[(w * per_window + i) % len(bad)] if i < negatives else good[(w * per_window + i) % len(good)]
            lines.append({"text": text, "timestamp": T0 + w * 3600 + i * 60, "topic": "app"})
    lines.append({"text": good[0], "timestamp": T0 + 10 * 3600, "topic": "app"})
    return "\n".join(json.dumps(x) for x in lines) + "\n"


def test_agent_monitor_publishes_each_stored_alert_and_delivers_it_during_the_run(tmp_path: Path) -> None:
    shutil.copytree(PLUGIN, tmp_path / "plugins" / "sentiment_monitor", ignore=shutil.ignore_patterns("model", "__pycache__"))
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(tmp_path / "plugins"),
           "AGENT_LOAD_PLUGINS": "sentiment_monitor"}
    runner = CliRunner()
    with Receiver() as r:
        assert runner.invoke(cli, ["alerts", "webhook", "add", r.url(), "--secret", "k"], env=env).exit_code == 0
        result = runner.invoke(cli, ["monitor", "-", "--json", "--quiet"], input=spiky_feed(), env=env)
        assert result.exit_code == 0, result.output
        received = list(r.requests)  # by the time the command returns
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    stored = Store(tmp_path / "home" / "agent.db").query("SELECT id, topic, message FROM alerts ORDER BY id")
    assert len(stored) == len(summary["alerts"]) >= 1 and "app" in {a["topic"] for a in stored}
    assert sorted((q.json()["data"]["id"], q.json()["data"]["topic"], q.json()["data"]["message"]) for q in received) == [
        (a["id"], a["topic"], a["message"]) for a in stored]
    for q in received:
        assert q.headers["X-Agent-Event"] == "alert" and q.json()["plugin"] == "sentiment_monitor"
        assert q.headers["X-Agent-Signature"] == "sha256=" + hmac.new(b"k", q.body, hashlib.sha256).hexdigest()
