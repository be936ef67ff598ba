"""Confinement: data paths stay inside the plugin folder, hooks.py runs only from configured plugin
folders, nothing is pickled, and text that looks like SQL is stored as text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import agent.cli.manage  # noqa: F401  (registers `agent eval`)
from agent.cli.main import cli
from agent.errors import PluginError
from agent.models.encoder import Encoder
from agent.plugin.manifest import load_manifest
from agent.reply.agent import Agent
from agent.settings import Settings
from conftest import REPO, make_plugin, write_csv

MARKER_HOOKS = '''
from pathlib import Path
Path(__file__).with_name("ran.txt").write_text("hooks.py was executed")
'''


@pytest.mark.parametrize("rel", ["../outside.csv", "/etc/hostname", "sub/../../outside.csv", "link.csv"])
def test_data_paths_cannot_leave_the_plugin_folder(tmp_path: Path, rel: str) -> None:
    folder = make_plugin(tmp_path / "plugins")
    write_csv(tmp_path / "plugins" / "outside.csv", ["text", "label"], [("x", "refund")])
    (folder / "link.csv").symlink_to(tmp_path / "plugins" / "outside.csv")
    m = load_manifest(folder)
    with pytest.raises(PluginError, match="points outside the plugin folder"):
        m.data_file(rel, "data.examples")


def test_hooks_file_linked_from_outside_is_refused(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    folder = make_plugin(root)
    (tmp_path / "evil.py").write_text(MARKER_HOOKS)
    (folder / "hooks.py").symlink_to(tmp_path / "evil.py")
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[root]), encoder=encoder)
    assert any("links outside the plugin folder" in s.reason for s in agent.skipped)
    assert not (tmp_path / "ran.txt").exists()


def test_hooks_file_in_a_folder_given_on_the_command_line_is_not_run(tmp_path: Path, encoder: Encoder) -> None:
    stray = make_plugin(tmp_path / "elsewhere", "stray")  # not under any configured plugin folder
    (stray / "hooks.py").write_text(MARKER_HOOKS)
    data = write_csv(tmp_path / "test.csv", ["text", "label"], [("I lost my card", "card_lost")])
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(tmp_path / "none")}
    result = CliRunner().invoke(cli, ["--device", "cpu", "eval", str(stray), "--data", str(data)], env=env)
    assert result.exit_code == 0, result.output
    assert not (stray / "ran.txt").exists()


def test_no_pickle_anywhere_in_the_package() -> None:
    risky = re.compile(r"\bimport pickle\b|\bpickle\.|torch\.load\(|allow_pickle\s*=\s*True|\bjoblib\b|\bdill\b")
    hits = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "agent").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if risky.search(line)]
    assert hits == []


def test_sql_shaped_text_is_stored_as_text(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    make_plugin(root)
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[root]), encoder=encoder)
    evil = "refund'); DROP TABLE turns; --"
    reply = agent.reply(evil, conversation_id="x' OR '1'='1")
    assert agent.store.turn(reply.turn_id)["text"] == evil
    assert [t["id"] for t in agent.store.turns(query=evil)] == [reply.turn_id]
    assert agent.store.turns(conversation="' OR 1=1 --") == []
    assert len(agent.store.turns(limit=10)) == 1
