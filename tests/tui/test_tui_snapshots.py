"""Snapshots of the chat app's main screens at 80x24 (update with `pytest --snapshot-update` after a
deliberate change, and look at the report before committing)."""

from __future__ import annotations

from typing import Any

from test_tui import RECOMMENDS, SIZE, app_for, send, until

from agent.learn.trainer import Progress
from agent.reply.agent import Agent
from agent.settings import Settings
from tui.app import AgentApp
from tui.screens import LogsScreen, Picker
from tui.session import Session
from tui.widgets import FinetuneBar, HistoryInput


async def steady(pilot: Any, app: AgentApp) -> None:
    """No blinking cursor, nothing pending: the same picture every run."""
    for prompt in app.query("Input"):
        prompt.cursor_blink = False
    await pilot.pause(0.3)


def test_chat_screen_with_a_reply_and_its_sources(snap_compare: Any, settings: Settings, encoder) -> None:
    app = app_for(settings, encoder)

    async def before(pilot: Any) -> None:
        await send(pilot, app, "when are you open")
        message = await send(pilot, app, "I lost my card")
        await pilot.click(message.query_one("CollapsibleTitle"))
        await steady(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_chat_screen_with_recommended_items_and_a_finetune_running(snap_compare: Any, settings: Settings,
                                                                    plugin_root: Any, encoder) -> None:
    (plugin_root / "shop" / "hooks.py").write_text(RECOMMENDS)
    app = app_for(settings, encoder)

    async def before(pilot: Any) -> None:
        await send(pilot, app, "recommend me a card")
        bar = app.query_one(FinetuneBar)
        bar.start("shop")
        bar.show("shop", Progress("train", 12, 40, 0.8123, "cpu", "full", 6.0))
        app.query_one(HistoryInput).value = "typing while it trains"
        await steady(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_label_picker(snap_compare: Any, settings: Settings, encoder) -> None:
    app = app_for(settings, encoder)

    async def before(pilot: Any) -> None:
        await send(pilot, app, "my parcel is broken")
        await pilot.press("f4")
        await until(pilot, lambda: isinstance(app.screen, Picker))
        await pilot.press("r", "e")
        await steady(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_logs_screen(snap_compare: Any, settings: Settings, encoder) -> None:
    agent = Agent(settings, encoder=encoder)
    for text in ("when are you open on sunday", "I lost my card", "and I want a refund too"):
        agent.reply(text, "c-1")
    agent.store.db.execute("UPDATE turns SET created_at = '2026-01-02T09:30:00.000+00:00'")
    app = AgentApp(Session(settings, "cpu", agent=agent, conversation="c-2"))

    async def before(pilot: Any) -> None:
        await until(pilot, app.ready.is_set)
        await pilot.press("f6")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen) and len(app.screen.rows) == 3)
        await steady(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_sentiment_panel(snap_compare: Any, settings: Settings, encoder) -> None:
    agent = Agent(settings, encoder=encoder)
    [run_id] = agent.store.insert("monitor_runs", [{"plugin": "sentiment_monitor", "label": "negative", "status": "running"}],
                                  ids=True)
    shares = {"cards": [0.1, 0.12, 0.1, 0.11, 0.6, 0.7], "fees": [0.3, 0.28, 0.31, 0.3, 0.29, 0.3]}
    agent.store.insert("monitor_windows", [
        {"run_id": run_id, "topic": topic, "start": 300.0 * i, "end": 300.0 * (i + 1), "n": 20, "share": share}
        for topic, values in shares.items() for i, share in enumerate(values)])
    agent.store.insert("alerts", [{"run_id": run_id, "topic": "cards", "share": 0.7, "baseline": 0.11, "window_end": 1800.0}])
    app = AgentApp(Session(settings, "cpu", agent=agent, conversation="c-3"))

    async def before(pilot: Any) -> None:
        await until(pilot, app.ready.is_set)
        await pilot.press("f7")
        await until(pilot, lambda: "cards" in str(app.query_one("#sent-alerts").render()))
        await steady(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)
