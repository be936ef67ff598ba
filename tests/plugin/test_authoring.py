"""Making plugins: `agent new-plugin` samples and zero-shot plugins, installed plugin packages found
through their entry point, and AGENT_LOAD_PLUGINS."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import (
    manage,  # noqa: F401  (register the built-in commands)
)
from agent.cli.main import cli
from agent.models.encoder import Encoder
from agent.reply.agent import Agent
from agent.settings import Settings
from conftest import make_plugin, write_csv

PKG_HOOKS = '''
from agent import hookimpl

@hookimpl
def build_reply(answer):
    return "[from the package] " + answer
'''
PKG_MANIFEST = '''
name = "returns"
description = "Returns desk shipped as a package"

[labels]
return_item = "Send an item back and return it"
refund_status = "When the refund for a return arrives"
'''


def wheel(tmp_path: Path) -> Path:
    """A real wheel of a plugin package that declares the `agent.plugins` entry point."""
    files = {"agent_returns/__init__.py": PKG_HOOKS, "agent_returns/plugin.toml": PKG_MANIFEST}
    return wheel_of(tmp_path, "agent_returns", "agent-returns", "returns", files)


def wheel_of(tmp_path: Path, module: str, dist: str, entry: str, files: dict[str, str]) -> Path:
    """A real wheel of package `dist` holding `files`, with the entry point `entry = module` in `agent.plugins`."""
    info = f"{module}-0.1.0.dist-info"
    files = {**files,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             f"{info}/entry_points.txt": f"[agent.plugins]\n{entry} = {module}\n"}
    record = [f"{name},sha256={_digest(text)},{len(text.encode())}" for name, text in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,", ""])
    path = tmp_path / f"{module}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def _digest(text: str) -> str:
    """RECORD's urlsafe base64 sha256."""
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the plugin package is pip-installed into (kept off the main environment)."""
    tmp = tmp_path_factory.mktemp("pkg")
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel(tmp))], check=True)
    return target


def agent_cli(args: list[str], home: Path, site: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m agent ARGS` with the package's folder on the path."""
    full = {**os.environ, "PYTHONPATH": str(site), "AGENT_HOME": str(home), **env}
    full.pop("AGENT_PLUGINS_PATH", None)
    return subprocess.run([sys.executable, "-m", "agent", *args], env=full, capture_output=True, text=True, timeout=300)


def test_installed_package_is_discovered_through_its_entry_point(site: Path, tmp_path: Path) -> None:
    listed = agent_cli(["plugins", "--json"], tmp_path / "home", site)
    assert listed.returncode == 0, listed.stderr
    plugin = next(p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "returns")
    assert plugin["source"] == "package agent-returns 0.1.0 (entry point returns = agent_returns)"
    assert plugin["hooks"] == ["build_reply"] and plugin["labels"] == 2
    asked = agent_cli(["ask", "--plugin", "returns", "--json", "how do I send these shoes back?"], tmp_path / "home", site,
                      AGENT_LOAD_PLUGINS="returns")
    reply = json.loads(asked.stdout)
    assert reply["label"] == "return_item" and reply["text"].startswith("[from the package] ")


def test_load_plugins_env_limits_what_loads(site: Path, tmp_path: Path) -> None:
    listed = agent_cli(["plugins", "--json"], tmp_path / "home", site, AGENT_LOAD_PLUGINS="customer_service")
    data = json.loads(listed.stdout)
    assert [p["name"] for p in data["plugins"]] == ["customer_service"]
    reasons = " ".join(s["reason"] for s in data["skipped"])
    assert "package agent-returns 0.1.0" in reasons and "AGENT_LOAD_PLUGINS lists only customer_service" in reasons


def test_new_plugin_sample_is_listed_answers_and_its_test_passes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    made = runner.invoke(cli, ["--home", str(home), "new-plugin", "returns"], env={"AGENT_PLUGINS_PATH": ""})
    assert made.exit_code == 0, made.output
    folder = home / "plugins" / "returns"
    assert sorted(p.name for p in folder.iterdir()) == ["examples.csv", "faq.csv", "hooks.py", "plugin.toml", "test_returns.py"]
    listed = json.loads(runner.invoke(cli, ["--home", str(home), "plugins", "--json"]).output)
    assert "returns" in [p["name"] for p in listed["plugins"]]
    asked = runner.invoke(cli, ["--home", str(home), "ask", "--plugin", "returns", "--json", "can I talk to a human please"],
                          env={"AGENT_LOAD_PLUGINS": "returns"})
    assert json.loads(asked.stdout)["label"] == "talk_to_person"
    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert tested.returncode == 0 and "4 passed" in tested.stdout, tested.stdout + tested.stderr


def test_observer_sample_labels_every_turn(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    make_plugin(root)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "new-plugin", str(root / "tone"), "--role", "observer",
                                      "--no-build"])
    assert result.exit_code == 0, result.output
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[root]), encoder=encoder)
    reply = agent.reply("someone is stealing money from my account right now")
    assert reply.plugin == "shop" and reply.annotations["tone"]["label"] == "urgent"
    assert agent.store.turn(reply.turn_id)["annotations"]["tone"]["label"] == "urgent"
    assert agent.reply("what are your opening hours").annotations["tone"]["label"] == "routine"


def test_zero_shot_from_descriptions_then_examples_improve_it(tmp_path: Path, encoder: Encoder) -> None:
    labels = write_csv(tmp_path / "labels.csv", ["label", "description"], [
        ("track_order", "Where my order is and when it arrives"), ("return_item", "Send an item back"),
        ("cancel_order", "Cancel an order before it ships")])
    tests = [("where's my parcel?", "track_order"), ("I'd like to send this jumper back", "return_item"),
             ("please stop my order, I don't want it", "cancel_order"), ("has my package shipped yet", "track_order")]
    runner = CliRunner()
    plugin = tmp_path / "plugins" / "desk"
    made = runner.invoke(cli, ["--home", str(tmp_path / "home"), "new-plugin", str(plugin), "--labels", str(labels)])
    assert made.exit_code == 0, made.output
    assert "\n[data]\n" not in (plugin / "plugin.toml").read_text()
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[plugin.parent]), encoder=encoder)
    zero = gold_probabilities(agent.load_runtime(plugin), tests)
    assert min(zero) > 0.5  # so every test message is classified right from the descriptions alone
    examples = write_csv(tmp_path / "ex.csv", ["text", "label"], [
        ("where is my order", "track_order"), ("when will my parcel arrive", "track_order"),
        ("how do I return an item", "return_item"), ("I want to send it back", "return_item"),
        ("cancel my order please", "cancel_order"), ("I ordered by mistake, cancel it", "cancel_order")])
    few = tmp_path / "plugins" / "desk5"
    assert runner.invoke(cli, ["--home", str(tmp_path / "home"), "new-plugin", str(few), "--labels", str(labels),
                               "--examples", str(examples), "--no-build"]).exit_code == 0
    better = gold_probabilities(agent.load_runtime(few), tests)
    assert sum(better) > sum(zero)
    data = write_csv(tmp_path / "test.csv", ["text", "label"], tests)
    report = runner.invoke(cli, ["--home", str(tmp_path / "home"), "eval", str(plugin), "--data", str(data), "--json", "-"])
    assert json.loads(report.stdout)["accuracy"] == 1.0


def gold_probabilities(runtime, tests: list[tuple[str, str]]) -> list[float]:
    """The probability the plugin gives each test message's right label."""
    probs = runtime.classify(runtime.encoder.encode([t for t, _ in tests]), [t for t, _ in tests])
    return [float(p[runtime.labels.index(label)]) for p, (_, label) in zip(probs, tests)]


def test_labels_file_errors_name_the_row(tmp_path: Path) -> None:
    runner = CliRunner()
    dup = write_csv(tmp_path / "dup.csv", ["label", "description"], [("a", "one"), ("a", "two")])
    out = runner.invoke(cli, ["--home", str(tmp_path / "home"), "new-plugin", str(tmp_path / "p"), "--labels", str(dup)])
    assert out.exit_code == 1 and "dup.csv:3: label 'a' appears twice" in out.output
    good = write_csv(tmp_path / "labels.csv", ["label", "description"], [("a", "one"), ("b", "two")])
    ex = write_csv(tmp_path / "ex.csv", ["text", "label"], [("hello", "a"), ("bye", "c")])
    out = runner.invoke(cli, ["--home", str(tmp_path / "home"), "new-plugin", str(tmp_path / "p"), "--labels", str(good),
                              "--examples", str(ex)])
    assert out.exit_code == 1 and "label(s) ['c'] are not in" in out.output and not (tmp_path / "p").exists()


def test_new_plugin_refuses_a_taken_name_and_clashes_are_warned(tmp_path: Path) -> None:
    import shutil

    runner, home = CliRunner(), tmp_path / "home"
    env = {"AGENT_PLUGINS_PATH": "", "AGENT_LOAD_PLUGINS": "returns"}
    assert runner.invoke(cli, ["--home", str(home), "new-plugin", "returns", "--no-build"], env=env).exit_code == 0
    again = runner.invoke(cli, ["--home", str(home), "new-plugin", str(tmp_path / "other" / "returns")], env=env)
    assert again.exit_code == 1 and "a plugin named 'returns' already exists" in again.output
    assert not (tmp_path / "other").exists()
    shutil.copytree(home / "plugins" / "returns", tmp_path / "extra" / "returns")
    listed = runner.invoke(cli, ["--home", str(home), "plugins"], env={**env, "AGENT_PLUGINS_PATH": str(tmp_path / "extra")})
    assert f"warning: {home / 'plugins' / 'returns'} is not used: name 'returns' is already taken" in listed.output


BANK_FAQ = [  # a public-export-like FAQ: capitalised columns, no ids, the label in a column called Class
    ("How do I block my card?", "Open the app, go to Cards and tap Freeze; the block is instant.", "cards"),
    ("I lost my debit card. What should I do?", "Freeze the card in the app and order a new one under Cards > Replace.", "cards"),
    ("How do I change my card PIN?", "You can change your PIN at any of our cash machines under PIN services.", "cards"),
    ("When will my new card arrive?", "A new card arrives within 5 working days of the order.", "cards"),
    ("How do I send money abroad?", "Choose Payments > International, add the recipient's IBAN and confirm.", "transfers"),
    ("How long does a bank transfer take?", "Transfers in pounds arrive within 2 hours, international ones in 2 days.", "transfers"),
    ("Can I cancel a transfer I already sent?", "A transfer can be cancelled in the app until it shows as Sent.", "transfers"),
    ("What is my daily transfer limit?", "The daily limit is 10,000 pounds; raise it under Settings > Limits.", "transfers"),
    ("How do I open a savings account?", "Tap Accounts > Open new > Savings; it takes about five minutes.", "accounts"),
    ("How can I close my account?", "Call us or visit a branch; we move the balance to an account you name.", "accounts"),
    ("Where can I find my statements?", "Statements for the last 7 years are under Accounts > Statements.", "accounts"),
    ("How do I change my address?", "Update your address under Profile > Personal details.", "accounts"),
]


def bank_cli(tmp_path: Path, *args: str):
    """`agent --device cpu ARGS` with a temporary home that sees only the plugins made under tmp_path/plugins."""
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(tmp_path / "plugins"),
           "AGENT_LOAD_PLUGINS": "bank_faq"}
    return CliRunner().invoke(cli, ["--device", "cpu", *args], env=env)


def test_a_foreign_faq_export_makes_a_plugin_in_one_command(tmp_path: Path, encoder: Encoder) -> None:
    faq = write_csv(tmp_path / "faq.csv", ["Question", "Answer", "Class"], BANK_FAQ)
    folder = tmp_path / "plugins" / "bank_faq"
    made = bank_cli(tmp_path, "new-plugin", str(folder), "--examples", str(faq), "--text-column", "Question",
                    "--label-column", "Class", "--faq", str(faq))
    assert made.exit_code == 0, made.output
    assert "bank_faq: 3 labels, 12 examples" in made.output
    with open(folder / "faq.csv", newline="", encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert [r["id"] for r in written] == [f"faq-{n:04d}" for n in range(1, 13)]
    assert [(r["question"], r["answer"], r["label"]) for r in written] == BANK_FAQ
    for n in (1, 6, 11):  # one of its own questions per class: that entry's answer, with its class
        question, answer, label = BANK_FAQ[n - 1]
        reply = json.loads(bank_cli(tmp_path, "ask", "--plugin", "bank_faq", "--json", question).stdout)
        assert (reply["text"], reply["label"], reply["answer_id"]) == (answer, label, f"faq-{n:04d}")
    reply = json.loads(bank_cli(tmp_path, "ask", "--plugin", "bank_faq", "--json", "someone stole my debit card").stdout)
    assert reply["label"] == "cards" and reply["answer_id"] in {"faq-0001", "faq-0002"}


def test_faq_column_options_and_their_errors(tmp_path: Path) -> None:
    examples = write_csv(tmp_path / "ex.csv", ["Text", "Label"], [(q, c) for q, _, c in BANK_FAQ])
    faq = write_csv(tmp_path / "qa.csv", ["Ref", "Q", "A", "Kind"], [(f"r{i}", q, a, c) for i, (q, a, c) in enumerate(BANK_FAQ)])
    folder = str(tmp_path / "plugins" / "bank_faq")
    base = ("new-plugin", folder, "--examples", str(examples), "--faq", str(faq), "--no-build")
    bad = bank_cli(tmp_path, *base)
    assert bad.exit_code == 1 and f"{faq}: no column 'question'" in bad.output
    assert "['Ref', 'Q', 'A', 'Kind']" in bad.output and "--faq-question-column" in bad.output
    assert not (tmp_path / "plugins").exists()
    named = ("--faq-question-column", "Q", "--faq-answer-column", "a", "--faq-id-column", "ref", "--faq-label-column", "Kind")
    made = bank_cli(tmp_path, *base, *named)  # 'a' and 'ref' match whatever their case; Text/Label match text/label
    assert made.exit_code == 0, made.output
    with open(Path(folder) / "faq.csv", newline="", encoding="utf-8") as fh:
        assert [(r["id"], r["label"]) for r in csv.DictReader(fh)][:2] == [("r0", "cards"), ("r1", "cards")]
    assert 'label_column = "label"' in (Path(folder) / "plugin.toml").read_text()
    unnamed = bank_cli(tmp_path, "new-plugin", str(tmp_path / "p2"), "--examples", str(examples), "--faq-id-column", "id")
    assert unnamed.exit_code == 2 and "add --faq FILE" in unnamed.output


@pytest.mark.parametrize(("rows", "message"), [
    ([("How do I pay?", "Like this", "a"), ("Bye?", "Bye", "b"), ("how do  I PAY?", "Other", "a")],
     "dup.csv:4: question 'how do  I PAY?' is already on line 2"),
    ([("How do I pay?", "Like this", "a"), ("Bye?", "", "b")], "dup.csv:3: empty value in column 'Answer'"),
    ([("How do I pay?", "Like this", "a"), ("Bye?", "Bye", "c")], "dup.csv:3: label 'c' is not among the plugin's labels"),
])
def test_faq_rows_at_fault_are_named_by_line(tmp_path: Path, rows: list[tuple[str, str, str]], message: str) -> None:
    examples = write_csv(tmp_path / "ex.csv", ["text", "label"], [("how do I pay", "a"), ("goodbye", "b")])
    faq = write_csv(tmp_path / "dup.csv", ["Question", "Answer", "Class"], rows)
    out = bank_cli(tmp_path, "new-plugin", str(tmp_path / "p"), "--examples", str(examples), "--faq", str(faq),
                   "--faq-label-column", "Class", "--no-build")
    assert out.exit_code == 1 and message in out.output and not (tmp_path / "p").exists()
