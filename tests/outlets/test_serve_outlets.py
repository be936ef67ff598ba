"""`agent serve` runs a deliverer for its lifetime: what is published while it serves reaches the outlets."""

from __future__ import annotations

from fastapi.testclient import TestClient
from receiver import Receiver

from agent.models.encoder import Encoder
from agent.outlets import publish
from agent.reply.agent import Agent
from agent.serve.app import create_app
from agent.settings import Settings
from agent.store import Store


def test_the_service_delivers_while_it_runs_and_stops_its_deliverer(settings: Settings, encoder: Encoder) -> None:
    from agent.outlets.targets import add

    app = create_app(settings, agent=Agent(settings, encoder=encoder))
    with Receiver() as r:
        with TestClient(app):
            store = Store(settings.db_path)
            add(store, "webhook", r.url())
            publish(store, "handoff", {"conversation_id": "c1", "reason": "asked for a person"}, plugin="shop")
            assert app.state.deliverer.drain(5)
        assert not app.state.deliverer.running
    assert [q.headers["X-Agent-Event"] for q in r.requests] == ["handoff"]
    assert r.requests[0].json()["data"] == {"conversation_id": "c1", "reason": "asked for a person"}
