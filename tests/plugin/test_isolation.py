"""Plugin isolation: a hook that hangs, exits or blocks its import is cut off; the turn is answered
without it, the reason is logged with the turn, and other plugins and later turns keep working."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.models.encoder import Encoder
from agent.plugin.hooks import Hooks, HookTimeout, Runner
from agent.reply.agent import Agent
from agent.settings import Settings
from conftest import make_plugin

HANGS = '''
import time
from agent import hookimpl

@hookimpl
def build_reply(answer):
    time.sleep(30)
    return "never sent"
'''

EXITS = '''
import sys
from agent import hookimpl

@hookimpl
def build_reply(answer):
    sys.exit(3)
'''

IMPORT_HANGS = '''
import time
time.sleep(60)
'''

OBSERVES = '''
from agent import hookimpl

@hookimpl
def observe_turn(text):
    return {"seen": True}
'''


def plugins(tmp_path: Path, hooks_a: str, hooks_b: str = OBSERVES) -> Settings:
    """Plugin `a` with hooks_a, plugin `b` with hooks_b."""
    root = tmp_path / "plugins"
    (make_plugin(root, "a") / "hooks.py").write_text(hooks_a)
    (make_plugin(root, "b", "Another help desk") / "hooks.py").write_text(hooks_b)
    return Settings(home=tmp_path / "home", plugin_paths=[root])


def test_a_hanging_hook_is_cut_off_and_the_turn_is_answered_without_it(tmp_path: Path, encoder: Encoder,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_HOOK_TIMEOUT", "0.5")
    agent = Agent(plugins(tmp_path, HANGS), encoder=encoder)
    start = time.perf_counter()
    reply = agent.reply("I lost my card", plugin="a")
    assert time.perf_counter() - start < 5
    assert reply.text != "never sent" and reply.label == "card_lost"
    assert any("build_reply" in w and "timed out after 0.5 s" in w for w in reply.warnings), reply.warnings
    assert reply.annotations["b"] == {"seen": True}  # the other plugin's hook still ran
    stored = agent.store.turn(reply.turn_id)
    assert any("timed out" in w for w in stored["warnings"])  # the reason is logged with the turn
    again = agent.reply("I lost my card", plugin="a")  # still hung: skipped at once, not another 0.5 s
    assert any("skipped" in w for w in again.warnings), again.warnings
    other = agent.reply("I lost my card", plugin="b")
    assert other.warnings == [] and other.annotations["b"] == {"seen": True}


def test_a_hook_that_calls_sys_exit_does_not_end_the_agent(tmp_path: Path, encoder: Encoder) -> None:
    agent = Agent(plugins(tmp_path, EXITS), encoder=encoder)
    reply = agent.reply("I lost my card", plugin="a")
    assert reply.label == "card_lost"
    assert any("SystemExit" in w for w in reply.warnings), reply.warnings


def test_a_hooks_file_that_hangs_on_import_skips_only_its_plugin(tmp_path: Path, encoder: Encoder,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.plugin.hooks.IMPORT_TIMEOUT", 0.5)
    agent = Agent(plugins(tmp_path, IMPORT_HANGS), encoder=encoder)
    skipped = {s.name: s.reason for s in agent.skipped}
    assert "a" in skipped and "timed out" in skipped["a"] and "hooks.py" in skipped["a"]
    assert agent.reply("I lost my card").plugin == "b"


def test_runner_returns_values_and_errors_and_refuses_while_hung() -> None:
    runner = Runner("p")
    assert runner.call(lambda: 41 + 1, 1.0) == 42
    with pytest.raises(ZeroDivisionError):
        runner.call(lambda: 1 / 0, 1.0)
    with pytest.raises(HookTimeout, match="timed out"):
        runner.call(lambda: time.sleep(0.6), 0.1)
    with pytest.raises(HookTimeout, match="skipped"):
        runner.call(lambda: 1, 1.0)
    time.sleep(0.7)
    assert runner.call(lambda: "back", 1.0) == "back"  # once the hung call returns, the plugin is called again


def test_a_bad_hook_timeout_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_HOOK_TIMEOUT", "soon")
    with pytest.raises(Exception, match="AGENT_HOOK_TIMEOUT='soon' is not a number"):
        Hooks()
