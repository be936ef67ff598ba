"""The sentiment monitor end to end: the bundled plugin and its own data, feeds through the real encoder,
spike alerts in the database, chat flags, and the CLI."""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.models.encoder import Encoder
from agent.reply.agent import Agent
from agent.scenarios.monitor.run import watch
from agent.scenarios.monitor.scorer import Scorer
from agent.settings import Settings
from conftest import REPO, make_plugin

PLUGIN = REPO / "plugins" / "sentiment_monitor"
T0 = 1795392000.0  # 2026-11-23T00:00:00Z


def rows(name: str) -> list[dict[str, str]]:
    """Rows of one of the plugin's CSV files."""
    with open(PLUGIN / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    """The bundled sentiment_monitor (without any fine-tuned model) beside the tiny shop responder."""
    root = tmp_path / "plugins"
    shutil.copytree(PLUGIN, root / "sentiment_monitor", ignore=shutil.ignore_patterns("model", "__pycache__"))
    make_plugin(root)
    return root


@pytest.fixture
def monitor_agent(tmp_path: Path, plugins: Path, encoder: Encoder) -> Agent:
    """An agent over the copy, with a temporary home."""
    return Agent(Settings(home=tmp_path / "home", plugin_paths=[plugins]), encoder=encoder)


def test_own_sentences_are_balanced_and_teach_held_out_labels_and_topics(monitor_agent: Agent) -> None:
    train = rows("sentences.csv")
    assert len(train) >= 300
    counts: dict[tuple[str, str], int] = {}
    for r in train:
        counts[r["label"], r["topic"]] = counts.get((r["label"], r["topic"]), 0) + 1
    topics = monitor_agent.observers["sentiment_monitor"].manifest.tables["topics"]
    assert set(topics.domains) == {"bank", "shop"} and len(counts) == 3 * len(topics)
    for names in topics.domains.values():  # balanced over labels and topics within each domain
        assert len({n for (_, t), n in counts.items() if t in names}) == 1
    held = rows("heldout.csv")
    assert not {r["text"] for r in held} & {r["text"] for r in train}
    scores = Scorer(monitor_agent.observers["sentiment_monitor"]).score([r["text"] for r in held])
    label_acc = sum(s.label == r["label"] for s, r in zip(scores, held)) / len(held)
    topic_acc = sum(s.topic == r["topic"] for s, r in zip(scores, held)) / len(held)
    assert label_acc >= 0.78 and topic_acc >= 0.80, (label_acc, topic_acc)


def spike_feed(windows: int = 16, spike: range = range(10, 14), per_window: int = 14, seed: int = 0) -> list[str]:
    """JSONL lines: 'app' and 'cards' items each window, negative about 15% of the time, 75% for 'app' in `spike`."""
    rng = random.Random(seed)
    pool: dict[tuple[str, bool], list[str]] = {}
    for r in rows("sentences.csv"):
        pool.setdefault((r["topic"], r["label"] == "negative"), []).append(r["text"])
    lines = []
    for w in range(windows):
        for i in range(per_window):
            for topic in ("app", "cards"):
                share = 0.75 if topic == "app" and w in spike else 0.15
                text = rng.choice(pool[topic, rng.random() < share])
                stamp = T0 + w * 3600 + i * 3600 / per_window
                lines.append(json.dumps({"text": text, "timestamp": stamp, "source": "synthetic"}))
    return lines


def test_an_injected_spike_raises_exactly_one_alert_within_a_window(monitor_agent: Agent) -> None:
    lines = spike_feed()
    lines.insert(4, "{broken json")
    lines.insert(100, '{"text": ""}')
    bad, alerts = [], []
    data = io.BytesIO(("\n".join(lines) + "\n").encode())
    summary = watch(monitor_agent.observers["sentiment_monitor"], monitor_agent.store, data, Path("spike.jsonl"),
                    on_bad=bad.append, on_alert=alerts.append, batch_size=64)
    assert [b.line for b in bad] == [5, 101]
    assert summary.items == len(lines) - 2 and summary.status == "done"
    # one alert for app; the all-topics series, half of it app's items, rises from 15% to 45% and alerts too
    assert [a["topic"] for a in alerts] == ["app", "all"], [a["message"] for a in alerts]
    assert 0 <= alerts[0]["window_start"] - (T0 + 10 * 3600) <= 3600
    assert T0 + 10 * 3600 <= alerts[1]["window_start"] < T0 + 14 * 3600
    stored = monitor_agent.store.query("SELECT topic, window_start FROM alerts WHERE run_id = ?", [summary.run_id])
    assert stored == [{"topic": a["topic"], "window_start": a["window_start"]} for a in alerts]
    items = monitor_agent.store.query("SELECT COUNT(*) AS n, COUNT(DISTINCT topic) AS t FROM feed_items WHERE run_id = ?",
                                      [summary.run_id])
    assert items == [{"n": summary.items, "t": items[0]["t"]}] and items[0]["t"] >= 2


def test_a_feed_without_a_spike_raises_no_alert(monitor_agent: Agent) -> None:
    data = io.BytesIO(("\n".join(spike_feed(spike=range(0))) + "\n").encode())
    summary = watch(monitor_agent.observers["sentiment_monitor"], monitor_agent.store, data, Path("calm.jsonl"))
    assert summary.alerts == [] and summary.windows >= 16


def test_feed_text_is_stored_redacted(monitor_agent: Agent) -> None:
    line = json.dumps({"text": "my card 4111 1111 1111 1111 was charged twice, furious", "timestamp": T0})
    summary = watch(monitor_agent.observers["sentiment_monitor"], monitor_agent.store, io.BytesIO(line.encode()), None)
    (row,) = monitor_agent.store.query("SELECT text, label FROM feed_items WHERE run_id = ?", [summary.run_id])
    assert "4111" not in row["text"] and "<CARD>" in row["text"] and row["label"] == "negative"


def test_a_strongly_negative_chat_turn_is_flagged_and_offered_a_person(monitor_agent: Agent) -> None:
    angry = monitor_agent.reply("I lost my card and your bank is useless, worst service ever, I am furious")
    note = angry.annotations["sentiment_monitor"]
    assert note["label"] == "negative" and note["topic"] == "cards" and note["flag"] == "strong_negative"
    assert angry.extra("flags") and angry.extra("flags")[0]["plugin"] == "sentiment_monitor"
    assert angry.plugin == "shop" and angry.text.endswith("Would you like me to pass you to a person?")
    calm = monitor_agent.reply("what are your opening hours on saturday?")
    assert calm.extra("flags") == [] and "flag" not in calm.annotations["sentiment_monitor"]
    assert "pass you to a person" not in calm.text
    stored = monitor_agent.store.turn(angry.turn_id)
    assert stored["annotations"]["sentiment_monitor"]["flag"] == "strong_negative"


def test_cli_reads_stdin_reports_bad_lines_and_prints_the_report(tmp_path: Path, plugins: Path) -> None:
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(plugins), "AGENT_LOAD_PLUGINS": "sentiment_monitor"}
    feed = "text,timestamp\n" + "\n".join(json.loads(x)["text"].replace(",", "") + f",{json.loads(x)['timestamp']}"
                                          for x in spike_feed()) + "\nhello,there,extra\n"
    runner = CliRunner()
    result = runner.invoke(cli, ["monitor", "-", "--json"], input=feed, env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["items"] == len(spike_feed()) and summary["bad_lines"] == 1
    assert [a["topic"] for a in summary["alerts"]] == ["app", "all"]
    assert f":{len(spike_feed()) + 2}: 3 fields where the header has 2" in result.stderr
    report = runner.invoke(cli, ["monitor", "--report"], env={**env, "COLUMNS": "100"})
    assert report.exit_code == 0, report.output
    assert "app" in report.stdout and "cards" in report.stdout and "alerts (newest first)" in report.stdout


def test_cli_needs_a_feed_or_report(tmp_path: Path, plugins: Path) -> None:
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(plugins), "AGENT_LOAD_PLUGINS": "sentiment_monitor"}
    result = CliRunner().invoke(cli, ["monitor"], env=env)
    assert result.exit_code == 2 and "FEED" in result.output
    result = CliRunner().invoke(cli, ["monitor", "--report"], env=env)
    assert result.exit_code == 1 and "agent monitor FEED.jsonl" in result.output


def test_finetune_works_out_of_the_box_and_a_running_monitor_picks_it_up(monitor_agent: Agent, plugins: Path) -> None:
    from agent.learn.finetune import Options, finetune

    runtime = monitor_agent.observers["sentiment_monitor"]
    assert runtime.model_state.startswith("head")
    result = finetune(plugins / "sentiment_monitor", monitor_agent.settings, Options(mode="head", device="cpu"),
                      encoder=monitor_agent.encoder)
    assert result.status == "promoted" and result.report["data"]["train_rows"] >= 300
    line = json.dumps({"text": "the app crashed again and ate my transfer, furious", "timestamp": T0})
    summary = watch(runtime, monitor_agent.store, io.BytesIO(line.encode()), None)
    assert runtime.model_state.startswith("fine-tuned v1") and summary.labels == {"negative": 1}


def test_logged_chat_turns_feed_the_trends(monitor_agent: Agent) -> None:
    from agent.scenarios.monitor.run import chat_items, run_items

    for text in ("my card was declined again, this is a disgrace", "what are your opening hours?", "refund my order please"):
        monitor_agent.reply(text)
    items = list(chat_items(monitor_agent.store, "sentiment_monitor"))
    assert [i.source for i in items] == ["chat"] * 3 and items[0].topic == "cards"
    summary = run_items(monitor_agent.observers["sentiment_monitor"], monitor_agent.store, iter(items), "chat")
    assert summary.items == 3 and summary.labels["negative"] >= 1


def test_chat_topic_centroids_are_saved_and_reused(tmp_path: Path, plugins: Path, encoder: Encoder) -> None:
    settings = Settings(home=tmp_path / "home", plugin_paths=[plugins])
    first: list[str] = []
    Agent(settings, encoder=encoder, notify=first.append).reply("the app keeps crashing")
    assert "building index sentiment_monitor/topics" in first
    assert (settings.index_root / "sentiment_monitor" / "topics.json").is_file()
    notes: list[str] = []
    reply = Agent(settings, encoder=encoder, notify=notes.append).reply("the app keeps crashing")
    assert reply.annotations["sentiment_monitor"]["topic"] == "app"
    assert not [n for n in notes if "topics" in n], notes


def test_a_monitor_without_topics_puts_everything_under_other(tmp_path: Path, plugins: Path, encoder: Encoder) -> None:
    toml = plugins / "sentiment_monitor" / "plugin.toml"
    text = toml.read_text()
    text = text[: text.index("\n[topics.bank]")] + text[text.index("\n[monitor]"):]
    toml.write_text("\n".join(line for line in text.splitlines() if not line.startswith("domains = ")))
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[plugins]), encoder=encoder)
    line = json.dumps({"text": "fees went up again, awful", "timestamp": T0})
    summary = watch(agent.observers["sentiment_monitor"], agent.store, io.BytesIO(line.encode()), None)
    assert summary.topics == {"other": 1} and summary.labels == {"negative": 1}


@pytest.fixture
def bundled_agent(tmp_path: Path, encoder: Encoder) -> Agent:
    """An agent over copies of the bundled customer_service (a bank), order_tracking (a shop) and sentiment_monitor."""
    root = tmp_path / "plugins"
    for name in ("customer_service", "order_tracking", "sentiment_monitor"):
        shutil.copytree(REPO / "plugins" / name, root / name, ignore=shutil.ignore_patterns("model", "__pycache__", "test_*"))
    return Agent(Settings(home=tmp_path / "home", plugin_paths=[root]), encoder=encoder)


def test_a_parcel_goes_to_a_shop_topic_or_other_and_bank_turns_keep_their_topics(bundled_agent: Agent) -> None:
    from agent.reply.agent import Message

    monitor = bundled_agent.observers["sentiment_monitor"]
    domains = monitor.manifest.tables["topics"].domains
    parcel = bundled_agent.reply("where is my parcel? it was due yesterday")
    assert parcel.plugin == "order_tracking"
    assert parcel.annotations["sentiment_monitor"]["topic"] in {"other", *domains["shop"]}
    chat = bundled_agent.reply("is it going to rain tomorrow?")
    assert chat.annotations["sentiment_monitor"]["topic"] == "other"
    held = rows("heldout.csv")
    replies = bundled_agent.replies([Message(r["text"]) for r in held], log=False)
    topics = [r.annotations["sentiment_monitor"]["topic"] for r in replies]  # type: ignore[union-attr]
    assert sum(t == r["topic"] for t, r in zip(topics, held)) / len(held) >= 0.85, topics
    by_bank = [t for t, r in zip(topics, replies) if r.plugin == "customer_service"]  # type: ignore[union-attr]
    assert len(by_bank) >= len(held) / 2 and not set(by_bank) & set(domains["shop"])
    feed = Scorer(monitor).score(["where is my parcel? it was due yesterday", "is it going to rain tomorrow?"])
    assert feed[0].topic in {"other", *domains["shop"]} and feed[1].topic == "other"  # a feed item: all topics compete


def test_a_flat_topics_table_still_works_and_small_talk_goes_to_other(tmp_path: Path, plugins: Path, encoder: Encoder) -> None:
    import re

    folder = plugins / "sentiment_monitor"
    text = (folder / "plugin.toml").read_text()
    text = re.sub(r"^\[topics\.shop\].*?(?=^\[monitor\])", "", text, flags=re.S | re.M).replace("[topics.bank]", "[topics]")
    (folder / "plugin.toml").write_text(re.sub(r"^domains = .*\n", "", text, flags=re.M))
    kept = [r for r in rows("sentences.csv") if r["topic"] not in ("delivery", "returns", "orders")]
    with open(folder / "sentences.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["text", "label", "topic"])
        writer.writeheader()
        writer.writerows(kept)
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[plugins]), encoder=encoder)
    monitor = agent.observers["sentiment_monitor"]
    assert monitor.manifest.tables["topics"].domains == {} and len(monitor.manifest.tables["topics"]) == 8
    scores = Scorer(monitor).score(["the app froze when I tried to log in", "lovely weather for a walk today",
                                    "the park was full of people today"])
    assert [s.topic for s in scores] == ["app", "other", "other"], scores
    assert agent.reply("lovely weather for a walk today").annotations["sentiment_monitor"]["topic"] == "other"


# A surge spread over every topic, from sentences written for this test: (bad event, other event) per topic.
SURGE_EVENTS = {
    "cards": ("my card was swallowed by the cash machine", "my card arrived in a nice new sleeve"),
    "payments": ("the transfer to my sister vanished", "the transfer to my sister landed instantly"),
    "fees": ("another overdraft charge out of nowhere", "what do you charge for a bank draft"),
    "loans": ("the loan company keeps rejecting me without a reason", "my loan got approved this morning"),
    "app": ("the app crashes every time I open it", "the app has a handy new budget screen"),
    "branches": ("they shut the only branch in our town", "the branch opens at nine on Saturdays"),
    "savings": ("my savings interest rate got slashed", "topped up my savings pot today"),
    "support": ("on hold for ages and then cut off", "the helpline lady was lovely"),
    "delivery": ("my parcel is lost and the courier won't answer", "my parcel came early"),
    "returns": ("still waiting on the refund for my return", "the return was easy to drop off"),
    "orders": ("they sent me the wrong item again", "my order was shipped the same day"),
}


def surge_feed(calm: int, surge: int, after: int, per_hour: int = 60, seed: int = 0) -> list[str]:
    """JSONL lines, no topic named: negative about 15% of the time, 70% in the surge hours, topics drawn evenly."""
    rng = random.Random(seed)
    lines = []
    for hour in range(calm + surge + after):
        share = 0.70 if calm <= hour < calm + surge else 0.15
        for i in range(per_hour):
            bad = rng.random() < share
            event = SURGE_EVENTS[rng.choice(sorted(SURGE_EVENTS))][0 if bad else 1]
            text = rng.choice(["", "ugh, ", "so "]) + event if bad else rng.choice(["", "fyi ", "nice, "]) + event
            lines.append(json.dumps({"text": text, "timestamp": T0 + hour * 3600 + i * 3600 / per_hour}))
    return lines


def test_a_surge_over_every_topic_alerts_on_the_all_topics_series(tmp_path: Path, plugins: Path, monitor_agent: Agent) -> None:
    calm, surge, after = 30, 4, 3
    data = io.BytesIO(("\n".join(surge_feed(calm, surge, after, per_hour=40)) + "\n").encode())
    summary = watch(monitor_agent.observers["sentiment_monitor"], monitor_agent.store, data, Path("surge.jsonl"), batch_size=256)
    hours = [(a["topic"], int((a["window_start"] - T0) // 3600)) for a in summary.alerts]
    assert [h for t, h in hours if t == "all"] in ([calm], [calm + 1]), hours  # within 2 windows of the surge
    assert not [h for _, h in hours if not calm <= h < calm + surge], hours  # calm hours raise none, on any series
    assert summary.alerts[0]["message"].startswith("all topics: negative share")
    per_topic = monitor_agent.store.query("SELECT state FROM monitor_windows WHERE run_id = ? AND topic != 'all'", [summary.run_id])
    assert sum(w["state"] == "thin" for w in per_topic) > len(per_topic) / 2  # most topic windows were too small to judge
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(plugins), "AGENT_LOAD_PLUGINS": "sentiment_monitor",
           "COLUMNS": "120"}
    report = CliRunner().invoke(cli, ["monitor", "--report"], env=env)
    assert report.exit_code == 0, report.output
    table = [line for line in report.stdout.splitlines() if line.startswith("│")]
    assert [cell.strip() for cell in table[0].split("│")[1:3]] == ["all topics", f"{summary.items:,}"]
    assert "all topics" in report.stdout.split("alerts (newest first)")[1]
    data = json.loads(CliRunner().invoke(cli, ["monitor", "--report", "--json"], env=env).stdout)
    assert data["topics"][0]["topic"] == "all" and data["topics"][0]["items"] == summary.items and data["topics"][0]["alerts"] == 1
