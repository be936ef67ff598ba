"""The web chat page in a real headless Chromium (Playwright driving Debian's `chromium`) against a real uvicorn
server on a loopback port: ask, sources, a choice button, thumbs down, a recommended item, injected markup shown
as text, and the keyboard alone; screenshots at desktop and phone sizes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent.models.encoder import Encoder
from agent.reply.agent import Agent
from agent.serve.app import ServeOptions, create_app
from agent.settings import Settings
from conftest import CHROMIUM, REPO, live_server

INJECTED = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")]


@pytest.fixture
def server(tmp_path: Path, encoder: Encoder) -> Iterator[tuple[str, Settings]]:
    """The bundled plugins served with --public-chat by uvicorn in a thread, on a free loopback port."""
    settings = Settings(home=tmp_path / "home", plugin_paths=[REPO / "plugins"])
    app = create_app(settings, ServeOptions(public_chat=True, rate="1000/second"), Agent(settings, encoder=encoder))
    with live_server(app) as url:
        yield url, settings


def ask(page: Any, text: str) -> Any:
    """Type a message, send it with Enter, and wait for the agent's answer to it."""
    before = page.locator("li.msg.agent").count()
    page.fill("#text", text)
    page.press("#text", "Enter")
    page.locator("li.msg.agent").nth(before).wait_for(timeout=30_000)  # locators, not wait_for_function: the CSP forbids eval
    return page.locator("li.msg.agent").last


def test_a_customer_chats_picks_rates_and_sees_items(server: tuple[str, Settings], browser: Any, tmp_path: Path) -> None:
    url, settings = server
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(url)
    assert "script-src 'self'" in response.headers["content-security-policy"]

    answer = ask(page, "I lost my card, can you block it?")
    assert "Freeze" in answer.locator("p").first.text_content()
    assert not answer.locator(".sources").is_visible()
    page.check("#details")
    assert answer.locator(".sources li").count() >= 1 and "customer_service" in answer.locator("p.details").text_content()

    offer = ask(page, "my card got eaten by the atm and the app says I was charged twice")
    assert offer.locator(".choices button").count() == 2
    offer.locator(".choices button").nth(1).click()
    page.locator("li.msg.agent").nth(2).wait_for(timeout=30_000)
    page.locator("li.msg.agent").last.get_by_label("This answer did not help").click()
    page.wait_for_selector("li.msg.agent >> nth=-1 >> button[aria-pressed=true]", timeout=10_000)

    items = ask(page, "can you recommend a credit card for travel?")
    assert items.locator(".item").count() >= 1 and "Northwind" in items.locator(".item").first.text_content()
    items.locator(".item button").first.click()
    items.locator(".item button[aria-pressed=true]").wait_for(timeout=10_000)
    page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)

    ask(page, INJECTED)
    mine = page.locator("li.msg.me").last
    assert mine.text_content() == INJECTED and mine.locator("img, script").count() == 0
    assert page.title() == "Chat" and not errors

    db = sqlite3.connect(settings.db_path)
    picked = db.execute("SELECT picked_from FROM turns WHERE text = '2'").fetchone()[0]
    kinds = [r[0] for r in db.execute("SELECT kind FROM feedback ORDER BY id")]
    liked = db.execute("SELECT kind, item_id FROM item_feedback").fetchall()
    db.close()
    assert picked is not None and "bad" in kinds and liked == [("like", "travel-card")]


def test_the_page_works_from_the_keyboard_on_a_phone_sized_screen(server: tuple[str, Settings], browser: Any,
                                                                tmp_path: Path) -> None:
    url, _ = server
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(url)
    page.keyboard.type("my card got eaten by the atm and the app says I was charged twice")
    page.keyboard.press("Enter")
    page.wait_for_selector("li.msg.agent .choices button", timeout=30_000)
    focused = page.evaluate("document.activeElement.id")
    assert focused == "text"  # the input keeps the focus after sending
    for _ in range(12):  # Tab reaches the choice buttons
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('.choices') !== null"):
            break
    assert page.evaluate("document.activeElement.closest('.choices') !== null")
    page.keyboard.press("Enter")
    page.locator("li.msg.agent").nth(1).wait_for(timeout=30_000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing runs off a phone's screen
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
