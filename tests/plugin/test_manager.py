"""One plugin manager per process: the default plugins, packages and folders register in it; a plugin's own
hooks run for its turns alone, a kind hook once per turn."""

from __future__ import annotations

import types
from pathlib import Path

from agent import hookimpl
from agent.models.encoder import Encoder
from agent.plugin import manager
from agent.plugin.discovery import discover
from agent.reply.agent import Agent
from agent.settings import Settings
from conftest import make_plugin

COUNTING = '''
from agent import hookimpl

CALLS = []

@hookimpl
def build_reply(plugin, text, answer):
    CALLS.append((plugin, text))
    return None
'''


def test_the_default_plugins_are_an_explicit_table_and_all_registered() -> None:
    pm = manager.plugin_manager()
    assert manager.DEFAULT_PLUGINS[0] == "agent.cli.manage" and "agent.scenarios.faq" in manager.DEFAULT_PLUGINS
    assert all(pm.get_plugin(name) is not None for name in manager.DEFAULT_PLUGINS)


def test_a_folder_plugins_build_reply_runs_for_its_own_turns_only(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    (make_plugin(root, "a") / "hooks.py").write_text(COUNTING)
    make_plugin(root, "b", "Another help desk")
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[root]), encoder=encoder)
    agent.reply("I lost my card", plugin="b")
    agent.reply("where is my parcel", plugin="a")
    agent.reply("I lost my card", plugin="b")
    module = next(m for m in agent.manifests if m.name == "a").hooks_object
    assert manager.plugin_manager().is_registered(module)  # the same manager the default plugins are in
    assert module.CALLS == [("a", "where is my parcel")]


def test_a_package_adding_a_kind_hook_is_called_once_per_turn(agent: Agent) -> None:
    calls: list[str] = []
    package = types.ModuleType("counting_package")

    @hookimpl
    def respond(turn):  # noqa: ANN001, ANN202 - a kind hook as a package writes it
        calls.append(turn.text)

    package.respond = respond
    manager.register(package, "package:counting_package")
    try:
        agent.reply("I lost my card")
        agent.reply("where is my parcel")
    finally:
        manager.plugin_manager().unregister(name="package:counting_package")
    assert calls == ["I lost my card", "where is my parcel"]


def test_a_broken_manifest_never_runs_its_folders_code(tmp_path: Path) -> None:
    folder = tmp_path / "plugins" / "broken"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text('name = "broken"\nlabels = ["a", "b"]\n')  # no description
    marker = tmp_path / "ran.txt"
    (folder / "hooks.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
                                     "from agent import hookimpl\n\n@hookimpl\ndef register_tables(register):\n    pass\n")
    manifests, skipped = discover(Settings(home=tmp_path / "home", plugin_paths=[tmp_path / "plugins"]))
    assert [s.path for s in skipped] == [folder] and "description" in skipped[0].reason
    assert not marker.exists()
