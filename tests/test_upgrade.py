"""A home and plugin folders in the old layout (models in plugins/NAME/model/ and interest/, items in a
turns column) keep everything: the current model answers, versions and --rollback work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from agent.cli.main import cli
from agent.learn.finetune import Options, finetune
from agent.models.encoder import Encoder
from agent.models.versions import versions_for
from agent.reply.agent import Agent
from agent.scenarios.recommend.events import item_feedback
from agent.settings import Settings
from agent.store import Store
from conftest import models_of


def test_models_in_a_plugin_folder_are_taken_into_the_home_with_history(plugin_root: Path, settings: Settings,
                                                                  encoder: Encoder) -> None:
    shop = plugin_root / "shop"
    agent = Agent(settings, encoder=encoder)
    for text in ("can I buy bitcoin", "do you sell crypto", "bitcoin wallet please", "crypto exchange", "sell my ethereum"):
        agent.feedback(agent.reply(text, plugin="shop").turn_id, label="crypto", new_label=True)
    finetune(shop, settings, Options(mode="head", device="cpu"), encoder=encoder)
    finetune(shop, settings, Options(mode="head", device="cpu", force=True, seed=1), encoder=encoder)
    home_models = models_of(settings.home, "shop")
    before = sorted(str(p.relative_to(home_models)) for p in home_models.rglob("*") if p.is_file() and p.name != ".lock")
    shutil.move(str(home_models), str(shop / "model"))  # the layout of earlier releases
    assert (shop / "model" / "current").read_text().strip() == "v2"

    fresh = Agent(settings, encoder=encoder)
    reply = fresh.reply("I want to buy some bitcoin", plugin="shop")
    assert reply.label == "crypto" and fresh.runtimes["shop"].model_state.startswith("fine-tuned v2")
    after = sorted(str(p.relative_to(home_models)) for p in home_models.rglob("*") if p.is_file() and p.name != ".lock")
    assert after == before and (shop / "model" / "current").is_file()  # copied whole: this plugin folder is not the home's
    env = {"AGENT_PLUGINS_PATH": str(plugin_root)}
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["--home", str(settings.home), "finetune", "shop", "--versions", "--json"], env=env).output)
    assert [(r["version"], r["status"]) for r in listed] == [("v1", "promoted"), ("v2", "current")]
    rolled = runner.invoke(cli, ["--home", str(settings.home), "finetune", str(shop), "--rollback"], env=env)
    assert rolled.exit_code == 0 and "from v2 to v1" in rolled.output
    assert fresh.reply("when are you open", plugin="shop").turn_id and fresh.runtimes["shop"].model_state.startswith("fine-tuned v1")


def test_an_old_model_folder_inside_the_home_is_moved(tmp_path: Path) -> None:
    home = tmp_path / "checkout"  # a checkout is its own home: plugins/NAME/model/ moves to models/NAME/
    plugin = home / "plugins" / "shop"
    (plugin / "model" / "v1").mkdir(parents=True)
    (plugin / "model" / "v1" / "config.json").write_text('{"labels": ["a", "b"]}')
    (plugin / "model" / "current").write_text("v1\n")

    class Manifest:
        name, folder = "shop", plugin

    versions = versions_for(home / "models", Manifest)
    assert versions.current() == "v1" and versions.current_labels() == ["a", "b"] and not (plugin / "model").exists()
    (plugin / "model").mkdir()  # an empty folder left behind is no model: nothing is taken over again
    assert versions_for(home / "models", Manifest).current() == "v1"


def test_an_old_model_folder_that_cannot_be_moved_is_copied(tmp_path: Path, monkeypatch) -> None:
    plugin = tmp_path / "plugins" / "rec"
    (plugin / "interest" / "v1").mkdir(parents=True)
    (plugin / "interest" / "v1" / "config.json").write_text("{}")
    (plugin / "interest" / "current").write_text("v1\n")
    (plugin / "interest" / "history.json").write_text('["v1"]')

    class Manifest:
        name, folder = "rec", plugin

    import errno
    import os

    import agent.models.versions as versions_module

    real_rename = os.rename

    def across_devices(src: str, dst: str) -> None:  # a read-only package folder, or another file system
        if Path(src) == plugin / "interest":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dst)

    monkeypatch.setattr(versions_module.os, "rename", across_devices)
    versions = versions_for(tmp_path / "home" / "models", Manifest, "interest")
    assert versions.root == tmp_path / "home" / "models" / "rec" / "interest"
    assert versions.current() == "v1" and versions.history() == ["v1"] and (plugin / "interest" / "current").is_file()


def test_items_logged_in_the_old_turns_column_move_into_the_extras(tmp_path: Path, settings: Settings,
                                                                    encoder: Encoder) -> None:
    store = Store(settings.db_path)
    store.db.execute("INSERT INTO conversations (id, started_at, last_at) VALUES ('c', 'then', 'then')")
    store.db.execute("ALTER TABLE turns ADD COLUMN items TEXT")  # what the old m008 added
    store.db.execute("INSERT INTO turns (conversation_id, created_at, text, reply, plugin, label, timings, items, user_id) "
                     "VALUES ('c', 'then', 'a card for travel', 'Like these:', 'shop', 'card_lost', '{}', "
                     "'[{\"id\": \"travel-card\", \"title\": \"Travel card\", \"reason\": \"\", \"score\": 0.5}]', 'c')")
    store.db.execute("DELETE FROM _migrations WHERE name = 'recommend.m010_items_in_extras'")
    store.close()
    agent = Agent(settings, encoder=encoder)
    assert agent.store.turn(1)["extras"] == {"shop": {"items": [{"id": "travel-card", "title": "Travel card", "reason": "",
                                                                 "score": 0.5}]}}
    assert item_feedback(agent, 1, "travel-card", "like") > 0
