"""`agent finetune` end to end on real plugins: the feedback loop, new labels, the gate, versions, hot swap."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import agent.cli.finetune  # noqa: F401  (registers the command)
import agent.cli.manage  # noqa: F401
from agent.cli.main import cli
from agent.learn.finetune import Options, finetune
from agent.models.finetuned import PROBE_WEIGHTS
from agent.models.versions import Versions
from agent.reply.agent import Agent
from agent.settings import Settings
from conftest import REPO, models_of

# Messages people might send, with the label a person gives them.
CORRECTIONS = [
    ("the hole in the wall kept my money", "atm_cash_not_dispensed"),
    ("my plastic got eaten by the machine and it's gone", "card_lost_or_stolen"),
    ("payment to the gym shows twice, I only went once", "unrecognised_transaction"),
    ("can I get a paper copy of what I spent last year", "statement_request"),
]
STABLE = [
    ("I lost my card, please block it", "card_lost_or_stolen"),
    ("my new card hasn't arrived yet", "card_not_arrived"),
    ("how do I change my PIN", "card_pin_change"),
    ("what time does the branch open on saturday", "branch_hours_location"),
    ("I want to open a savings account", "account_open"),
    ("the app keeps crashing", "app_issue"),
    ("how much does it cost to send money abroad", "transfer_fee"),
    ("I need to speak to a real person", "speak_to_human"),
]


@pytest.fixture
def cs(tmp_path: Path) -> Path:
    """A private copy of the customer_service plugin (its model folder is written by the tests)."""
    folder = tmp_path / "plugins" / "customer_service"
    shutil.copytree(REPO / "plugins" / "customer_service", folder, ignore=shutil.ignore_patterns("model"))
    return folder


@pytest.fixture
def cli_run(tmp_path: Path, cs: Path, encoder: object):
    """`agent --device cpu ...` with a temporary home that sees the copied plugin."""
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(cs.parent)}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--device", "cpu", *args], env=env)

    return invoke


def labels_of(agent: Agent, texts: list[str]) -> list[str]:
    """What the agent predicts for each text (each as its own conversation)."""
    return [agent.reply(t, plugin="customer_service").label for t in texts]


def test_feedback_loop_learns_corrections_and_keeps_what_was_right(tmp_path: Path, cs: Path, encoder, cli_run) -> None:
    settings = Settings(home=tmp_path / "home", plugin_paths=[cs.parent])
    agent = Agent(settings, encoder=encoder)
    wrong_before = [t for (t, want), got in zip(CORRECTIONS, labels_of(agent, [t for t, _ in CORRECTIONS])) if got != want]
    assert wrong_before, "the test needs messages the current model gets wrong"
    right_before = [t for (t, want), got in zip(STABLE, labels_of(agent, [t for t, _ in STABLE])) if got == want]
    assert len(right_before) >= 6
    for turn in agent.store.turns(limit=None):
        want = dict(CORRECTIONS).get(turn["text"])
        if want:
            assert cli_run("feedback", str(turn["id"]), "--label", want).exit_code == 0
    result = cli_run("finetune", str(cs), "--mode", "head", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "promoted" and report["data"]["log_rows"] == len(CORRECTIONS)
    assert (models_of(tmp_path / "home", "customer_service") / report["version"] / "report.md").is_file()
    fresh = Agent(settings, encoder=encoder)
    assert labels_of(fresh, [t for t, _ in CORRECTIONS]) == [want for _, want in CORRECTIONS]
    after = dict(zip([t for t, _ in STABLE], labels_of(fresh, [t for t, _ in STABLE])))
    assert all(after[t] == dict(STABLE)[t] for t in right_before)
    runs = fresh.store.finetune_runs("customer_service")
    assert runs[0]["version"] == report["version"] and runs[0]["status"] == "promoted"


def test_new_label_from_the_log_is_learned_by_full_finetune_and_hot_swapped(plugin_root: Path, settings: Settings, encoder) -> None:
    agent = Agent(settings, encoder=encoder)
    crypto = ["can I buy bitcoin with my account", "do you support crypto wallets", "how do I sell my ethereum",
              "is buying cryptocurrency allowed", "transfer my bitcoin to the exchange"]
    for text in crypto:
        reply = agent.reply(text, plugin="shop")
        agent.feedback(reply.turn_id, label="crypto", new_label=True)
    assert agent.reply("can I buy bitcoin with my account", plugin="shop").label != "crypto"
    result = finetune(plugin_root / "shop", settings, Options(mode="full", device="cpu", epochs=6), encoder=encoder)
    assert result.status == "promoted" and result.report["data"]["new_labels"] == ["crypto"]
    assert result.report["run"]["mode"] == "full" and result.report["run"]["device"] == "cpu"
    reply = agent.reply("I want to buy some bitcoin", plugin="shop")  # same Agent: hot swap, no restart
    assert reply.label == "crypto" and reply.fallback_reason is None
    assert agent.runtimes["shop"].model_state.startswith("fine-tuned v1")
    assert agent.reply("I lost my card", plugin="shop").label == "card_lost"  # old labels kept
    model = agent.runtimes["shop"].classifier  # its weight against the probe was chosen on the held-out rows
    assert model.config["tuned_weight"] in PROBE_WEIGHTS and model.uses_probe == (model.tuned_weight < 1.0)
    assert any("chose" in note for note in result.report["run"]["notes"])


def test_worse_candidate_is_not_promoted_unless_forced_and_rollback(cs: Path, tmp_path: Path, encoder) -> None:
    settings = Settings(home=tmp_path / "home", plugin_paths=[cs.parent])
    first = finetune(cs, settings, Options(mode="head", device="cpu"), encoder=encoder)
    assert first.status == "promoted" and Versions(models_of(tmp_path / "home", "customer_service")).current() == "v1"
    wrecked = Options(mode="full", device="cpu", epochs=0.2, lr=0.5)  # a learning rate that ruins the encoder
    second = finetune(cs, settings, wrecked, encoder=encoder)
    assert second.status == "rejected" and Versions(models_of(tmp_path / "home", "customer_service")).current() == "v1"
    ev = second.report["evaluation"]
    assert ev["candidate"]["accuracy"] < ev["current"]["accuracy"] - 0.01 and ev["f1_drops"]
    wrecked.force = True
    forced = finetune(cs, settings, wrecked, encoder=encoder)
    assert forced.status == "promoted" and "--force" in forced.report["decision"]
    assert Versions(models_of(tmp_path / "home", "customer_service")).current() == "v3"
    runner = CliRunner()
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(cs.parent)}
    result = runner.invoke(cli, ["finetune", str(cs), "--rollback"], env=env)
    assert result.exit_code == 0 and "from v3 to v1" in result.output
    assert Versions(models_of(tmp_path / "home", "customer_service")).current() == "v1"
    listed = json.loads(runner.invoke(cli, ["finetune", str(cs), "--versions", "--json"], env=env).stdout)
    assert [(r["version"], r["status"]) for r in listed] == [("v1", "current"), ("v2", "rejected"), ("v3", "promoted")]


def test_cancel_leaves_nothing_behind(plugin_root: Path, settings: Settings, encoder) -> None:
    from agent.learn.trainer import Cancelled

    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 3

    finetune(plugin_root / "shop", settings, Options(mode="head", device="cpu"), encoder=encoder)
    with pytest.raises(Cancelled):
        finetune(plugin_root / "shop", settings, Options(mode="full", device="cpu", epochs=5), encoder=encoder,
                 cancel=cancel)
    assert len(calls) == 4  # it asked before every batch and stopped at the first yes
    model = models_of(settings.home, "shop")
    assert Versions(models_of(settings.home, "shop")).current() == "v1" and Versions(models_of(settings.home, "shop")).finished() == ["v1"]
    assert not [p for p in model.iterdir() if p.name.startswith(".partial")]


def _agent_env(tmp_path: Path, plugin_root: Path) -> dict[str, str]:
    """Environment for an `agent` subprocess on the tiny plugin."""
    return {**os.environ, "AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(plugin_root),
            "PYTHONUNBUFFERED": "1"}


def test_kill_9_during_training_keeps_current_and_next_run_cleans_up(plugin_root: Path, settings: Settings,
                                                                    tmp_path: Path, encoder) -> None:
    shop = plugin_root / "shop"
    finetune(shop, settings, Options(mode="head", device="cpu"), encoder=encoder)
    env = _agent_env(tmp_path, plugin_root)
    cmd = [sys.executable, "-m", "agent", "--device", "cpu", "finetune", str(shop), "--mode", "full", "--epochs", "200"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until training has begun
        if b"training full on cpu" in line:
            break
    time.sleep(2)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(models_of(settings.home, "shop").glob(".partial-*"))
    assert Versions(models_of(settings.home, "shop")).current() == "v1"
    assert Agent(settings, encoder=encoder).reply("I lost my card", plugin="shop").label == "card_lost"
    again = finetune(shop, settings, Options(mode="head", device="cpu"), encoder=encoder)
    assert again.version == "v2" and not list(models_of(settings.home, "shop").glob(".partial-*"))


def test_running_plain_chat_uses_a_newly_promoted_model(plugin_root: Path, settings: Settings, tmp_path: Path, encoder) -> None:
    env = _agent_env(tmp_path, plugin_root)
    chat = subprocess.Popen([sys.executable, "-m", "agent", "--device", "cpu", "chat", "--plain", "--plugin", "shop"],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert chat.stdin is not None
    chat.stdin.write(b"I lost my card\n")
    chat.stdin.flush()
    deadline = time.time() + 120
    while Agent(settings, encoder=encoder).store.turns(limit=1) == [] and time.time() < deadline:
        time.sleep(0.2)
    result = finetune(plugin_root / "shop", settings, Options(mode="head", device="cpu"), encoder=encoder)
    assert result.status == "promoted"
    out, err = chat.communicate(b"when are you open\n/quit\n", timeout=120)
    assert chat.returncode == 0, err.decode()
    assert "shop: now using fine-tuned v1 (head)" in err.decode()
    assert out.decode().count("opening_hours") >= 1


def test_lora_version_stores_only_adapters_and_reloads(plugin_root: Path, settings: Settings, encoder) -> None:
    from agent.models.finetuned import TunedClassifier

    result = finetune(plugin_root / "shop", settings, Options(mode="lora", device="cpu", epochs=2), encoder=encoder)
    folder = result.folder
    assert result.status == "promoted" and (folder / "adapter" / "adapter_model.safetensors").is_file()
    assert not (folder / "encoder").exists()
    assert (folder / "adapter" / "adapter_model.safetensors").stat().st_size < 5_000_000
    texts = ["I lost my card", "when are you open"]
    model = TunedClassifier.load(folder)
    probs = model.predict_proba(texts, encoder.encode(texts))
    assert [model.labels[i] for i in probs.argmax(1)] == ["card_lost", "opening_hours"]
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"tampered")
    with pytest.raises(Exception, match="do not match config.json"):
        TunedClassifier.load(folder)


def test_report_threshold_and_histogram() -> None:
    from agent.learn import report

    conf = [0.95, 0.9, 0.85, 0.5, 0.45, 0.3, 0.2, 0.1]
    right = [True, True, True, True, False, False, False, True]
    hist = report.histogram(conf, right)
    assert sum(b["correct"] + b["wrong"] for b in hist) == len(conf) and hist[9]["correct"] == 2
    assert report.suggest_threshold(conf, right) == 0.5  # below 0.5, answers are wrong more often than right
    drops = report.f1_drops({"per_label": {"a": {"f1": 0.5}, "b": {"f1": 0.9}}},
                            {"per_label": {"a": {"f1": 0.8}, "b": {"f1": 0.9}}})
    assert drops == [{"label": "a", "current_f1": 0.8, "candidate_f1": 0.5, "drop": 0.3}]


def test_gate_needs_rows_to_replace_a_current_version() -> None:
    from agent.learn.versioned_run import gate

    empty = {"candidate": {"n": 0, "accuracy": 0.0}, "current": {"n": 0, "accuracy": 0.0}}
    assert gate(empty, Options(), has_current=False)[0] is True
    assert gate(empty, Options(), has_current=True)[0] is False
    assert gate(empty, Options(force=True), has_current=True)[0] is True
    close = {"candidate": {"n": 100, "accuracy": 0.895}, "current": {"n": 100, "accuracy": 0.90}}
    assert gate(close, Options(tolerance=0.01), has_current=True)[0] is True
    assert gate(close, Options(tolerance=0.001), has_current=True)[0] is False


def test_a_broken_new_model_is_reported_and_the_old_one_keeps_answering(plugin_root: Path, settings: Settings, encoder) -> None:
    shop = plugin_root / "shop"
    finetune(shop, settings, Options(mode="head", device="cpu"), encoder=encoder)
    notes: list[str] = []
    agent = Agent(settings, encoder=encoder, notify=notes.append)
    assert agent.reply("I lost my card", plugin="shop").label == "card_lost"
    shutil.copytree(models_of(settings.home, "shop") / "v1", models_of(settings.home, "shop") / "v2")
    (models_of(settings.home, "shop") / "v2" / "model.safetensors").write_bytes(b"not weights")
    Versions(models_of(settings.home, "shop")).promote("v2")
    reply = agent.reply("when are you open", plugin="shop")
    assert reply.label == "opening_hours"
    assert any("could not be loaded" in n and "still using fine-tuned v1" in n for n in notes)


def test_left_to_choose_the_mode_it_keeps_the_head_when_training_hurts(cs: Path, tmp_path: Path, encoder) -> None:
    settings = Settings(home=tmp_path / "home", plugin_paths=[cs.parent])
    result = finetune(cs, settings, Options(device="cpu", epochs=0.2, lr=0.5), encoder=encoder)  # ruinous lr
    assert result.status == "promoted" and result.report["run"]["mode"] == "head"
    assert any(n.startswith("kept mode head") for n in result.report["run"]["notes"])
    assert not (result.folder / "encoder").exists()
