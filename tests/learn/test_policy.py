"""A plugin's own fine-tune policy: [finetune] in plugin.toml, when it is due, and `agent finetune --due`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

import agent.cli.finetune  # noqa: F401  (registers the command)
from agent.cli.main import cli
from agent.errors import PluginError
from agent.learn import schedule
from agent.plugin.manifest import load_manifest
from agent.reply.agent import Agent
from agent.settings import Settings

POLICY = "\n[finetune]\nafter_labels = 2\nmin_hours = 0\nmode = \"head\"\n"


def with_policy(folder: Path, table: str = POLICY) -> Path:
    """Append a [finetune] table to a plugin's manifest."""
    path = folder / "plugin.toml"
    path.write_text(path.read_text() + table)
    return folder


def label_turns(agent: Agent, texts: list[tuple[str, str]]) -> None:
    """Ask each message and correct its label, as a person would."""
    for n, (text, label) in enumerate(texts):
        reply = agent.reply(text, conversation_id=f"p{n}", plugin="shop")
        agent.feedback(reply.turn_id, label=label)


@pytest.mark.parametrize("table, key", [
    ("\n[finetune]\nmode = \"fast\"\n", "finetune.mode"),
    ("\n[finetune]\nafter_labels = 0\n", "finetune.after_labels"),
    ("\n[finetune]\nmin_hours = \"daily\"\n", "finetune.min_hours"),
    ("\n[finetune]\nmax_minutes = -5\n", "finetune.max_minutes"),
    ("\n[finetune]\nmin_hours = inf\n", "finetune.min_hours"),
])
def test_a_bad_policy_names_the_file_and_the_key(plugin_root: Path, table: str, key: str) -> None:
    folder = with_policy(plugin_root / "shop", table)
    with pytest.raises(PluginError, match=rf"plugin.toml: key '{key}' must be"):
        load_manifest(folder)


def test_a_misspelt_policy_key_is_refused_with_the_likely_one(plugin_root: Path) -> None:
    folder = with_policy(plugin_root / "shop", "\n[finetune]\nafter_label = 5\n")
    with pytest.raises(PluginError, match=r"plugin.toml:\d+: unknown key 'after_label' in \[finetune\]; did you mean 'after_labels'"):
        load_manifest(folder)


def test_a_policy_is_due_after_enough_new_labels_and_not_again_too_soon(plugin_root: Path, settings: Settings,
                                                                        encoder: object) -> None:
    manifest = load_manifest(with_policy(plugin_root / "shop", POLICY.replace("min_hours = 0", "min_hours = 12")))
    agent = Agent(settings, encoder=encoder)
    assert not schedule.check(manifest, agent.store).due
    label_turns(agent, [("my wallet was taken with my card in it", "card_lost")])
    first = schedule.check(manifest, agent.store)
    assert (first.due, first.new_labels, first.reason) == (False, 1, "1 of 2 new labelled turns")
    label_turns(agent, [("do you open late on thursdays", "opening_hours")])
    assert schedule.check(manifest, agent.store).due
    agent.store.log_finetune_run({"plugin": "shop", "started_at": datetime.now(timezone.utc).isoformat(), "status": "promoted"})
    assert schedule.check(manifest, agent.store).new_labels == 0  # counted from the last run on
    label_turns(agent, [("card gone, please block it", "card_lost"), ("money back for a broken kettle", "refund")])
    soon = schedule.check(manifest, agent.store)
    assert not soon.due and "less than 12 h ago" in soon.reason
    later = schedule.check(manifest, agent.store, now=datetime.now(timezone.utc) + timedelta(hours=13))
    assert later.due and later.new_labels == 2


def test_finetune_due_runs_only_due_plugins_with_their_policy_and_records_the_trigger(
        plugin_root: Path, settings: Settings, encoder: object) -> None:
    from conftest import make_plugin

    with_policy(plugin_root / "shop")
    make_plugin(plugin_root, "quiet")  # no policy: never run by --due
    agent = Agent(settings, encoder=encoder)
    label_turns(agent, [("my wallet was taken with my card in it", "card_lost"),
                        ("do you open late on thursdays", "opening_hours")])
    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(plugin_root)}
    first = CliRunner().invoke(cli, ["--device", "cpu", "finetune", "--due", "--json"], env=env)
    assert first.exit_code == 0, first.output
    rows = {r["plugin"]: r for r in json.loads(first.stdout)}
    assert rows["shop"]["due"] and rows["shop"]["status"] == "promoted" and rows["shop"]["mode"] == "head"
    assert not rows["quiet"]["due"] and "no [finetune] policy" in rows["quiet"]["reason"]
    runs = agent.store.finetune_runs("shop")
    assert [(r["trigger"], r["mode"]) for r in runs] == [("policy", "head")]
    again = CliRunner().invoke(cli, ["--device", "cpu", "finetune", "--due", "--json"], env=env)
    assert not {r["plugin"]: r for r in json.loads(again.stdout)}["shop"]["due"]
    assert len(agent.store.finetune_runs("shop")) == 1


def test_finetune_without_a_plugin_or_due_says_what_to_give(settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["finetune"], env={"AGENT_HOME": str(settings.home)})
    assert result.exit_code == 2 and "--due" in result.output


def test_a_failed_policy_run_counts_as_the_last_run_and_the_others_still_run(
        plugin_root: Path, settings: Settings, encoder: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.errors import AgentError
    from agent.learn import finetune as ft
    from conftest import make_plugin

    with_policy(plugin_root / "shop")
    with_policy(make_plugin(plugin_root, "depot"))
    agent = Agent(settings, encoder=encoder)
    for name in ("shop", "depot"):
        for n, (text, label) in enumerate([("my wallet was taken with my card in it", "card_lost"),
                                           ("do you open late on thursdays", "opening_hours")]):
            agent.feedback(agent.reply(text, conversation_id=f"{name}{n}", plugin=name).turn_id, label=label)
    real = ft.finetune

    def broken_shop(plugin_dir: Path, *args: object, **kw: object) -> object:
        if Path(plugin_dir).name == "shop":
            raise AgentError("disk full")
        return real(plugin_dir, *args, **kw)

    monkeypatch.setattr(ft, "finetune", broken_shop)
    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(plugin_root)}
    result = CliRunner().invoke(cli, ["--device", "cpu", "finetune", "--due", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = {r["plugin"]: r for r in json.loads(result.stdout)}
    assert (rows["shop"]["status"], rows["shop"]["error"]) == ("failed", "disk full")
    assert rows["depot"]["status"] == "promoted"
    [failed] = agent.store.finetune_runs("shop")
    assert (failed["status"], failed["trigger"]) == ("failed", "policy")
    manifest = load_manifest(plugin_root / "shop")
    assert not schedule.check(manifest, agent.store).due  # it waits for new labels like after any run


def test_a_kind_with_its_own_model_is_not_run_by_a_policy(plugin_root: Path, settings: Settings, encoder: object) -> None:
    manifest = load_manifest(with_policy(plugin_root / "shop"))
    agent = Agent(settings, encoder=encoder)
    label_turns(agent, [("my wallet was taken with my card in it", "card_lost"), ("do you open late on thursdays", "opening_hours")])
    due = schedule.check(manifest, agent.store, own_model=True)
    assert not due.due and "trains a model of its own" in due.reason


def test_accepting_the_suggested_threshold_overrides_the_manifest_until_rejected(
        plugin_root: Path, settings: Settings, encoder: object) -> None:
    from agent.learn.finetune import Options, finetune

    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(plugin_root)}
    none_yet = CliRunner().invoke(cli, ["finetune", "shop", "--accept-threshold"], env=env)
    assert none_yet.exit_code == 1 and "no fine-tuned version yet" in none_yet.output and "agent finetune shop" in none_yet.output
    agent = Agent(settings, encoder=encoder)
    result = finetune(plugin_root / "shop", settings, Options(mode="head", device="cpu", holdout=0.3), encoder=encoder)
    suggested = result.report["evaluation"]["suggested_min_confidence"]
    assert isinstance(suggested, float) and suggested != 0.30  # the tiny plugin's manifest says 0.30
    agent.reply("I lost my card", "before")
    assert agent.runtimes["shop"].thresholds.min_confidence == 0.30
    done = CliRunner().invoke(cli, ["finetune", "shop", "--accept-threshold", "--json"], env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["min_confidence"] == suggested
    assert (settings.home / "models" / "shop" / "thresholds.json").is_file()
    agent.reply("I lost my card", "after")  # a running agent picks it up before the turn
    assert agent.runtimes["shop"].thresholds.min_confidence == suggested
    assert load_manifest(plugin_root / "shop").thresholds.min_confidence == 0.30  # the plugin folder is untouched
    back = CliRunner().invoke(cli, ["finetune", "shop", "--reject-threshold"], env=env)
    assert back.exit_code == 0 and "the manifest's" in back.output
    agent.reply("I lost my card", "again")
    assert agent.runtimes["shop"].thresholds.min_confidence == 0.30


def test_rolling_back_drops_the_threshold_accepted_from_the_version_left(
        plugin_root: Path, settings: Settings, encoder: object) -> None:
    from agent.learn.finetune import Options, finetune

    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(plugin_root)}
    for _ in range(2):
        finetune(plugin_root / "shop", settings, Options(mode="head", device="cpu", holdout=0.3, force=True), encoder=encoder)
    assert CliRunner().invoke(cli, ["finetune", "shop", "--accept-threshold"], env=env).exit_code == 0
    both = CliRunner().invoke(cli, ["finetune", "shop", "--rollback", "--accept-threshold"], env=env)
    assert both.exit_code == 2 and "--accept-threshold and --rollback do different things" in both.output
    back = CliRunner().invoke(cli, ["finetune", "shop", "--rollback"], env=env)
    assert back.exit_code == 0, back.output
    assert "rolled back from v2 to v1" in back.output and "accepted from v2" in back.output
    assert not (settings.home / "models" / "shop" / "thresholds.json").exists()  # the manifest's min_confidence again


def test_a_plugin_named_whose_manifest_does_not_load_is_reported_with_the_reason(
        plugin_root: Path, settings: Settings) -> None:
    with_policy(plugin_root / "shop", "\n[finetune]\nafter_labels = 0\n")
    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(plugin_root)}
    for args in (["finetune", "shop", "--versions"], ["review", "shop"]):
        result = CliRunner().invoke(cli, ["--device", "cpu", *args], env=env)
        assert result.exit_code != 0 and "key 'finetune.after_labels'" in result.output, (args, result.output)
        assert "neither a plugin folder" not in result.output


def test_finetune_due_names_a_plugin_whose_policy_does_not_load(plugin_root: Path, settings: Settings) -> None:
    with_policy(plugin_root / "shop", "\n[finetune]\nafter_labels = \"ten\"\n")
    env = {"AGENT_HOME": str(settings.home), "AGENT_PLUGINS_PATH": str(plugin_root)}
    result = CliRunner().invoke(cli, ["--device", "cpu", "finetune", "--due", "--json"], env=env)
    assert result.exit_code == 0, result.output
    [row] = [r for r in json.loads(result.stdout) if r.get("skipped")]
    assert row["plugin"].endswith("shop") and "key 'finetune.after_labels' must be a whole number" in row["reason"]
