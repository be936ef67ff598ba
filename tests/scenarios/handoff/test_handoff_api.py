"""The handoff over HTTP: /v1/handoffs with the operator scope, the events a customer's page follows (JSON, a long
poll, server-sent events), and Rasa's REST channel returning a person's replies on the next message."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from agent.models.encoder import Encoder
from agent.reply.agent import Agent
from agent.serve.app import ServeOptions, create_app
from agent.serve.keys import create_key
from agent.settings import Settings
from agent.store import Store
from conftest import make_plugin

HANDOFF = '\n[handoff]\nlabels = ["refund"]\n'


@pytest.fixture
def served(tmp_path: Path, encoder: Encoder) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """The shop plugin (a refund asks for a person) served, with a chat key and an operator key."""
    folder = make_plugin(tmp_path / "plugins")
    (folder / "plugin.toml").write_text((folder / "plugin.toml").read_text() + HANDOFF)
    settings = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    store = Store(settings.db_path)
    keys = {scope: {"Authorization": f"Bearer {create_key(store, f'k-{scope}', [scope])}"} for scope in ("chat", "operator")}
    store.close()
    app = create_app(settings, ServeOptions(rate="1000/second"), Agent(settings, encoder=encoder))
    with TestClient(app) as client:
        assert app.state.worker.ready.wait(120)
        yield client, keys


def say(client: TestClient, keys: dict[str, Any], conversation: str, text: str) -> dict[str, Any]:
    """Post a customer's message; the reply."""
    r = client.post(f"/v1/conversations/{conversation}/messages", json={"text": text}, headers=keys["chat"])
    assert r.status_code == 200, r.text
    return r.json()


def test_an_operator_answers_through_the_api(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, keys = served
    assert say(client, keys, "web-1", "refund my order please")["text"]
    assert client.get("/v1/handoffs", headers=keys["chat"]).status_code == 403  # the chat scope reads no inbox
    waiting = client.get("/v1/handoffs", headers=keys["operator"]).json()["handoffs"]
    assert [(h["conversation_id"], h["state"]) for h in waiting] == [("web-1", "waiting")]

    early = client.post("/v1/handoffs/web-1/reply", json={"text": "hi"}, headers=keys["operator"])
    assert early.status_code == 409 and "take it first" in early.json()["error"]
    assert client.post("/v1/handoffs/web-1/take", headers=keys["operator"]).json()["operator"] == "k-operator"
    sent = client.post("/v1/handoffs/web-1/reply", json={"text": "Your refund is on its way."}, headers=keys["operator"]).json()

    events = client.get("/v1/conversations/web-1/events", params={"after": 0}, headers=keys["chat"]).json()
    assert [e["kind"] for e in events["events"]] == ["waiting", "taken", "reply"] and events["last"] == sent["id"]
    later = client.get("/v1/conversations/web-1/events", params={"after": events["last"]}, headers=keys["chat"]).json()
    assert later == {"events": [], "last": events["last"]}

    shown = client.get("/v1/handoffs/web-1", headers=keys["operator"]).json()
    turn = shown["turns"][0]
    assert turn["predictions"][0]["label"] == "refund" and shown["replies"][0]["text"] == "Your refund is on its way."
    labelled = client.post("/v1/handoffs/web-1/label", json={"turn_id": turn["id"], "label": "nonsense"}, headers=keys["operator"])
    assert labelled.status_code == 400 and "is not a label of plugin shop" in labelled.json()["error"]
    assert client.post("/v1/handoffs/web-1/label", json={"turn_id": turn["id"], "label": "refund"},
                       headers=keys["operator"]).status_code == 200

    assert client.post("/v1/handoffs/web-1/release", headers=keys["operator"]).json()["state"] == "released"
    twice = client.post("/v1/handoffs/web-1/release", headers=keys["operator"])
    assert twice.status_code == 409 and "already back with the agent" in twice.json()["error"]
    unknown = client.post("/v1/handoffs/nobody/reply", json={"text": "hi"}, headers=keys["operator"])
    assert unknown.status_code == 404 and "not in this home" in unknown.json()["error"]
    assert "9 to 5" in say(client, keys, "web-1", "what are your opening hours?")["text"]


def test_the_rest_channel_returns_a_persons_replies_on_the_next_message(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, keys = served
    rasa = lambda text: client.post("/webhooks/rest/webhook", json={"sender": "r-1", "message": text}, headers=keys["chat"]).json()
    assert [m["text"] for m in rasa("refund my order please")] == ["A person will reply here shortly."]
    assert rasa("hello?") == []  # the agent adds nothing while a person has it
    client.post("/v1/handoffs/r-1/take", headers=keys["operator"])
    client.post("/v1/handoffs/r-1/reply", json={"text": "Done: refunded."}, headers=keys["operator"])
    assert rasa("thanks") == [{"recipient_id": "r-1", "text": "Done: refunded.", "custom": {"author": "person"}}]


def test_a_long_poll_returns_as_soon_as_the_person_replies(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, keys = served
    say(client, keys, "web-2", "refund my order please")
    client.post("/v1/handoffs/web-2/take", headers=keys["operator"])
    last = client.get("/v1/conversations/web-2/events", headers=keys["chat"]).json()["last"]
    threading.Timer(0.5, lambda: client.post("/v1/handoffs/web-2/reply", json={"text": "here"}, headers=keys["operator"])).start()
    start = time.monotonic()
    found = client.get("/v1/conversations/web-2/events", params={"after": last, "wait": 10}, headers=keys["chat"]).json()
    assert [e["text"] for e in found["events"]] == ["here"] and time.monotonic() - start < 5


def test_server_sent_events_resume_from_the_last_event_id(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, keys = served
    say(client, keys, "web-3", "refund my order please")
    client.post("/v1/handoffs/web-3/take", headers=keys["operator"])
    client.post("/v1/handoffs/web-3/reply", json={"text": "one"}, headers=keys["operator"])
    first = client.get("/v1/conversations/web-3/events", headers=keys["chat"]).json()["events"]
    headers = {**keys["chat"], "Accept": "text/event-stream", "Last-Event-ID": str(first[0]["id"])}
    with client.stream("GET", "/v1/conversations/web-3/events", headers=headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        data = []
        for line in stream.iter_lines():
            if line.startswith("data: "):
                data.append(json.loads(line[6:]))
            if len(data) == 2:
                break
    assert [(e["kind"], e["text"], e["author"]) for e in data] == [("taken", "a person is answering", "person"),
                                                                    ("reply", "one", "person")]  # no operator's name
    for resume in (b"\xb2", b"99999999999999999999"):  # a superscript digit; more than SQLite's integers hold
        bad = client.get("/v1/conversations/web-3/events", headers={**keys["chat"], "Last-Event-ID": resume})
        assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["error"]


def test_without_a_key_the_events_need_the_conversations_token(tmp_path: Path, encoder: Encoder) -> None:
    folder = make_plugin(tmp_path / "plugins")
    (folder / "plugin.toml").write_text((folder / "plugin.toml").read_text() + HANDOFF)
    settings = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    app = create_app(settings, ServeOptions(public_chat=True, rate="1000/second"), Agent(settings, encoder=encoder))
    with TestClient(app) as client:
        assert app.state.worker.ready.wait(120)
        answered = client.post("/v1/conversations/web-9/messages", json={"text": "refund my order please"})
        token = answered.headers["X-Conversation-Token"]
        other = client.post("/v1/conversations/web-10/messages", json={"text": "hello"}).headers["X-Conversation-Token"]
        assert len(token) == 32 and token != other
        for given in ({}, {"token": other}, {"token": "é" * 32}):
            refused = client.get("/v1/conversations/web-9/events", params=given)
            assert refused.status_code == 403 and "X-Conversation-Token" in refused.json()["error"]
        shown = client.get("/v1/conversations/web-9/events", params={"token": token}).json()
        assert [e["kind"] for e in shown["events"]] == ["waiting"]
        assert client.get("/v1/conversations/web-9/events", headers={"X-Conversation-Token": token}).status_code == 200


def test_an_operator_acts_on_a_conversation_whose_id_held_a_number_by_its_stored_id(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, keys = served
    say(client, keys, "+447700900123", "refund my order please")  # a phone number as the id: stored as a keyed hash
    [waiting] = client.get("/v1/handoffs", headers=keys["operator"]).json()["handoffs"]
    stored = waiting["conversation_id"]
    assert stored.startswith("anon-") and "7700" not in stored
    assert client.post(f"/v1/handoffs/{stored}/take", headers=keys["operator"]).status_code == 200
    assert client.post(f"/v1/handoffs/{stored}/reply", json={"text": "Done."}, headers=keys["operator"]).status_code == 200
    assert say(client, keys, "+447700900123", "thanks")["extras"]["handoff"]["messages"][0]["text"] == "Done."


def test_a_stored_id_is_never_hashed_again(tmp_path: Path) -> None:
    from agent.serve.ids import stored_id

    looks_like_an_iban = "anon-ad71811dbc3fd50e77ccd8c0"  # one in a few hundred stored ids holds such a run
    assert stored_id(tmp_path, looks_like_an_iban) == looks_like_an_iban
    assert stored_id(tmp_path, "+447700900123").startswith("anon-")
