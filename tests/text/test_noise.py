"""Noisy text: reproducible typo and casing noise, noisy copies in fine-tuning, and `agent eval --noise`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

import agent.cli.manage  # noqa: F401  (registers `agent eval`)
from agent.cli.main import cli
from agent.learn.finetune import Options, finetune
from agent.models.encoder import Encoder
from agent.settings import Settings
from agent.text.noise import noisy, perturb
from conftest import EXAMPLES, make_plugin, write_csv

TEXT = "Please block my debit card, I think it was stolen at the station yesterday evening"


def test_noise_is_reproducible_and_near_its_rate() -> None:
    assert noisy([TEXT] * 3, 0.1, seed=4) == noisy([TEXT] * 3, 0.1, seed=4)
    assert perturb(TEXT, 0.0) == TEXT
    changed = [perturb(TEXT, 0.1, random.Random(i)) != TEXT for i in range(200)]
    assert 0.8 < sum(changed) / len(changed) <= 1.0  # ~70 letters at 10%: almost every copy has a typo
    heavy = perturb(TEXT, 0.5, random.Random(1))
    assert heavy != TEXT and abs(len(heavy) - len(TEXT)) < 0.5 * len(TEXT)
    with pytest.raises(ValueError, match="from 0 to 1"):
        perturb(TEXT, 1.5)


def test_finetune_with_noise_trains_on_noisy_copies(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    make_plugin(root)
    settings = Settings(home=tmp_path / "home", plugin_paths=[root])
    result = finetune(root / "shop", settings, Options(mode="head", device="cpu", noise=0.1, holdout=0.0), encoder=encoder)
    data = result.report["data"]
    assert data["noise"] == 0.1 and data["noisy_rows"] == data["train_rows"] > 0
    learned = (result.folder / "learned.jsonl").read_text() if (result.folder / "learned.jsonl").exists() else ""
    assert learned.strip() == ""  # noisy copies are training rows, not turns the model "learned"


def test_eval_reports_accuracy_with_noise_beside_clean(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    make_plugin(root)
    rows = [(t, lab) for lab, ts in EXAMPLES.items() for t in ts]
    data = write_csv(tmp_path / "test.csv", ["text", "label"], rows)
    out = tmp_path / "report.json"
    env = {"AGENT_HOME": str(tmp_path / "home"), "AGENT_PLUGINS_PATH": str(root)}
    result = CliRunner().invoke(cli, ["--device", "cpu", "eval", str(root / "shop"), "--data", str(data),
                                      "--noise", "0.3", "--json", str(out)], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["noisy"]["noise"] == 0.3 and report["noisy"]["n"] == report["n"] == len(rows)
    assert 0.0 <= report["noisy"]["accuracy"] <= 1.0 and "accuracy with 30% noise" in result.output
