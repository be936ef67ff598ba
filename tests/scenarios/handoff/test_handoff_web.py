"""A handoff end to end in a real headless Chromium against a real server on a loopback port: the customer asks for a
person, an operator takes the conversation and replies through the API, the page shows the reply marked as a
person's; after the release the agent answers again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from agent.models.encoder import Encoder
from agent.reply.agent import Agent
from agent.serve.app import ServeOptions, create_app
from agent.serve.keys import create_key
from agent.settings import Settings
from agent.store import Store
from conftest import REPO, live_server


@pytest.fixture
def served(tmp_path: Path, encoder: Encoder) -> Iterator[tuple[str, dict[str, str]]]:
    """The bundled plugins served with --public-chat; an operator's key."""
    settings = Settings(home=tmp_path / "home", plugin_paths=[REPO / "plugins"])
    store = Store(settings.db_path)
    key = create_key(store, "ana", ["operator"])
    store.close()
    app = create_app(settings, ServeOptions(public_chat=True, rate="1000/second"), Agent(settings, encoder=encoder))
    with live_server(app) as url:
        yield url, {"Authorization": f"Bearer {key}"}


def test_a_customer_gets_a_persons_reply_live(served: tuple[str, dict[str, str]], browser: Any, tmp_path: Path) -> None:
    url, operator = served
    page = browser.new_page(viewport={"width": 900, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.fill("#text", "I want to speak to a real person please")
    page.press("#text", "Enter")
    page.locator("li.msg.agent", has_text="member of our team").wait_for(timeout=30_000)
    page.locator("li.msg.system", has_text="Waiting for a person").wait_for(timeout=10_000)

    api = httpx.Client(base_url=url, headers=operator, timeout=10)
    waiting = api.get("/v1/handoffs").json()["handoffs"]
    assert len(waiting) == 1 and waiting[0]["reason"] == "asked for a person (speak_to_human)"
    conversation = waiting[0]["conversation_id"]
    assert api.post(f"/v1/handoffs/{conversation}/take").status_code == 200
    assert api.post(f"/v1/handoffs/{conversation}/reply", json={"text": "Hi, I'm Ana from the team. How can I help?"}).status_code == 200
    person = page.locator("li.msg.person")
    person.wait_for(timeout=5_000)
    assert person.locator(".author").text_content() == "A person" and "I'm Ana from the team" in person.text_content()
    page.screenshot(path=str(tmp_path / "customer.png"))

    page.fill("#text", "my card is lost")
    page.press("#text", "Enter")
    page.locator("li.msg.me").nth(1).wait_for()
    for _ in range(100):  # the message reached the server, and was held (no agent bubble comes for it)
        if len(api.get(f"/v1/handoffs/{conversation}").json()["turns"]) == 2:
            break
        time.sleep(0.1)
    assert api.post(f"/v1/handoffs/{conversation}/release").status_code == 200
    page.locator("li.msg.system", has_text="back with the assistant").wait_for(timeout=5_000)
    page.fill("#text", "How do I block a lost card?")
    page.press("#text", "Enter")
    page.locator("li.msg.agent").nth(1).wait_for(timeout=30_000)
    assert page.locator("li.msg.agent").count() == 2  # the message sent while a person had it got no agent answer
    assert errors == []
