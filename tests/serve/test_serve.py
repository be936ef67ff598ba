"""`agent serve`: the /v1 API and Rasa's REST channel through FastAPI's TestClient on a temporary home, keys and
scopes, limits, JSON errors, the micro-batching thread; and one real server process on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from agent.cli.main import cli
from agent.models.encoder import Encoder
from agent.reply.agent import Agent, Message
from agent.serve.app import ServeOptions, create_app
from agent.serve.keys import create_key, revoke_key
from agent.serve.security import check_binding, is_loopback
from agent.serve.worker import Worker
from agent.settings import Settings
from agent.store import Store
from conftest import REPO, make_plugin

SCOPES = ("chat", "feedback", "monitor", "review", "operator", "admin")


def keys_for(settings: Settings) -> dict[str, str]:
    """One key of each scope, by scope."""
    store = Store(settings.db_path)
    made = {scope: create_key(store, f"k-{scope}", [scope]) for scope in SCOPES}
    store.close()
    return made


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for a key."""
    return {"Authorization": f"Bearer {key}"}


def running(settings: Settings, encoder: Encoder, **options: Any) -> TestClient:
    """A TestClient whose app has loaded its models (the lifespan runs on entry)."""
    app = create_app(settings, ServeOptions(**options), Agent(settings, encoder=encoder))
    client = TestClient(app).__enter__()
    assert app.state.worker.ready.wait(120)
    return client


@pytest.fixture
def shop(tmp_path: Path, encoder: Encoder) -> Iterator[tuple[TestClient, dict[str, str], Settings]]:
    """The tiny shop plugin served, with a key of each scope."""
    make_plugin(tmp_path / "plugins")
    settings = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    keys = keys_for(settings)
    client = running(settings, encoder, rate="1000/second")
    yield client, keys, settings
    client.__exit__(None, None, None)


def turns(settings: Settings) -> int:
    """How many turns the home has stored."""
    db = sqlite3.connect(settings.db_path)
    try:
        return db.execute("SELECT count(*) FROM turns").fetchone()[0]
    finally:
        db.close()


def test_a_message_gets_the_same_reply_as_agent_ask(shop: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, keys, settings = shop
    r = client.post("/v1/conversations/c-1/messages", json={"text": "I lost my card 4539 1488 0343 6467"}, headers=bearer(keys["chat"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["plugin"] == "shop" and body["label"] == "card_lost" and body["conversation_id"] == "c-1"
    from agent.reply.agent import Reply

    assert set(body) == set(Reply.__dataclass_fields__)
    stored = client.get("/v1/conversations/c-1", headers=bearer(keys["review"])).json()["turns"]
    assert [t["text"] for t in stored] == ["I lost my card <CARD>"] and stored[0]["id"] == body["turn_id"]


def test_metrics_count_requests_by_route_and_status(shop: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, keys, _ = shop
    for text in ("I lost my card", "refund please"):
        assert client.post("/v1/conversations/c-2/messages", json={"text": text}, headers=bearer(keys["chat"])).status_code == 200
    assert client.post("/v1/conversations/c-2/messages", json={}, headers=bearer(keys["chat"])).status_code == 422
    text = client.get("/metrics", headers=bearer(keys["admin"])).text
    route = 'route="/v1/conversations/{conversation_id}/messages"'
    assert f'agent_requests_total{{method="POST",{route},status="200"}} 2.0' in text
    assert f'agent_requests_total{{method="POST",{route},status="422"}} 1.0' in text
    assert f'agent_request_seconds_count{{{route}}} 3.0' in text and "agent_batch_size_count" in text


@pytest.mark.parametrize("route, method, body, scope", [
    ("/v1/conversations/c1/messages", "post", {"text": "hello"}, "chat"),
    ("/webhooks/rest/webhook", "post", {"sender": "c1", "message": "hello"}, "chat"),
    ("/v1/plugins", "get", None, "chat"),
    ("/v1/turns/1/feedback", "post", {"rating": "good"}, "feedback"),
    ("/v1/conversations/c1", "get", None, "review"),
    ("/metrics", "get", None, "admin"),
])
def test_every_route_needs_a_live_key_with_its_scope(shop: tuple[TestClient, dict[str, str], Settings], route: str, method: str,
                                                     body: dict[str, Any] | None, scope: str) -> None:
    client, keys, settings = shop
    client.post("/v1/conversations/c1/messages", json={"text": "hello"}, headers=bearer(keys["chat"]))  # turn 1 exists

    def call(headers: dict[str, str]) -> httpx.Response:
        return client.request(method.upper(), route, json=body, headers=headers)

    before = turns(settings)
    missing, wrong, malformed = call({}), call(bearer("agk_not-a-key")), call({"Authorization": "Basic x"})
    assert (missing.status_code, wrong.status_code, malformed.status_code) == (401, 401, 401)
    assert "agent keys create" in missing.json()["error"] and missing.headers["www-authenticate"] == "Bearer"
    for other in SCOPES:
        status = call(bearer(keys[other])).status_code
        assert (status != 403) == (other in (scope, "admin")), (other, status)
    assert turns(settings) == before + (2 if scope == "chat" and route != "/v1/plugins" else 0)  # refused calls store nothing
    store = Store(settings.db_path)
    revoke_key(store, f"k-{scope}")
    store.close()
    assert call(bearer(keys[scope])).status_code == 401


def test_errors_are_json_that_name_the_field(shop: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, keys, settings = shop
    h = bearer(keys["admin"])
    r = client.post("/v1/conversations/c1/messages", json={"txt": "hi"}, headers=h)
    assert r.status_code == 422 and {f["field"] for f in r.json()["fields"]} == {"body.text", "body.txt"}
    r = client.post("/v1/conversations/bad%20id%3Cx%3E/messages", json={"text": "hi"}, headers=h)
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "path.conversation_id"
    r = client.post("/v1/conversations/c1/messages", content=b'{"text": "\xff\xfe"}', headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON object in UTF-8" in r.json()["error"]
    r = client.post("/v1/conversations/c1/messages", content=b"not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON object in UTF-8" in r.json()["error"] and r.json()["fields"][0]["field"] == "body"
    r = client.post("/v1/conversations/c1/messages", content=b"text=hi", headers={**h, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"]
    r = client.get("/v1/nowhere", headers=h)
    assert r.status_code == 404 and r.json()["error"] == "Not Found"
    r = client.post("/v1/conversations/c1/messages", json={"text": "x" * 70_000}, headers=h)
    assert r.status_code == 413 and "--max-body" in r.json()["error"]
    r = client.post("/v1/conversations/c1/messages", json={"text": "x" * 6_000}, headers=h)
    assert r.status_code == 400 and "AGENT_MAX_CHARS" in r.json()["error"]
    r = client.post("/v1/turns/999/feedback", json={"rating": "bad"}, headers=h)
    assert r.status_code == 400 and "no turn 999" in r.json()["error"]
    r = client.post("/v1/turns/1/feedback", json={"rating": "bad", "label": "refund"}, headers=h)
    assert r.status_code == 422 and "exactly one" in r.json()["error"]
    assert turns(settings) == 0


def test_feedback_labels_rates_and_refuses_unknown_labels(shop: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, keys, settings = shop
    turn = client.post("/v1/conversations/c1/messages", json={"text": "when are you open"}, headers=bearer(keys["chat"])).json()["turn_id"]
    h = bearer(keys["feedback"])
    assert client.post(f"/v1/turns/{turn}/feedback", json={"label": "refund", "note": "call 07700 900123"}, headers=h).status_code == 200
    assert client.post(f"/v1/turns/{turn}/feedback", json={"rating": "good"}, headers=h).status_code == 200
    r = client.post(f"/v1/turns/{turn}/feedback", json={"label": "nonsense"}, headers=h)
    assert r.status_code == 400 and "not a label" in r.json()["error"]
    r = client.post(f"/v1/turns/{turn}/feedback", json={"event": {"kind": "hug", "item": "x"}}, headers=h)
    assert r.status_code == 422 and "hug" in r.json()["error"]
    stored = client.get("/v1/conversations/c1", headers=bearer(keys["review"])).json()["turns"][0]["feedback"]
    assert [(f["kind"], f["label"], f["note"]) for f in stored] == [("label", "refund", "call <PHONE>"), ("good", None, None)]


def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path, encoder: Encoder) -> None:
    make_plugin(tmp_path / "plugins")
    settings = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    keys = keys_for(settings)
    client = running(settings, encoder, rate="3/minute")
    try:
        codes = [client.get("/v1/plugins", headers=bearer(keys["chat"])).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        last = client.get("/v1/plugins", headers=bearer(keys["chat"]))
        assert int(last.headers["retry-after"]) >= 1 and "3 per 1 minute" in last.json()["error"]
        assert client.get("/v1/plugins", headers=bearer(keys["admin"])).status_code == 200  # each key has its own budget
    finally:
        client.__exit__(None, None, None)


def test_public_chat_opens_the_chat_routes_only(tmp_path: Path, encoder: Encoder) -> None:
    make_plugin(tmp_path / "plugins")
    settings = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    client = running(settings, encoder, public_chat=True)
    try:
        assert client.post("/v1/conversations/c1/messages", json={"text": "refund please"}).status_code == 200
        assert client.post("/webhooks/rest/webhook", json={"sender": "c1", "message": "hello"}).status_code == 200
        for method, route in (("GET", "/v1/conversations/c1"), ("GET", "/metrics")):
            assert client.request(method, route).status_code == 401, route
        feedback = [client.post("/v1/turns/1/feedback", json=body).status_code for body in (
            {"rating": "good"}, {"label": "refund", "conversation_id": "c1"}, {"rating": "good", "conversation_id": "c2"},
            {"rating": "good", "conversation_id": "c1"})]
        assert feedback == [403, 403, 404, 200]
    finally:
        client.__exit__(None, None, None)


def test_readyz_says_503_until_every_model_is_loaded(tmp_path: Path, encoder: Encoder) -> None:
    make_plugin(tmp_path / "plugins")
    settings = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    gate = threading.Event()

    class Slow(Agent):
        @property
        def runtimes(self) -> dict[str, Any]:
            gate.wait(60)
            return super().runtimes

    with TestClient(create_app(settings, ServeOptions(public_chat=True), Slow(settings, encoder=encoder))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 503
        r = client.post("/v1/conversations/c1/messages", json={"text": "hi"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        gate.set()
        client.app.state.worker.ready.wait(60)
        assert client.get("/readyz").json() == {"status": "ready", "plugins": ["shop"]}


def test_rasa_rest_channel_offers_buttons_and_a_payload_picks(tmp_path: Path, encoder: Encoder) -> None:
    settings = Settings(home=tmp_path / "home", plugin_paths=[REPO / "plugins" / "customer_service"])
    keys = keys_for(settings)
    client = running(settings, encoder)
    try:
        h = bearer(keys["chat"])
        said = client.post("/webhooks/rest/webhook", headers=h, json={
            "sender": "rasa-user", "message": "my card got eaten by the atm and the app says I was charged twice", "metadata": {}}).json()
        assert len(said) == 1 and said[0]["recipient_id"] == "rasa-user"
        assert [b["payload"] for b in said[0]["buttons"]] == ["1", "2"]
        second = said[0]["buttons"][1]["title"]
        picked = client.post("/webhooks/rest/webhook", headers=h, json={"sender": "rasa-user", "message": "2"}).json()
        assert "buttons" not in picked[0] and picked[0]["text"]
        log = client.get("/v1/conversations/rasa-user", headers=bearer(keys["review"])).json()["turns"]
        assert log[1]["picked_from"] == log[0]["id"] and second in [c["about"] for c in log[0]["choices"]]
        thanks = client.post("/webhooks/rest/webhook", headers=h, json={"sender": "rasa-user", "message": "/bad"})
        assert thanks.status_code == 200 and thanks.json() == [{"recipient_id": "rasa-user", "text": "Thanks for your feedback."}]
        rated = client.get("/v1/conversations/rasa-user", headers=bearer(keys["review"])).json()["turns"]
        assert len(rated) == 2 and [f["kind"] for f in rated[1]["feedback"]] == ["bad"]  # the last answer, not a new turn
        assert client.post("/webhooks/rest/webhook", headers=h, json={"sender": "nobody", "message": "/good"}).status_code == 404
    finally:
        client.__exit__(None, None, None)


def test_waiting_messages_share_a_batch_and_keep_their_order(tmp_path: Path, encoder: Encoder) -> None:
    make_plugin(tmp_path / "plugins")
    settings = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    sizes: list[int] = []
    worker = Worker(Agent(settings, encoder=encoder), wait_ms=200, max_batch=8, on_batch=lambda out: sizes.append(len(out)))
    worker.start()
    assert worker.ready.wait(120)
    futures = [worker.ask(Message(f"refund number {i} please", "same")) for i in range(12)]
    replies = [f.result(60) for f in futures]
    worker.stop()
    assert sizes[0] == 8 and sum(sizes) == 12
    assert [r.turn_id for r in replies] == sorted(r.turn_id for r in replies)


def test_binding_beyond_loopback_needs_a_key_or_insecure(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    check_binding("127.0.0.1", 0, False)
    check_binding("0.0.0.0", 1, False)
    check_binding("0.0.0.0", 0, True)
    r = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "9"], env={"AGENT_HOME": str(tmp_path / "home")})
    assert r.exit_code != 0 and "refusing to listen on 0.0.0.0" in r.output and "agent keys create" in r.output


def free_port() -> int:
    """A port nothing listens on, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLOW_HOOK = """
import time

from agent import hookimpl


@hookimpl
def build_reply(text):
    time.sleep(1.0)  # a slow answer: still in flight when the server is told to stop
    return "slowly answered"
"""


def test_a_real_server_answers_what_is_in_flight_when_sigterm_stops_it(tmp_path: Path, encoder: Encoder,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    home, root = tmp_path / "home", tmp_path / "plugins"
    (make_plugin(root, "slowdesk") / "hooks.py").write_text(SLOW_HOOK)
    monkeypatch.setenv("AGENT_PLUGINS_PATH", str(root))
    agent = Agent(Settings(home=home), encoder=encoder)
    _ = agent.runtimes, agent.observers  # indexes built here, with the suite's remembered embeddings
    agent.store.close()
    keys = keys_for(Settings(home=home))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "agent", "--device", "cpu", "serve", "--port", str(port)],
                              env={**os.environ, "AGENT_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base, answers = f"http://127.0.0.1:{port}", []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        assert httpx.get(f"{base}/openapi.json", timeout=5).json()["paths"]["/v1/conversations/{conversation_id}/messages"]
        quick = httpx.post(f"{base}/v1/conversations/e2e/messages", json={"text": "I lost my card"}, headers=bearer(keys["chat"]), timeout=30)
        assert quick.status_code == 200
        ask = threading.Thread(target=lambda: answers.append(httpx.post(
            f"{base}/v1/conversations/e2e/messages", json={"text": "slow please", "plugin": "slowdesk"},
            headers=bearer(keys["chat"]), timeout=60)))
        ask.start()
        time.sleep(0.4)  # the slow answer takes a second: it is in flight now
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    ask.join(60)
    assert server.returncode in (0, -signal.SIGTERM), err.decode()[-2000:]  # uvicorn re-raises the signal once it is done
    assert answers and answers[0].status_code == 200 and answers[0].json()["text"] == "slowly answered"
    db = sqlite3.connect(home / "agent.db")
    assert [r[0] for r in db.execute("SELECT text FROM turns WHERE conversation_id = 'e2e' ORDER BY id")] == [
        "I lost my card", "slow please"]
    db.close()


HOURS_ROUTE = '''
from typing import Annotated

from agent import hookimpl


@hookimpl
def register_routes(register):
    from fastapi import APIRouter, Depends
    from agent.serve.security import Caller, require

    router = APIRouter()

    @router.get("/v1/shop/hours")
    async def hours(caller: Annotated[Caller, Depends(require("chat"))]):
        return {"open": "9 to 5", "for": caller.name}

    register(router)
'''


def test_hook_register_routes_lets_a_folder_plugin_add_a_route_behind_keys(tmp_path: Path, encoder: Encoder) -> None:
    (make_plugin(tmp_path / "plugins") / "hooks.py").write_text(HOURS_ROUTE)
    settings = Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"])
    keys = keys_for(settings)
    client = running(settings, encoder)
    try:
        assert client.get("/v1/shop/hours").status_code == 401
        assert client.get("/v1/shop/hours", headers=bearer(keys["chat"])).json() == {"open": "9 to 5", "for": "k-chat"}
        assert "/v1/shop/hours" in client.get("/openapi.json").json()["paths"]
    finally:
        client.__exit__(None, None, None)


def test_the_monitor_takes_items_over_http_and_reports_them(tmp_path: Path, encoder: Encoder) -> None:
    import shutil

    root = tmp_path / "plugins"
    shutil.copytree(REPO / "plugins" / "sentiment_monitor", root / "sentiment_monitor", ignore=shutil.ignore_patterns("model", "__pycache__"))
    make_plugin(root)
    settings = Settings(home=tmp_path / "home", plugin_paths=[root])
    keys = keys_for(settings)
    client = running(settings, encoder)
    try:
        items = [{"text": "the app keeps crashing, furious", "timestamp": 1795392000.0},
                 {"text": "great service, thanks", "timestamp": 1795392060.0}, {"timestamp": 1795392120.0},
                 {"text": "card 4539 1488 0343 6467 charged twice", "timestamp": 1795392180.0}]
        assert client.post("/v1/monitor/items", json={"items": items}, headers=bearer(keys["chat"])).status_code == 403
        r = client.post("/v1/monitor/items", json={"items": items}, headers=bearer(keys["monitor"]))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["run"]["items"] == 3 and [e["item"] for e in body["errors"]] == [3] and "text" in body["errors"][0]["error"]
        report = client.get("/v1/monitor/report", headers=bearer(keys["monitor"])).json()
        assert report["run"]["id"] == body["run"]["run_id"] and report["run"]["items"] == 3
        assert client.get("/v1/alerts", params={"since": "2000-01-01"}, headers=bearer(keys["monitor"])).json() == {"alerts": []}
        bad = client.post("/v1/monitor/items", json={"items": [{"nope": 1}]}, headers=bearer(keys["monitor"]))
        assert bad.status_code == 422 and "item 1" in bad.json()["error"]
    finally:
        client.__exit__(None, None, None)
    db = sqlite3.connect(settings.db_path)
    assert ("card <CARD> charged twice",) in db.execute("SELECT text FROM feed_items").fetchall()


def test_a_finetune_started_over_http_is_promoted_and_swapped_in_while_chat_goes_on(
        shop: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, keys, settings = shop
    chat, op = bearer(keys["chat"]), bearer(keys["operator"])
    first = client.post("/v1/conversations/c1/messages", json={"text": "when are you open"}, headers=chat).json()
    client.post(f"/v1/turns/{first['turn_id']}/feedback", json={"label": "opening_hours"}, headers=bearer(keys["feedback"]))
    assert client.post("/v1/plugins/shop/finetune", json={"mode": "head"}, headers=chat).status_code == 403
    assert client.post("/v1/plugins/nope/finetune", json={}, headers=op).status_code == 404
    assert client.post("/v1/plugins/shop/finetune", json={"mode": "fast"}, headers=op).status_code == 422
    started = client.post("/v1/plugins/shop/finetune", json={"mode": "head"}, headers=op)
    assert started.status_code == 202 and started.json()["plugin"] == "shop"
    job, deadline = started.json(), time.monotonic() + 300
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        assert client.post("/v1/conversations/c2/messages", json={"text": "refund please"}, headers=chat).status_code == 200
        time.sleep(0.2)
        job = client.get(f"/v1/jobs/{job['id']}", headers=op).json()
    assert job["state"] == "done" and job["result"]["status"] == "promoted", job
    plugins = client.get("/v1/plugins", headers=chat).json()["plugins"]
    after = client.post("/v1/conversations/c3/messages", json={"text": "when are you open"}, headers=chat).json()
    shop_model = next(p["model"] for p in plugins if p["name"] == "shop")
    assert after["label"] == "opening_hours" and "v1" in shop_model, shop_model
    assert client.get("/v1/jobs/unknown", headers=op).status_code == 404


def test_an_id_that_is_a_phone_number_is_stored_as_a_keyed_hash_and_reads_back(
        shop: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, keys, settings = shop
    sender = "+8613812345678"
    said = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": "refund please"}, headers=bearer(keys["chat"]))
    assert said.json()[0]["recipient_id"] == sender
    again = client.post(f"/v1/conversations/{sender}/messages", json={"text": "when are you open", "user": "13812345678"},
                        headers=bearer(keys["chat"])).json()
    assert again["conversation_id"].startswith("anon-")
    log = client.get(f"/v1/conversations/{sender}", headers=bearer(keys["review"])).json()["turns"]
    assert len(log) == 2 and {t["conversation_id"] for t in log} == {again["conversation_id"]}
    assert log[1]["user_id"].startswith("anon-") and log[1]["user_id"] != again["conversation_id"]
    client.__exit__(None, None, None)
    data = b"".join(p.read_bytes() for p in settings.home.rglob("*") if p.is_file())
    assert b"13812345678" not in data
