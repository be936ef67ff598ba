"""The real CLI, driven with click's runner, reading results back from the real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import agent.cli.manage  # noqa: F401  (registers the management commands)
from agent.cli.main import cli
from agent.store import Store
from conftest import EXAMPLES, FAQ, write_csv


@pytest.fixture
def run(tmp_path: Path, plugin_root: Path, encoder: object):
    """Invoke `agent --device cpu ...` with a temporary home and the tiny plugin on the path."""
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(plugin_root)}

    def invoke(*args: str, input: str | bytes | None = None) -> Result:
        return CliRunner().invoke(cli, ["--device", "cpu", *args], env=env, input=input)

    return invoke


def test_ask_json_is_the_reply_and_is_logged(run, tmp_path: Path) -> None:
    result = run("ask", "I lost my card, can you block it?", "--plugin", "shop", "--json")
    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout)
    assert (reply["plugin"], reply["label"], reply["fallback_reason"]) == ("shop", "card_lost", None)
    assert set(reply) >= {"text", "plugin", "label", "confidence", "hits", "fallback_reason", "timings_ms",
                          "turn_id", "conversation_id"}
    stored = Store(tmp_path / "home" / "agent.db").turn(reply["turn_id"])
    assert stored["label"] == "card_lost" and len(stored["hits"]) == len(reply["hits"]) == 2


def test_ask_errors_are_messages_not_tracebacks(run) -> None:
    result = run("ask", "   ")
    assert result.exit_code == 1 and "Error: the message is empty" in result.output
    assert "Traceback" not in result.output
    result = run("ask", "hello", "--plugin", "nope")
    assert result.exit_code == 1 and "no responder plugin named 'nope'" in result.output


def test_plain_chat_transcript_feedback_and_use(run, tmp_path: Path) -> None:
    script = "I lost my card\n/label refund\n\n/foo\n/good\n/use shop\nare you open on sunday?\n/quit\nnever read\n"
    result = run("chat", "--plain", input=script)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("agent> ") and "shop · card_lost" in lines[1]
    assert "unknown command /foo" in result.stdout and "error" not in result.stdout
    assert "feedback stored for turn 1" in result.stdout and "Now using shop." in result.stdout
    assert "never read" not in result.stdout
    store = Store(tmp_path / "home" / "agent.db")
    assert [(f["kind"], f["label"]) for f in store.turn(1)["feedback"]] == [("label", "refund"), ("good", None)]
    assert store.turn(2)["label"] == "opening_hours" and store.turn(2)["conversation_id"] == store.turn(1)["conversation_id"]


def test_feedback_logs_and_export(run, tmp_path: Path) -> None:
    run("ask", "I want my money back", "--plugin", "shop")
    assert "stored feedback 1 for turn 1" in run("feedback", "1", "--bad").output
    assert run("feedback", "1").exit_code == 2
    assert run("feedback", "1", "--good", "--bad").exit_code == 2
    listed = run("logs", "-q", "money", "--json")
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == [1]
    out = tmp_path / "export.jsonl"
    assert run("logs", "export", str(out)).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["label"] == "refund" and rows[0]["feedback"][0]["kind"] == "bad"


def test_plugins_lists_and_explains_skipped(run, plugin_root: Path) -> None:
    (plugin_root / "broken").mkdir()
    (plugin_root / "broken" / "plugin.toml").write_text("name = \n")
    result = run("plugins", "--json")
    data = json.loads(result.output)
    shop = next(p for p in data["plugins"] if p["name"] == "shop")
    assert (shop["labels"], shop["examples"], shop["corpus"]) == (3, 15, 6)
    assert shop["label_names"] == ["card_lost", "opening_hours", "refund"]
    skipped = next(s for s in data["skipped"] if s["folder"].endswith("broken"))
    assert "plugin.toml: invalid TOML" in skipped["reason"]


def test_new_plugin_then_eval_with_oos(run, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "src.csv", ["utterance", "intent"], [(t, lab) for lab, ts in EXAMPLES.items() for t in ts])
    faq = write_csv(tmp_path / "faq_src.csv", ["id", "question", "answer", "label"], FAQ)
    bad = run("new-plugin", str(tmp_path / "new" / "desk"), "--examples", str(src))
    assert bad.exit_code == 1 and "expected columns ['text', 'label']" in bad.output and "--text-column" in bad.output
    made = run("new-plugin", str(tmp_path / "new" / "desk"), "--examples", str(src), "--text-column", "utterance",
               "--label-column", "intent", "--faq", str(faq))
    assert made.exit_code == 0, made.output
    assert "desk: 3 labels, 15 examples" in made.output
    test = write_csv(tmp_path / "test.csv", ["text", "label"], [
        ("my card got stolen on the bus", "card_lost"), ("what time do you close tonight", "opening_hours"),
        ("I need a refund for this jacket", "refund"), ("who won the football world cup in 1966", "oos")])
    report_path = tmp_path / "report.json"
    result = run("eval", str(tmp_path / "new" / "desk"), "--data", str(test), "--json", str(report_path))
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["n"] == 4 and report["accuracy"] == 1.0 and report["oos_recall"] == 1.0
    assert report["in_scope_accuracy"] == 1.0 and set(report["per_label"]) == {"card_lost", "opening_hours", "refund", "oos"}
    assert "accuracy" in result.output and "macro_f1" in result.output and f"wrote {report_path}" in result.output


def test_a_plugin_that_cannot_load_does_not_break_the_others(run, plugin_root: Path) -> None:
    write_csv(plugin_root / "solo" / "examples.csv", ["text", "label"], [("hello", "greet"), ("hi there", "greet")])
    (plugin_root / "solo" / "plugin.toml").write_text('name = "solo"\ndescription = "d"\n[data]\nexamples = "examples.csv"\n')
    assert run("ask", "I lost my card", "--plugin", "shop").exit_code == 0
    forced = run("ask", "hello", "--plugin", "solo")
    assert forced.exit_code == 1 and "plugin 'solo' is not available" in forced.output and "at least 2 labels" in forced.output
    listed = json.loads(run("plugins", "--json").output)
    assert any(s["folder"].endswith("solo") and "at least 2 labels" in s["reason"] for s in listed["skipped"])


def test_file_system_errors_are_messages(run, tmp_path: Path) -> None:
    run("ask", "I lost my card", "--plugin", "shop")
    result = run("logs", "export", str(tmp_path / "missing" / "x.jsonl"))
    assert result.exit_code == 1 and "No such file or directory" in result.output and "Traceback" not in result.output


def test_markup_like_text_is_shown_verbatim(run) -> None:
    asked = run("ask", "why was my card [/] [bold]lost", "--plugin", "shop")
    assert asked.exit_code == 0, asked.output
    logs = run("logs")
    assert logs.exit_code == 0 and "[/]" in logs.output
    chat = run("chat", "--plain", input="/use [/]x\n/[red]\n")
    assert chat.exit_code == 0 and "unknown command /[red]" in chat.stdout and "Traceback" not in chat.output


def test_csv_row_with_extra_fields_is_named(run, tmp_path: Path) -> None:
    src = tmp_path / "ex.csv"
    src.write_text("text,label\nhello there,greet\nhello, world,greet\n")
    result = run("new-plugin", str(tmp_path / "x"), "--examples", str(src))
    assert result.exit_code == 1 and "ex.csv:3: more fields than the header" in result.output


def test_an_unexpected_error_is_one_line_not_a_traceback(run, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kw: object) -> None:
        raise TypeError("something nobody expected")

    monkeypatch.setattr("agent.reply.agent.Agent.reply", broken)
    result = run("ask", "I lost my card")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "unexpected error: TypeError: something nobody expected" in result.output and "AGENT_DEBUG=1" in result.output
