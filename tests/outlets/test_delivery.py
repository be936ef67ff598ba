"""Delivery end to end: a real HTTP receiver on 127.0.0.1, real SQLite, the real Deliverer threads with a tiny backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import shlex
import time
from pathlib import Path

import pytest
from receiver import Receiver, Silent, closed_port

from agent.errors import InputError
from agent.outlets import Deliverer, Policy, delivering, publish
from agent.outlets.targets import add, remove
from agent.store import Store

FAST = Policy(base=0.01, cap=0.05, tries=8, timeout=1.0)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh database with the outlets' tables."""
    return Store(tmp_path / "agent.db")


def deliverer(store: Store, policy: Policy = FAST) -> Deliverer:
    """A deliverer that polls often, so tests end quickly."""
    return Deliverer(store.path, policy, poll=0.01)


def states(store: Store) -> list[tuple[str, int]]:
    """(state, attempts) of every delivery, in order."""
    return [(r["state"], r["attempts"]) for r in store.query("SELECT state, attempts FROM deliveries ORDER BY id")]


def test_a_signed_webhook_gets_the_event_with_a_valid_signature_and_ids_to_dedupe(store: Store) -> None:
    with Receiver() as r, delivering(store.path, policy=FAST, poll=0.01) as d:
        add(store, "webhook", r.url("/signed"), secret="s3cret")
        add(store, "webhook", r.url("/plain"))
        ids = publish(store, "alert", {"id": 7, "message": "app: negative share 60%", "plugin": "mon"}, plugin="mon")
        assert d.drain(5)
    assert len(ids) == 2 and states(store) == [("delivered", 1), ("delivered", 1)]
    signed, plain = sorted(r.requests, key=lambda q: q.path, reverse=True)
    expected = "sha256=" + hmac.new(b"s3cret", signed.body, hashlib.sha256).hexdigest()
    assert signed.headers["X-Agent-Signature"] == expected
    assert "X-Agent-Signature" not in plain.headers
    body = signed.json()
    assert body["event"] == signed.headers["X-Agent-Event"] == "alert" and body["plugin"] == "mon"
    assert body["delivery"] == signed.headers["X-Agent-Delivery"] != plain.headers["X-Agent-Delivery"]
    assert body["data"] == {"id": 7, "message": "app: negative share 60%", "plugin": "mon"}


def test_a_receiver_down_for_three_attempts_gets_each_alert_exactly_once(store: Store) -> None:
    with Receiver(lambda path, n: 503 if n <= 3 else 200) as r:
        add(store, "webhook", r.url(), secret="k")
        ids = [publish(store, "alert", {"id": i, "message": f"alert {i}"})[0] for i in range(6)]
        d = deliverer(store).start()
        assert d.drain(10)
        d.stop()
    assert sorted(r.delivered().values()) == [1] * 6 and len(r.requests) == 24
    assert sorted(q.json()["data"]["id"] for q in r.requests if q.status == 200) == list(range(6))
    assert states(store) == [("delivered", 4)] * 6
    tries = store.query("SELECT delivery_id, ok, status FROM delivery_attempts ORDER BY id")
    assert len(tries) == 24 and {(t["ok"], t["status"]) for t in tries} == {(0, 503), (1, 200)}
    assert {t["delivery_id"] for t in tries} == set(ids)


def test_a_4xx_is_final_but_408_and_429_are_retried(store: Store) -> None:
    answers = {"/gone": lambda n: 404, "/slow": lambda n: 429 if n == 1 else 200, "/late": lambda n: 408 if n == 1 else 204}
    with Receiver(lambda path, n: answers[path](n)) as r:
        for path in answers:
            add(store, "webhook", r.url(path))
        publish(store, "handoff", {"conversation_id": "c1", "reason": "asked for a person"}, plugin="shop")
        with delivering(store.path, policy=FAST, poll=0.01) as d:
            assert d.drain(5)
    assert states(store) == [("rejected", 1), ("delivered", 2), ("delivered", 2)]
    (gone,) = store.query("SELECT last_error FROM deliveries WHERE state = 'rejected'")
    assert gone["last_error"].startswith("HTTP 404")
    assert {q.headers["X-Agent-Event"] for q in r.requests} == {"handoff"}


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "example.com/hook", "http://", "https:///path",
                                 "javascript:alert(1)", "http://exa mple.com/", "http://example.com:99999/"])
def test_a_url_that_is_not_http_with_a_host_is_refused_and_nothing_is_stored(store: Store, url: str) -> None:
    with pytest.raises(InputError, match="https://hooks.example.com/agent"):
        add(store, "webhook", url, secret="s")
    assert store.query("SELECT COUNT(*) AS n FROM outlets") == [{"n": 0}]


def test_failed_deliveries_are_tried_again_by_a_new_deliverer(store: Store) -> None:
    up = {"now": False}
    with Receiver(lambda path, n: 200 if up["now"] else 503) as r:
        add(store, "webhook", r.url())
        add(store, "webhook", f"http://127.0.0.1:{closed_port()}/hook")
        publish(store, "alert", {"message": "spike"})
        first = deliverer(store, Policy(base=0.01, cap=0.02, tries=3, timeout=1.0)).start()
        assert first.drain(5)
        assert first.stop()
        assert states(store) == [("failed", 3), ("failed", 3)]
        errors = [r["last_error"] for r in store.query("SELECT last_error FROM deliveries ORDER BY id")]
        assert errors[0] == "HTTP 503 Service Unavailable" and "ConnectionRefused" in errors[1]
        up["now"] = True  # the receiver is back; the agent restarts
        second = deliverer(store, Policy(base=0.01, cap=0.02, tries=3, timeout=1.0)).start()
        assert second.drain(5)
        second.stop()
    assert states(store) == [("delivered", 4), ("failed", 4)]  # one more try each after the restart
    assert len(r.delivered()) == 1


def test_two_deliverers_on_one_database_send_each_delivery_once(store: Store) -> None:
    with Receiver(lambda path, n: 500 if n == 1 else 200) as r:
        add(store, "webhook", r.url())
        for i in range(20):
            publish(store, "alert", {"id": i})
        a, b = deliverer(store).start(), deliverer(store).start()
        deadline = time.monotonic() + 10  # each drain sees its own attempts only: wait for the rows themselves
        while {s for s, _ in states(store)} != {"delivered"} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert a.stop() and b.stop()
    assert sorted(r.delivered().values()) == [1] * 20 and len(r.requests) == 40
    assert {s for s, _ in states(store)} == {"delivered"}


def test_a_command_gets_the_event_on_stdin_and_a_failing_one_is_retried(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    add(store, "command", f"cat > {shlex.quote(str(out))}; echo $AGENT_EVENT > {shlex.quote(str(out))}.kind")
    add(store, "command", "echo 'mail server down' >&2; exit 3", fmt="slack")
    publish(store, "alert", {"message": "fees: negative share 70%"}, plugin="mon")
    with delivering(store.path, policy=Policy(base=0.01, cap=0.02, tries=2), poll=0.01) as d:
        assert d.drain(10)
    body = json.loads(out.read_text())
    assert body["event"] == "alert" and body["data"] == {"message": "fees: negative share 70%"}
    assert Path(f"{out}.kind").read_text().strip() == "alert"
    assert states(store) == [("delivered", 1), ("failed", 2)]
    slack = store.query("SELECT body, last_error FROM deliveries WHERE id = 2")[0]
    assert json.loads(slack["body"]) == {"text": "[agent] alert from mon: fees: negative share 70%"}
    assert slack["last_error"] == "exit status 3: mail server down"


def test_a_receiver_that_never_answers_costs_one_timeout_and_nothing_waits_on_it(store: Store) -> None:
    with Silent() as s:
        add(store, "webhook", s.url())
        d = deliverer(store, Policy(base=5.0, tries=8, timeout=0.3)).start()
        start = time.perf_counter()
        publish(store, "alert", {"message": "spike"})
        assert time.perf_counter() - start < 0.5  # publishing only queues
        assert d.drain(0.1) is False  # the attempt is in flight
        assert d.drain(1.5) is True  # it timed out; its retry is due after the drain's window
        assert d.stop(1.0)
    (row,) = store.query("SELECT state, attempts, last_error FROM deliveries")
    assert row == {"state": "queued", "attempts": 1, "last_error": "no answer within 0.3 s"}


def test_outlets_take_their_plugins_events_and_publishing_alone_sends_nothing(store: Store) -> None:
    with Receiver() as r:
        every = add(store, "webhook", r.url("/all"))
        add(store, "webhook", r.url("/shop"), plugin="shop")
        assert len(publish(store, "alert", {"m": 1}, plugin="shop")) == 2
        assert len(publish(store, "alert", {"m": 2}, plugin="bank")) == 1
        assert len(publish(store, "handoff", {"m": 3})) == 1
        time.sleep(0.1)
        assert r.requests == [] and states(store) == [("queued", 0)] * 4
        remove(store, every, "webhook")
        assert states(store) == [("cancelled", 0), ("queued", 0), ("cancelled", 0), ("cancelled", 0)]
    with pytest.raises(InputError, match="expected one of alert, handoff"):
        publish(store, "ping", {})


def test_a_chat_message_says_what_happened_in_one_line() -> None:
    from agent.outlets.publish import summary

    handoff = {"conversation_id": "c1", "plugin": "shop", "reason": "asked for a person", "text": "I want a human, now"}
    assert summary("handoff", "shop", handoff) == '[agent] handoff from shop: asked for a person (conversation c1): "I want a human, now"'
    assert summary("alert", "mon", {"message": "app: negative share 60%", "topic": "app"}) == "[agent] alert from mon: app: negative share 60%"
    assert summary("alert", None, {"n": 1}) == '[agent] alert from the agent: {"n": 1}'
