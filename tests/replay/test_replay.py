"""`agent replay` and Agent.replies on a tiny real plugin plus the bundled order_tracking plugin."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import agent.cli.manage  # noqa: F401
from agent.cli import replay  # noqa: F401  (registers `agent replay`)
from agent.cli.main import cli
from agent.errors import InputError
from agent.models.encoder import Encoder
from agent.replay.engine import batches
from agent.replay.inputs import BadLine, ReplayTurn, read_entries
from agent.reply.agent import Agent, Message
from agent.settings import PACKAGE_ROOT
from agent.store import Store
from conftest import make_plugin

SCRIPT = """\
- conversation: a
  turns:
    - text: I lost my card, please block it
      expect: {plugin: shop, label: card_lost}
    - text: when are you open on sunday
      expect: {plugin: shop, label: opening_hours}
- conversation: b
  turns:
    - /use order_tracking
    - text: I lost my card, please block it
      expect: {plugin: order_tracking}
    - text: how do I get a refund for the broken item
      expect: {plugin: order_tracking}
- conversation: c
  turns:
    - text: I want my money back
      expect: {plugin: shop, label: refund, answer: refund-1}
"""


@pytest.fixture
def two_plugins(tmp_path: Path) -> Path:
    """A folder with the tiny `shop` plugin; the bundled order_tracking plugin is found beside it."""
    root = tmp_path / "plugins"
    make_plugin(root)
    assert (PACKAGE_ROOT / "plugins" / "order_tracking" / "plugin.toml").is_file()
    return root


@pytest.fixture
def run(tmp_path: Path, two_plugins: Path, encoder: Encoder):
    """Invoke `agent --device cpu ...` with a temporary home, `shop` and the bundled order_tracking."""
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(two_plugins), "AGENT_LOAD_PLUGINS": "shop,order_tracking"}

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--device", "cpu", *args], env=env, input=input)

    return invoke


def db(tmp_path: Path) -> Store:
    """The temporary home's database."""
    return Store(tmp_path / "home" / "agent.db")


# ---- Agent.replies -----------------------------------------------------------------------------
def test_replies_match_single_replies_with_one_encoder_call(agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["I lost my card", "when do you open", "refund my order please", "hello there general kenobi"]
    single = [agent.reply(t) for t in texts]
    calls: list[int] = []
    original = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, t, **kw: calls.append(len(t)) or original(self, t, **kw))
    batch = agent.replies([Message(t) for t in texts])
    assert calls == [4]
    for a, b in zip(single, batch):
        assert (a.plugin, a.label, a.answer_id, a.fallback_reason) == (b.plugin, b.label, b.answer_id, b.fallback_reason)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-3)
        assert b.turn_id is not None and b.turn_id != a.turn_id
    assert single[0].answer_id in ("lost-1", "lost-2") and single[3].answer_id is None


def test_replies_report_a_bad_message_and_answer_the_rest(agent: Agent) -> None:
    out = agent.replies([Message("I lost my card"), Message("   "), Message(b"\x00\xff\xfe" * 20), Message("when do you open")])
    assert [type(r).__name__ for r in out] == ["Reply", "InputError", "InputError", "Reply"]
    assert "empty" in str(out[1]) and out[3].label == "opening_hours"


def test_replies_without_logging_store_nothing(agent: Agent) -> None:
    out = agent.replies([Message("I lost my card")], log=False)
    assert out[0].turn_id is None and agent.store.turns() == []


# ---- inputs ------------------------------------------------------------------------------------
def test_jsonl_script_export_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"conversation": "s", "turns": ["hi", {"text": "lost card", "expect": {"label": "card_lost"}}]}\n'
        b'{not json\n'
        b'\xff\xfe binary\n'
        b'\n'
        b'{"text": "refund", "label": "refund", "conversation_id": "x"}\n'
        b'{"conversation_id": "e", "id": 7, "text": "t", "reply": "r", "plugin": "shop", "label": "refund", '
        b'"answer_id": "refund-1", "feedback": [{"kind": "label", "label": "card_lost"}]}\n'
        b'{"turns": []}\n'
        b'{"text": 5}\n')
    got = list(read_entries(str(path), "jsonl"))
    bad = {e.line: e.reason for e in got if isinstance(e, BadLine)}
    assert set(bad) == {2, 3, 7, 8}
    assert "invalid JSON" in bad[2] and "UTF-8" in bad[3] and "non-empty list" in bad[7] and "string" in bad[8]
    turns = [e for e in got if isinstance(e, ReplayTurn)]
    assert [(t.line, t.conversation, t.text) for t in turns] == [(1, "s", "hi"), (1, "s", "lost card"), (5, "x", "refund"), (6, "e", "t")]
    assert turns[1].expect == {"label": "card_lost"} and turns[2].expect == {"label": "refund"}
    assert turns[3].logged["answer_id"] == "refund-1" and turns[3].expect == {"plugin": "shop", "label": "card_lost"}


def test_csv_rows_and_yaml_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b'text,label,conversation_id\n"two\nlines",refund,c\n,refund,\nok,card_lost,\na,b,c,d\n')
    got = list(read_entries(str(path), "csv"))
    assert got[0] == ReplayTurn(2, "c", "two\nlines", {"label": "refund"})
    assert [type(e).__name__ for e in got] == ["ReplayTurn", "BadLine", "ReplayTurn", "BadLine"]
    assert (got[1].line, got[3].line, got[2].conversation) == (4, 6, "line-5")
    yaml_path = tmp_path / "in.yaml"
    yaml_path.write_text(SCRIPT)
    turns = list(read_entries(str(yaml_path), "yaml"))
    assert [(t.line, t.conversation) for t in turns][:4] == [(3, "a"), (5, "a"), (9, "b"), (10, "b")]
    assert turns[2].text == "/use order_tracking" and turns[-1].expect["answer"] == "refund-1"
    (tmp_path / "broken.yaml").write_text("- conversation: z\n  turns: [a, b\n")
    assert isinstance(list(read_entries(str(tmp_path / "broken.yaml"), "yaml"))[-1], BadLine)


def test_csv_without_text_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("message_body,label\nhi,x\n")
    with pytest.raises(InputError, match="no 'text' column"):
        list(read_entries(str(path), "csv"))


def test_batches_carry_use_state_across_batch_boundaries() -> None:
    turns = [ReplayTurn(i, conv, text) for i, (conv, text) in enumerate(
        [("a", "/use other"), ("b", "hi"), ("a", "lost card"), ("a", "/use nope"), ("a", "more")], start=1)]
    got = list(batches(turns, 2, responders=["other", "shop"]))
    assert [len(b.turns) for b in got] == [2, 2, 1]
    assert [b.state for b in got] == [{}, {"a": "other"}, {"a": "other"}]


# ---- the command -------------------------------------------------------------------------------
def test_script_replay_honours_conversations_and_writes_reports(run, tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    result = run("replay", str(script), "--batch-size", "1", "--json", str(out_json), "--markdown", str(out_md), "--fail-under", "1")
    assert result.exit_code == 0, result.output
    report = json.loads(out_json.read_text())
    s = report["summary"]
    assert (s["turns"], s["conversations"], s["expected"], s["passed"], s["accuracy"]) == (6, 3, 5, 5, 1.0)
    assert report["mismatches"] == [] and s["run"] == 1
    assert {r["label"] for r in report["by_label"]} == {"card_lost", "opening_hours", "refund"}
    assert "# Replay of" in out_md.read_text() and "| shop | card_lost | 1 | 1.000 |" in out_md.read_text()
    store = db(tmp_path)
    turns = store.turns(limit=None)
    assert len(turns) == 5 and all(t["conversation_id"].startswith("replay1:") for t in turns)  # a bare /use is not a turn
    assert store.replay_runs()[0]["status"] == "done" and store.replay_runs()[0]["accuracy"] == 1.0


def test_dry_run_leaves_the_log_untouched_but_records_the_run(run, tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    assert run("replay", str(script), "--dry-run").exit_code == 0
    store = db(tmp_path)
    assert store.turns(limit=None) == []
    runs = store.replay_runs()
    assert len(runs) == 1 and runs[0]["dry_run"] == 1 and runs[0]["turns"] == 6
    listed = run("replay", "--runs")
    assert listed.exit_code == 0 and "done" in listed.output


def test_fail_under_fails_with_a_clear_summary(run, tmp_path: Path) -> None:
    script = tmp_path / "wrong.jsonl"
    lines = [{"conversation": "w", "turns": [{"text": "I lost my card", "expect": {"label": "refund"}},
                                             {"text": "when do you open", "expect": {"label": "opening_hours"}}]}]
    script.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = run("replay", str(script), "--dry-run", "--fail-under", "0.9")
    assert result.exit_code == 1
    assert "FAILED: accuracy 0.500 < --fail-under 0.900 (1 of 2 expected turns wrong)" in result.output
    assert "label: refund → card_lost" in result.output
    assert run("replay", str(script), "--dry-run", "--fail-under", "0.5").exit_code == 0


def test_a_faq_change_lists_the_turns_that_changed(run, tmp_path: Path, two_plugins: Path) -> None:
    messages = ["I lost my card, block it", "when are you open", "how do I get a refund", "my card was stolen"]
    for m in messages:
        assert run("ask", m, "--plugin", "shop").exit_code == 0
    export = tmp_path / "log.jsonl"
    assert run("logs", "export", str(export)).exit_code == 0
    same = run("replay", str(export), "--dry-run", "--max-changed", "0")
    assert same.exit_code == 0, same.output
    logged = [json.loads(line) for line in export.read_text().splitlines()]
    moved = {t["answer_id"] for t in logged if t["label"] == "refund"}
    faq = two_plugins / "shop" / "faq.csv"
    rows = list(csv.reader(faq.open()))
    faq.write_text("\n".join(",".join(f'"{c}"' for c in r) for r in rows if r[0] not in moved) + "\n")
    report_path = tmp_path / "changed.json"
    changed = run("replay", str(export), "--dry-run", "--max-changed", "0", "--json", str(report_path))
    assert changed.exit_code == 1
    assert "FAILED: 1 turns changed > --max-changed 0 (of 4 compared)" in changed.output
    diff = json.loads(report_path.read_text())["changed"]
    assert [d["text"] for d in diff] == ["how do I get a refund"]
    assert diff[0]["fields"]["answer"][0] in moved and diff[0]["fields"]["answer"][1] not in moved
    assert diff[0]["logged_turn"] == next(t["id"] for t in logged if t["label"] == "refund")


def test_bad_lines_are_reported_and_the_rest_replayed(run, tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    path.write_bytes(b"text,label\nI lost my card,card_lost\n,refund\nbroken,row,extra\n\xff\xfe\xfd,x\nwhen do you open,opening_hours\n")
    result = run("replay", str(path), "--dry-run", "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [b["line"] for b in report["bad_lines"]] == [3, 4, 5]
    assert report["summary"]["turns"] == 2 and report["summary"]["accuracy"] == 1.0
    assert "bad lines (skipped): 3" in result.stderr


def test_results_file_replays_as_the_reference(run, tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    results = tmp_path / "before.jsonl"
    assert run("replay", str(script), "--dry-run", "--results", str(results)).exit_code == 0
    again = run("replay", str(results), "--dry-run", "--max-changed", "0", "--fail-under", "1", "--json", "-")
    assert again.exit_code == 0, again.output
    s = json.loads(again.stdout)["summary"]
    assert (s["compared"], s["changed"], s["expected"]) == (6, 0, 5)


def test_unknown_suffix_and_missing_file_are_clear(run, tmp_path: Path) -> None:
    odd = tmp_path / "log.txt"
    odd.write_text("hi\n")
    result = run("replay", str(odd))
    assert result.exit_code == 1 and "--format" in result.output and isinstance(result.exception, SystemExit)
    missing = run("replay", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 1 and "file not found" in missing.output and isinstance(missing.exception, SystemExit)


def test_ray_engine_gives_the_same_results(run, tmp_path: Path) -> None:
    pytest.importorskip("ray.data", reason="Ray is an optional extra: pip install 'agent[ray]'")
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    local, on_ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert run("replay", str(script), "--dry-run", "--batch-size", "2", "--results", str(local)).exit_code == 0
    result = run("replay", str(script), "--dry-run", "--batch-size", "2", "--engine", "ray", "--results", str(on_ray))
    assert result.exit_code == 0, result.output
    strip = lambda p: [{k: v for k, v in json.loads(line).items() if k != "confidence"} for line in p.read_text().splitlines()]
    assert strip(local) == strip(on_ray) and len(strip(local)) == 6
    conf = lambda p: [json.loads(line)["confidence"] for line in p.read_text().splitlines()]
    assert conf(local) == pytest.approx(conf(on_ray), abs=1e-4)
    assert db(tmp_path).replay_runs()[0]["engine"] == "ray"


def test_the_documented_script_passes_on_the_bundled_plugins(tmp_path: Path, encoder: Encoder) -> None:
    import re
    import textwrap

    readme = (PACKAGE_ROOT / "docs" / "replay.md").read_text()
    section = readme[readme.index("# Replaying conversations"):]
    script = tmp_path / "readme.yaml"
    script.write_text(textwrap.dedent(re.search(r"```yaml\n(.*?)```", section, re.S).group(1)))
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": "", "AGENT_LOAD_PLUGINS": "customer_service,order_tracking"}
    result = CliRunner().invoke(cli, ["--device", "cpu", "replay", str(script), "--dry-run", "--fail-under", "1", "--json", "-"], env=env)
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)["summary"]
    assert (s["turns"], s["expected"], s["passed"]) == (5, 3, 3)


def test_odd_lines_are_bad_lines_not_crashes(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text("\n".join([
        '{"conversation_id": "c", "text": "t", "reply": "r", "feedback": 5}',
        '{"text": "hi", "expect": {"label": ["a", "b"]}}',
        '{"text": "hi", "expect": {"fallback": null}}',
        deep,
        '{"text": null}',
    ]) + "\n")
    got = list(read_entries(str(path), "jsonl"))
    assert [type(e).__name__ for e in got] == ["BadLine", "BadLine", "ReplayTurn", "BadLine", "BadLine"]
    assert "feedback" in got[0].reason and "single value" in got[1].reason and got[2].expect == {}
    csv_path = tmp_path / "odd.csv"
    csv_path.write_text("text,fallback\nhello,\nbye,maybe\n")
    rows = list(read_entries(str(csv_path), "csv"))
    assert rows[0] == ReplayTurn(2, "line-2", "hello", {}) and isinstance(rows[1], BadLine) and rows[1].line == 3
    yaml_path = tmp_path / "odd.yaml"
    yaml_path.write_text("- conversation: a\n  turns: [hi]\n- 5\n- text: alone\n")
    entries = list(read_entries(str(yaml_path), "yaml"))
    assert [(type(e).__name__, e.line) for e in entries] == [("ReplayTurn", 2), ("BadLine", 3), ("ReplayTurn", 4)]


def test_use_state_within_and_across_local_batches(run, tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    for size in ("2", "1024"):
        result = run("replay", str(script), "--dry-run", "--batch-size", size, "--fail-under", "1", "--json", "-")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["summary"]["passed"] == 5


def test_forced_turns_replay_forced_from_an_export(run, tmp_path: Path) -> None:
    assert run("ask", "I lost my card", "--plugin", "order_tracking").exit_code == 0
    assert run("ask", "I lost my card").exit_code == 0
    export = tmp_path / "log.jsonl"
    assert run("logs", "export", str(export)).exit_code == 0
    logged = [json.loads(line) for line in export.read_text().splitlines()]
    assert [t["forced"] for t in sorted(logged, key=lambda t: t["id"])] == ["order_tracking", None]
    result = run("replay", str(export), "--dry-run", "--max-changed", "0")
    assert result.exit_code == 0, result.output


def test_turns_logged_without_an_answer_id_are_compared_by_reply(run, tmp_path: Path) -> None:
    assert run("ask", "I lost my card", "--plugin", "shop").exit_code == 0
    export = tmp_path / "log.jsonl"
    assert run("logs", "export", str(export)).exit_code == 0
    old = {**json.loads(export.read_text()), "answer_id": None}
    export.write_text(json.dumps(old) + "\n")
    assert run("replay", str(export), "--dry-run", "--max-changed", "0").exit_code == 0
    export.write_text(json.dumps({**old, "reply": "something else"}) + "\n")
    changed = run("replay", str(export), "--dry-run", "--max-changed", "0")
    assert changed.exit_code == 1 and "reply:" in changed.output


def test_markup_in_messages_is_shown_as_text(run, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('text,label\n"lost card [/b][x]",refund\n')
    md = tmp_path / "m.md"
    result = run("replay", str(path), "--dry-run", "--markdown", str(md))
    assert result.exit_code == 0, result.output
    assert "[/b][x]" in result.output and "[/b][x]" in md.read_text()


def test_outputs_may_not_overwrite_the_input_and_stdin_works(run, tmp_path: Path) -> None:
    script = tmp_path / "in.jsonl"
    script.write_text('{"text": "I lost my card", "label": "card_lost"}\n')
    refused = run("replay", str(script), "--results", str(script))
    assert refused.exit_code == 2 and "is the file being replayed" in refused.output
    assert script.read_text().startswith('{"text"')
    piped = run("replay", "-", "--dry-run", "--fail-under", "1", input=script.read_text())
    assert piped.exit_code == 0, piped.output


def test_nothing_to_replay_warns(run, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    result = run("replay", str(path), "--dry-run")
    assert result.exit_code == 0 and "no turn in" in result.output
    assert run("replay", str(path), "--dry-run", "--fail-under", "0.5").exit_code == 1


def test_spools_of_killed_replays_are_swept(tmp_path: Path) -> None:
    import os
    import subprocess

    from agent.replay.on_ray import sweep_spools

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f"replay-{dead.pid}-0123abcd.jsonl"
    left.write_text('{"text": "my card 4539 1488 0343 6467"}\n')
    ours = tmp_path / f"replay-{os.getpid()}-89abcdef.jsonl"
    ours.write_text("{}\n")
    assert sweep_spools(tmp_path) == [left.name]
    assert not left.exists() and ours.exists()
