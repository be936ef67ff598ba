"""The chat app, driven with Textual's pilot on the real encoder, a tiny real plugin and a real database."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner
from textual.command import CommandList, CommandPalette

from agent.cli.main import cli
from agent.models.versions import Versions
from agent.reply.agent import Agent
from agent.scenarios.monitor.tui import SentimentPanel, sentiment
from agent.scenarios.recommend.events import ItemStore
from agent.settings import Settings
from conftest import make_plugin, models_of
from tui.app import AgentApp
from tui.screens import LogsScreen, Picker
from tui.session import Session
from tui.widgets import AgentMessage, FinetuneBar, HistoryInput, Note

SIZE = (80, 24)
RECOMMENDS = '''
from agent import hookimpl

@hookimpl
def build_reply(text, answer):
    if "recommend" not in text:
        return None
    return {"text": "You might like these.", "items": [
        {"id": "travel-card", "title": "Travel card", "reason": "no foreign fees", "score": 0.9},
        {"id": "saver", "title": "House saver", "reason": "like your last like", "score": 0.7},
        {"title": "no id, dropped"}]}
'''


def app_for(settings: Settings, encoder: Any, **kw: Any) -> AgentApp:
    """The app over an agent that shares the session's encoder."""
    return AgentApp(Session(settings, "cpu", agent=Agent(settings, encoder=encoder), conversation="c-test", **kw))


async def until(pilot: Any, cond: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Let the app run until `cond()` is true."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = cond()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {cond}")


async def send(pilot: Any, app: AgentApp, text: str) -> AgentMessage:
    """Type a message, press Enter, wait for its reply."""
    before = len(app.query(AgentMessage))
    await until(pilot, app.ready.is_set)
    app.query_one(HistoryInput).value = text
    await pilot.press("enter")
    await until(pilot, lambda: len(app.query(AgentMessage)) > before)
    return list(app.query(AgentMessage))[-1]


async def command(pilot: Any, app: AgentApp, text: str) -> None:
    """Type a slash command and let its background call finish."""
    app.query_one(HistoryInput).value = text
    await pilot.press("enter")
    await settle(pilot, app)


async def settle(pilot: Any, app: AgentApp) -> None:
    """Wait until the agent's thread has nothing queued and the UI has caught up."""
    await until(pilot, app.lane.idle)
    await pilot.pause(0.3)


def text_of(widget: Any) -> str:
    """What a widget shows, as plain text."""
    from rich.text import Text

    rendered = widget.render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


def notes(app: AgentApp) -> str:
    return "\n".join(text_of(n) for n in app.query(Note))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_reply_shows_plugin_label_confidence_and_expandable_sources(settings: Settings, encoder) -> None:
    async def go() -> None:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            message = await send(pilot, app, "I lost my card")
            meta = text_of(message.query_one(".meta"))
            assert meta.startswith("shop · card_lost 0.") and f"turn {app.last.turn_id}" in meta
            assert text_of(message.query_one(".text")) == app.last.text and app.last.answer_id in ("lost-1", "lost-2")
            sources = message.query_one("Collapsible")
            assert sources.collapsed and "sources (2)" in str(sources.title)
            await pilot.click(sources.query_one("CollapsibleTitle"))
            assert not sources.collapsed
            shown = text_of(sources.query_one(".sources"))
            assert "lost-1: How do I block a lost card?" in shown and "lost-2: My card was stolen, what now?" in shown

    run(go())


def test_fallback_says_why(settings: Settings, encoder) -> None:
    async def go() -> None:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            message = await send(pilot, app, "qwertyuiop asdfgh zxcvb")
            meta = text_of(message.query_one(".meta"))
            assert "fallback:" in meta and app.last.fallback_reason and app.last.fallback_reason in " ".join(meta.split())

    run(go())


def test_prompt_history_and_errors_stay_in_the_chat(settings: Settings, encoder) -> None:
    async def go() -> None:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot, app, "when are you open")
            await send(pilot, app, "I want my money back")
            prompt = app.query_one(HistoryInput)
            await pilot.press("up")
            assert prompt.value == "I want my money back"
            await pilot.press("up", "up")
            assert prompt.value == "when are you open"
            await pilot.press("down", "down")
            assert prompt.value == ""
            await command(pilot, app, "/use nosuchplugin")
            assert "no responder plugin named 'nosuchplugin'" in notes(app)
            await command(pilot, app, "/frobnicate")
            assert "unknown command /frobnicate" in notes(app)
            await command(pilot, app, "\x00\x01 \ufffe")  # binary junk: a clear error, the app goes on
            assert "error: the message does not look like text" in notes(app)
            await command(pilot, app, "x" * 6000)
            assert "error: the message is 6,000 characters; the limit is 5,000" in notes(app)
            await send(pilot, app, "I lost my card")
            assert app.last.label == "card_lost"

    run(go())


def test_use_command_and_palette_switch_plugin(tmp_path: Path, encoder) -> None:
    root = tmp_path / "plugins"
    make_plugin(root, "shop")
    make_plugin(root, "bank", "A bank's help desk")
    settings = Settings(home=tmp_path / "home", plugin_paths=[root])

    async def go() -> None:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            await command(pilot, app, "/use bank")
            assert app.session.plugin == "bank" and "Now using bank." in notes(app)
            assert (await send(pilot, app, "I lost my card")).reply.plugin == "bank"
            await pilot.press("ctrl+p")
            palette = await until(pilot, lambda: isinstance(app.screen, CommandPalette) and app.screen)
            await pilot.press(*"use plugin shop")

            def offered() -> bool:
                found = palette.query_one(CommandList)
                return any("Use plugin shop" in str(found.get_option_at_index(i).prompt) for i in range(found.option_count))

            await until(pilot, offered)
            await pilot.press("enter")
            await settle(pilot, app)
            assert app.session.plugin == "shop" and app.sub_title == "using shop"
            assert (await send(pilot, app, "I lost my card")).reply.plugin == "shop"
            await command(pilot, app, "/use bank please")
            assert "usage: /use NAME" in notes(app) and app.session.plugin == "shop"

    run(go())


def test_feedback_keys_and_label_picker_store_through_agent_feedback(settings: Settings, encoder) -> None:
    async def go() -> tuple[int, list[dict[str, Any]]]:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            message = await send(pilot, app, "my parcel is broken, what now")
            turn = app.last.turn_id
            await pilot.press("f3")
            await settle(pilot, app)
            await pilot.press("f4")
            picker = await until(pilot, lambda: isinstance(app.screen, Picker) and app.screen)
            await pilot.press("f4", "f6")  # the chat's keys do nothing over the picker
            assert len(app.screen_stack) == 2
            await pilot.press(*"ref")
            assert picker.shown() == ["refund"]
            await pilot.press("enter")
            await settle(pilot, app)
            assert not isinstance(app.screen, Picker)
            marks = [text_of(m) for m in message.query(".mark")]
            assert marks == ["✗ marked bad", "✎ label corrected to refund"]
            await command(pilot, app, "/label nonsense")
            assert "'nonsense' is not a label of plugin shop" in notes(app)
            await command(pilot, app, "/label --new")
            assert "usage: /label --new LABEL" in notes(app)
            await command(pilot, app, "/label --new parcels")
            return turn, app.session.turn(turn)["feedback"]

    turn, feedback = run(go())
    assert [(f["kind"], f["label"]) for f in feedback] == [("bad", None), ("label", "refund"), ("label", "parcels")]
    assert Agent(settings).store.turn(turn)["feedback"] == feedback  # the same rows `agent feedback` writes


def test_recommended_items_are_shown_and_liked_or_rejected(settings: Settings, plugin_root: Path, encoder) -> None:
    (plugin_root / "shop" / "hooks.py").write_text(RECOMMENDS)

    async def go() -> int:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            message = await send(pilot, app, "recommend me a card")
            items = [text_of(w) for w in message.query(".item")]
            assert items == ["1. Travel card (travel-card) — no foreign fees", "2. House saver (saver) — like your last like"]
            assert any("items [2] have no 'id'" in text_of(w) for w in message.query(".warning"))
            await command(pilot, app, "/like")
            assert "give an item number 1-2" in notes(app)
            await command(pilot, app, "/like 1")
            await command(pilot, app, "/reject saver")
            await command(pilot, app, "/click 3")
            assert "give an item number 1-2" in notes(app)
            assert [text_of(m) for m in message.query(".mark")] == ["♥ liked travel-card", "⊘ rejected saver"]
            return app.last.turn_id

    turn = run(go())
    store = Agent(settings).store
    stored = store.turn(turn)
    assert [(f["item_id"], f["kind"]) for f in ItemStore(store).turn_feedback(turn)] == [("travel-card", "like"), ("saver", "dislike")]
    assert [i["id"] for i in stored["extras"]["shop"]["items"]] == ["travel-card", "saver"]
    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(plugin_root)}
    out = CliRunner().invoke(cli, ["feedback", str(turn), "--click", "saver"], env=env)
    assert out.exit_code == 0 and "stored click of item saver" in out.output
    bad = CliRunner().invoke(cli, ["feedback", str(turn), "--like", "nope"], env=env)
    assert bad.exit_code == 1 and "item 'nope' was not recommended in turn" in bad.output and "travel-card, saver" in bad.output


def test_sentiment_panel_plots_the_running_feed_and_its_alerts(settings: Settings, encoder) -> None:
    agent = Agent(settings, encoder=encoder)
    store = agent.store
    [run_id] = store.insert("monitor_runs", [{"plugin": "sentiment_monitor", "label": "negative", "status": "running",
                                              "source": "feed.jsonl", "items": 0}], ids=True)

    def windows(start: int, shares: list[float], topic: str) -> list[dict[str, Any]]:
        return [{"run_id": run_id, "plugin": "sentiment_monitor", "topic": topic, "start": 60.0 * (start + i),
                 "end": 60.0 * (start + i + 1), "n": 20, "hits": int(s * 20), "share": s, "baseline": 0.1, "z": 0.0,
                 "state": "calm"} for i, s in enumerate(shares)]

    store.insert("monitor_windows", windows(0, [0.1, 0.15, 0.1], "cards") + windows(0, [0.2, 0.2, 0.25], "fees"))

    async def go() -> None:
        app = AgentApp(Session(settings, "cpu", agent=agent))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            panel = app.query_one(SentimentPanel)
            assert not app.query_one("#side").display
            await pilot.press("f7")
            await until(pilot, lambda: "run 1" in text_of(panel.query_one("#sent-title")))
            assert "no alerts" in text_of(panel.query_one("#sent-alerts"))
            store.insert("monitor_windows", windows(3, [0.7, 0.8], "cards"))  # the feed goes on: a spike
            store.insert("alerts", [{"run_id": run_id, "plugin": "sentiment_monitor", "topic": "cards", "label": "negative",
                                     "share": 0.8, "baseline": 0.12, "window_end": 300.0, "message": "cards spike"}])
            await until(pilot, lambda: "cards" in text_of(panel.query_one("#sent-alerts")), timeout=10)
            assert "80% (baseline 12%)" in text_of(panel.query_one("#sent-alerts"))
            data = sentiment(app.session.core().store)
            assert [s for _, s in data.series["cards"]] == [0.1, 0.15, 0.1, 0.7, 0.8] and len(data.series["fees"]) == 3
            await pilot.press("f7")
            assert not app.query_one("#side").display

    run(go())


def test_sentiment_panel_shows_the_all_topics_series_first(settings: Settings, encoder) -> None:
    agent = Agent(settings, encoder=encoder)
    store = agent.store
    [run_id] = store.insert("monitor_runs", [{"plugin": "sentiment_monitor", "label": "negative", "status": "done"}], ids=True)
    shares = {"cards": [0.1, 0.2, 0.6], "fees": [0.2, 0.1, 0.7], "all": [0.15, 0.15, 0.65]}
    store.insert("monitor_windows", [
        {"run_id": run_id, "plugin": "sentiment_monitor", "topic": topic, "start": 60.0 * i, "end": 60.0 * (i + 1),
         "n": 10 if topic == "all" else 30, "share": share} for topic, values in shares.items() for i, share in enumerate(values)])
    store.insert("alerts", [{"run_id": run_id, "plugin": "sentiment_monitor", "topic": "all", "label": "negative",
                             "share": 0.65, "baseline": 0.15, "window_end": 180.0, "message": "all topics spike"}])

    async def go() -> None:
        app = AgentApp(Session(settings, "cpu", agent=agent))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            await pilot.press("f7")
            panel = app.query_one(SentimentPanel)
            await until(pilot, lambda: "all topics" in text_of(panel.query_one("#sent-alerts")))
            assert "▲ all topics 65% (baseline 15%)" in text_of(panel.query_one("#sent-alerts"))
            assert list(sentiment(store).series) == ["all", "cards", "fees"]  # first, whatever its count of items

    run(go())


def test_plugin_panels_mount_in_the_side_panel(settings: Settings, plugin_root: Path, encoder) -> None:
    (plugin_root / "shop" / "hooks.py").write_text('''
from textual.widgets import Static
from agent import hookimpl

class Orders(Static):
    def on_mount(self):
        self.update("3 orders late")

class Broken(Static):
    def __init__(self):
        raise RuntimeError("no orders database")

@hookimpl
def tui_panels():
    return [Orders, Broken]
''')

    async def go() -> None:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            await pilot.pause(0.2)
            side = app.query_one("#side")
            assert any(text_of(w) == "3 orders late" for w in side.query("Static"))
            assert "plugin shop: panel Broken failed: no orders database" in notes(app)

    run(go())


CRYPTO = ["can I buy bitcoin with my account", "do you support crypto wallets", "how do I sell my ethereum",
          "is buying cryptocurrency allowed", "transfer my bitcoin to the exchange"]


def test_finetune_in_the_app_shows_progress_and_the_next_reply_uses_the_new_model(settings: Settings,
                                                                                   plugin_root: Path, encoder) -> None:
    async def go() -> tuple[list[str], str]:
        app = app_for(settings, encoder, plugin="shop")
        async with app.run_test(size=SIZE) as pilot:
            before = (await send(pilot, app, "I want to buy some bitcoin")).reply.label
            for text in CRYPTO:
                await send(pilot, app, text)
                await command(pilot, app, "/label --new crypto")
            bar = app.query_one(FinetuneBar)
            shown = bar.show
            seen: list[str] = []

            def spy(plugin: str, p: Any) -> None:
                shown(plugin, p)
                seen.append(text_of(bar.query_one("#ft-stats")))

            bar.show = spy  # type: ignore[method-assign]
            await command(pilot, app, "/finetune shop full")
            assert bar.display
            await until(pilot, lambda: app.finetuning is None, timeout=300)
            assert not bar.display
            assert "shop v1 promoted" in notes(app)
            after = (await send(pilot, app, "I want to buy some bitcoin")).reply
            assert after.label == "crypto" and after.fallback_reason is None  # hot swap: same app, no restart
            return seen, before

    seen, before = run(go())
    assert before != "crypto"
    assert any(s.startswith("step ") and "loss" in s for s in seen)  # progress with the loss was shown
    assert Versions(models_of(settings.home, "shop")).current() == "v1"


def test_a_mistyped_mode_starts_no_fine_tune(settings: Settings, encoder) -> None:
    async def go() -> tuple[str, str | None]:
        app = app_for(settings, encoder, plugin="shop")
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot, app, "hello")
            await command(pilot, app, "/finetune shop bogus")
            await command(pilot, app, "/finetune head shared")
            return notes(app), app.finetuning

    said, running = run(go())
    assert running is None and "nothing was started (not understood: bogus)" in said
    assert "nothing was started (not understood: head and shared)" in said
    assert Versions(models_of(settings.home, "shop")).current() is None


def test_a_plugins_own_policy_fine_tunes_it_in_the_background_once_enough_labels_wait(
        settings: Settings, plugin_root: Path, encoder) -> None:
    manifest = plugin_root / "shop" / "plugin.toml"
    manifest.write_text(manifest.read_text() + '\n[finetune]\nafter_labels = 2\nmin_hours = 0\nmode = "head"\n')

    async def go() -> tuple[str, str | None]:
        app = app_for(settings, encoder, plugin="shop")
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot, app, "my wallet was taken with my card in it")
            await command(pilot, app, "/label card_lost")
            assert app.finetuning is None and "policy is due" not in notes(app)  # 1 of 2 labels
            await send(pilot, app, "do you open late on thursdays")
            await command(pilot, app, "/label opening_hours")
            await until(pilot, lambda: "shop v1 promoted" in notes(app), timeout=120)
            return notes(app), app.finetuning

    said, running = run(go())
    assert "shop's fine-tune policy is due: 2 new labelled turns (policy: 2)" in said and running is None
    assert "shop v1 promoted · cross-validated accuracy" in said  # judged by folds, with no version to compare with
    runs = Agent(settings, encoder=encoder).store.finetune_runs("shop")
    assert [(r["trigger"], r["mode"], r["status"]) for r in runs] == [("policy", "head", "promoted")]


def test_threshold_command_uses_the_suggested_min_confidence_and_goes_back(settings: Settings, plugin_root: Path,
                                                                            encoder) -> None:
    from agent.learn.finetune import Options, finetune

    finetune(plugin_root / "shop", settings, Options(mode="head", device="cpu", holdout=0.3), encoder=encoder)

    async def go() -> str:
        app = app_for(settings, encoder, plugin="shop")
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot, app, "I lost my card")
            await command(pilot, app, "/threshold accept")
            await until(pilot, lambda: "(suggested by v1)" in notes(app))
            await send(pilot, app, "I lost my card")  # the next reply reads it
            assert app.session.core().runtimes["shop"].thresholds.min_confidence != 0.30
            await command(pilot, app, "/threshold reject shop")
            await until(pilot, lambda: "min_confidence 0.3 (the manifest's)" in notes(app))
            await command(pilot, app, "/threshold maybe")
            return notes(app)

    assert "usage: /threshold accept NAME" in run(go())


def test_cancel_from_the_keyboard_keeps_the_current_model(settings: Settings, plugin_root: Path, encoder) -> None:
    async def go() -> str:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            app.start_finetune("shop", "full", epochs=200)
            await until(pilot, lambda: text_of(app.query_one("#ft-stats")).startswith("step "), timeout=120)
            await pilot.press("escape")
            await until(pilot, lambda: app.finetuning is None, timeout=60)
            return notes(app)

    said = run(go())
    assert "fine-tuning shop stopped: fine-tuning was cancelled" in said and "current model is unchanged" in said
    assert Versions(models_of(settings.home, "shop")).current() is None
    assert not list(models_of(settings.home, "shop").glob(".partial-*"))


async def echo_ms(app: AgentApp, key: str) -> float:
    """Milliseconds from a key reaching the app (as the terminal driver delivers it) to the prompt showing it.

    (The pilot's own `press` also waits for the CPU to go idle, which it never does while training.)
    """
    from textual import events

    prompt = app.query_one(HistoryInput)
    want = prompt.value + key
    start = time.perf_counter()
    app._driver.send_message(events.Key(key, key))
    while prompt.value != want:
        assert time.perf_counter() - start < 10, f"key {key!r} not echoed within 10 s"
        await asyncio.sleep(0.0005)
    return (time.perf_counter() - start) * 1000


def test_keypresses_are_echoed_quickly_during_a_finetune(settings: Settings, encoder) -> None:
    """The echo time of single keys while a full fine-tune trains on a background thread."""

    async def go() -> list[float]:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            app.start_finetune("shop", "full", epochs=500)
            await until(pilot, lambda: text_of(app.query_one("#ft-stats")).startswith("step "), timeout=120)
            delays = []
            for n in range(40):
                delays.append(await echo_ms(app, "abcdefghij"[n % 10]))
                await asyncio.sleep(0.05)
            assert app.finetuning == "shop", notes(app)  # it trained the whole time
            assert app.query_one(HistoryInput).value == "abcdefghij" * 4
            app.action_cancel_finetune()
            await until(pilot, lambda: app.finetuning is None, timeout=60)
            return delays

    delays = run(go())
    figures = {"p50_ms": round(statistics.median(delays), 1), "max_ms": round(max(delays), 1), "keys": len(delays)}
    print("keypress echo during fine-tune:", json.dumps(figures))
    assert figures["p50_ms"] < 100, figures


def test_review_screen_ranks_turns_and_takes_one_key_per_decision(settings: Settings, encoder) -> None:
    from tui.review import ReviewScreen

    agent = Agent(settings, encoder=encoder)
    unsure = [agent.reply(t, f"u{n}").turn_id for n, t in enumerate(
        ["is the tram strike on tomorrow", "is there a tram strike tomorrow?", "tram strike tomorrow, is it on"])]
    clear = agent.reply("I lost my card, please block it", "c").turn_id
    other = agent.reply("can I have my money back for this", "d").turn_id

    async def go() -> list[str]:
        app = AgentApp(Session(settings, "cpu", agent=agent))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            await pilot.press("f8")
            screen = await until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen)
            await until(pilot, lambda: len(screen.items) == 3)
            first = screen.items[0]
            assert first.turn_id in unsure and first.similar == 3
            assert "2 similar messages waiting" in text_of(screen.query_one("#review-detail"))
            await pilot.press("o")
            await until(pilot, lambda: len(screen.items) == 2)
            rest = [i.turn_id for i in screen.items]
            await pilot.press("c")
            await until(pilot, lambda: len(screen.items) == 1)
            await pilot.press("l")
            await until(pilot, lambda: isinstance(app.screen, Picker))
            await pilot.press(*"refund", "enter")
            await until(pilot, lambda: isinstance(app.screen, ReviewScreen) and not screen.items)
            assert "nothing waiting" in str(screen.query_one("#review-title").render())
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, ReviewScreen))
            return [first.turn_id, *rest]

    decided = run(go())
    feedback = {t: [(f["kind"], f["label"]) for f in agent.store.turn(t)["feedback"]] for t in decided}
    assert feedback[decided[0]] == [("out_of_scope", None)]
    assert feedback[decided[1]] == [("label", agent.store.turn(decided[1])["label"])]  # confirmed its guess
    assert feedback[decided[2]] == [("label", "refund")]
    assert {clear, other} == set(decided[1:])


def test_proposals_screen_accepts_a_group_as_a_new_label_and_merges_another(settings: Settings, encoder) -> None:
    from tui.review import ProposalsScreen, ReviewScreen

    agent = Agent(settings, encoder=encoder)
    tram = [agent.reply(t, f"t{n}").turn_id for n, t in enumerate(
        ["is the tram strike on tomorrow", "is there a tram strike tomorrow?", "tram strike tomorrow, is it on",
         "will the trams run during the strike"])]
    late = [agent.reply(t, f"l{n}").turn_id for n, t in enumerate(
        ["can I bring my dog into the shop", "are dogs allowed inside", "is my dog welcome in your store"])]

    async def go() -> None:
        app = AgentApp(Session(settings, "cpu", agent=agent))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            await command(pilot, app, "/review shop")
            review = await until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen)
            await until(pilot, lambda: review.items)
            await pilot.press("p")
            screen = await until(pilot, lambda: isinstance(app.screen, ProposalsScreen) and app.screen)
            await until(pilot, lambda: len(screen.proposals) == 2)
            first = screen.proposals[0]
            assert set(first.turn_ids) <= set(tram) and len(first.turn_ids) >= 3 and "tram" in first.name
            await pilot.press("a")
            await until(pilot, lambda: len(screen.proposals) == 1)
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, Picker))
            await pilot.press(*"refund", "enter")
            await until(pilot, lambda: isinstance(app.screen, ProposalsScreen) and not screen.proposals)
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is review)

    run(go())
    labels = {t: agent.store.turn(t)["feedback"][0]["label"] for t in tram[:3] + late}
    assert len({labels[t] for t in tram[:3]}) == 1 and "tram" in labels[tram[0]]
    assert {labels[t] for t in late} == {"refund"}
    assert (settings.home / "proposals" / "shop" / "faq_stub.csv").is_file()


def test_logs_browser_searches_opens_a_conversation_and_corrects_a_label(settings: Settings, encoder) -> None:
    agent = Agent(settings, encoder=encoder)
    agent.reply("when are you open on sunday", "other")
    first = agent.reply("I lost my card", "c-1")
    agent.reply("and I want a refund too", "c-1")

    async def go() -> None:
        app = AgentApp(Session(settings, "cpu", agent=agent))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            await pilot.press("f6")
            logs = await until(pilot, lambda: isinstance(app.screen, LogsScreen) and app.screen)
            await until(pilot, lambda: len(logs.rows) == 3)
            await pilot.press("slash", *"card", "enter")
            await until(pilot, lambda: [r["id"] for r in logs.rows] == [first.turn_id])
            await pilot.press("o")
            await until(pilot, lambda: len(logs.rows) == 2)
            assert [r["conversation_id"] for r in logs.rows] == ["c-1", "c-1"] and logs.rows[0]["id"] == first.turn_id
            await pilot.press("l")
            await until(pilot, lambda: isinstance(app.screen, Picker))
            await pilot.press(*"opening", "enter")
            await until(pilot, lambda: isinstance(app.screen, LogsScreen) and "opening_hours" in str(
                logs.query_one("DataTable").get_row_at(0)))
            await pilot.press("down", "g")
            await pilot.pause(0.5)
            await pilot.press("escape")
            await until(pilot, lambda: len(logs.rows) == 3)
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, LogsScreen))

    run(go())
    assert [(f["kind"], f["label"]) for f in agent.store.turn(first.turn_id)["feedback"]] == [("label", "opening_hours")]
    assert [f["kind"] for f in agent.store.turn(first.turn_id + 1)["feedback"]] == ["good"]


def test_the_prompt_takes_keys_before_the_models_are_loaded(settings: Settings, encoder) -> None:
    import threading

    release = threading.Event()

    class SlowSession(Session):
        def load(self) -> Agent:
            release.wait(30)  # the models take their time
            return super().load()

    async def go() -> None:
        app = AgentApp(SlowSession(settings, "cpu", agent=Agent(settings, encoder=encoder), conversation="early"))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press(*"I lost my card")
            assert app.query_one(HistoryInput).value == "I lost my card" and not app.ready.is_set()
            await pilot.press("enter")  # queued behind the load
            assert "you › I lost my card" in [text_of(w) for w in app.query("UserMessage")]
            await pilot.pause(0.3)
            assert app.last is None and app.sub_title == "loading models…"
            release.set()
            await until(pilot, lambda: app.last is not None and app.ready.is_set())
            assert app.last.label == "card_lost"

    run(go())


def test_chat_web_serves_the_same_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    served: dict[str, Any] = {}

    class Server:
        def __init__(self, command: str, host: str, port: int, title: str) -> None:
            served.update(command=command, host=host, port=port, title=title)

        def serve(self) -> None:
            served["served"] = True

    import textual_serve.server

    monkeypatch.setattr(textual_serve.server, "Server", Server)
    home = tmp_path / "my home"
    result = CliRunner().invoke(cli, ["--home", str(home), "--device", "cpu", "chat", "--web", "--port", "8123",
                                      "--plugin", "shop"])
    assert result.exit_code == 0, result.output
    assert served["served"] and served["port"] == 8123 and served["host"] == "localhost"
    assert served["command"].endswith(f"-m agent --device cpu --home '{home}' chat --plugin shop")


def test_a_feed_run_from_the_app_updates_the_sentiment_panel(tmp_path: Path, plugin_root: Path, encoder) -> None:
    import csv
    import shutil

    from conftest import REPO

    shutil.copytree(REPO / "plugins" / "sentiment_monitor", plugin_root / "sentiment_monitor",
                    ignore=shutil.ignore_patterns("model", "__pycache__"))
    settings = Settings(home=tmp_path / "home", plugin_paths=[plugin_root])
    rows = list(csv.DictReader(open(plugin_root / "sentiment_monitor" / "sentences.csv", encoding="utf-8")))
    calm = [r["text"] for r in rows if r["label"] != "negative"]
    angry = [r["text"] for r in rows if r["label"] == "negative" and r["topic"] == "cards"]
    feed = tmp_path / "feed.jsonl"
    with open(feed, "w", encoding="utf-8") as fh:
        for i in range(600):
            text = angry[i % len(angry)] if 400 <= i < 520 else calm[(i * 7) % len(calm)]
            fh.write(json.dumps({"text": text, "timestamp": 1_700_000_000 + i * 60, "topic": "cards" if i % 2 else "fees"}) + "\n")
        fh.write("{broken\n")

    async def go() -> str:
        app = app_for(settings, encoder)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, app.ready.is_set)
            await command(pilot, app, f"/monitor {tmp_path / 'nofeed.jsonl'}")
            assert "no file" in notes(app)
            await command(pilot, app, f"/monitor {feed}")
            assert app.query_one("#side").display
            await until(pilot, lambda: "feed feed.jsonl: 600 items, 1 bad lines" in notes(app), timeout=120)
            panel = app.query_one(SentimentPanel)
            await until(pilot, lambda: "done" in text_of(panel.query_one("#sent-title")), timeout=10)
            return text_of(panel.query_one("#sent-alerts"))

    alerts = run(go())
    assert "▲ cards" in alerts


def test_chat_opens_the_app_under_the_web_driver_and_line_mode_when_piped(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    started: list[AgentApp] = []
    monkeypatch.setattr(AgentApp, "run", lambda self: started.append(self))
    args = ["--home", str(tmp_path / "home"), "--device", "cpu", "chat", "--plugin", "shop", "-c", "conv-1"]
    result = CliRunner().invoke(cli, args, env={"TEXTUAL_DRIVER": "textual.drivers.web_driver:WebDriver"})
    assert result.exit_code == 0, result.output
    [app] = started
    assert app.session.plugin == "shop" and app.session.conversation == "conv-1" and app.session.device == "cpu"
    piped = CliRunner().invoke(cli, args[:-4] + ["--plain"], input="/quit\n", env={"TEXTUAL_DRIVER": ""})
    assert piped.exit_code == 0 and len(started) == 1


def test_the_inbox_lists_who_waits_and_the_operator_takes_replies_labels_and_releases(tmp_path: Path, encoder) -> None:
    from agent.scenarios.handoff import inbox
    from agent.scenarios.handoff.tui import ConversationScreen, InboxScreen

    folder = make_plugin(tmp_path / "plugins")
    (folder / "plugin.toml").write_text((folder / "plugin.toml").read_text() + '\n[handoff]\nlabels = ["refund"]\n')
    settings = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    agent = Agent(settings, encoder=encoder)
    asked = agent.reply("refund my order please", "customer-1")

    async def go() -> None:
        app = AgentApp(Session(settings, "cpu", agent=agent))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, app.ready.is_set)
            await command(pilot, app, "/inbox")
            box = await until(pilot, lambda: isinstance(app.screen, InboxScreen) and app.screen)
            assert [r["conversation_id"] for r in box.rows] == ["customer-1"] and "refund" in box.rows[0]["reason"]
            await pilot.press("enter")
            screen = await until(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen)
            assert "refund my order please" in text_of(screen.query_one("#handoff-transcript"))
            await pilot.press("ctrl+t")
            await until(pilot, lambda: inbox.state(agent.store, "customer-1")["state"] == "taken")
            await pilot.press(*"Refunded, sorry for the wait.", "enter")
            await until(pilot, lambda: "Refunded, sorry" in text_of(screen.query_one("#handoff-transcript")))
            await pilot.press("ctrl+l")
            await until(pilot, lambda: isinstance(app.screen, Picker))
            await pilot.press(*"refund", "enter")
            await until(pilot, lambda: agent.store.turn(asked.turn_id)["feedback"])
            await pilot.press("ctrl+l")
            await until(pilot, lambda: isinstance(app.screen, Picker))
            await pilot.press(*"partial_refund", "enter")  # no label matches: a new one
            await until(pilot, lambda: len(agent.store.turn(asked.turn_id)["feedback"]) == 2)
            await pilot.press("ctrl+r")
            await until(pilot, lambda: inbox.state(agent.store, "customer-1")["state"] == "released")
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, InboxScreen) and not app.screen.rows)

    run(go())
    assert [(f["kind"], f["label"]) for f in agent.store.turn(asked.turn_id)["feedback"]] == [("label", "refund"),
                                                                                              ("label", "partial_refund")]
    assert "9 to 5" in agent.reply("what are your opening hours?", "customer-1").text
