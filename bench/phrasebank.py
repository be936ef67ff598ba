"""Financial PhraseBank (50% agreement): a stratified 80/20 split with a fixed seed, a plugin built from the
80% with `agent new-plugin`, `agent finetune`, then `agent eval` on the 20%, before and after.

Real commands, in a scratch folder outside the project. The data is read from ../shared/data.
Usage: python bench/phrasebank.py [--seed 0] [--agree 50] [--work DIR] [-- extra finetune options]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

from common import SHARED_DATA, run, write_pairs

DATA = SHARED_DATA / "financial_phrasebank"
LABELS = ("positive", "neutral", "negative")


def read(agree: str) -> list[tuple[str, str]]:
    """(sentence, label) rows of one agreement level; the files are ISO-8859-1, `sentence@label`."""
    rows = []
    for line in (DATA / f"Sentences_{agree}Agree.txt").read_text(encoding="iso-8859-1").splitlines():
        text, sep, label = line.strip().rpartition("@")
        if sep and label in LABELS:
            rows.append((text.strip(), label))
    return rows


def split(rows: list[tuple[str, str]], seed: int, test_share: float = 0.2) -> tuple[list, list]:
    """Stratified split: the same share of each label goes to the test set, drawn with `seed`."""
    rng, train, test = random.Random(seed), [], []
    for label in sorted({lab for _, lab in rows}):
        group = [r for r in rows if r[1] == label]
        rng.shuffle(group)
        cut = round(len(group) * test_share)
        test += group[:cut]
        train += group[cut:]
    rng.shuffle(train)
    return train, test


def evaluate(plugin: Path, test: Path, report: Path, env: dict[str, str]) -> dict:
    """`agent eval` on the test split; its JSON report."""
    run(["agent", "eval", str(plugin), "--data", str(test), "--json", str(report)], env)
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agree", default="50", choices=["50", "66", "75", "All"])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("finetune_args", nargs="*", help="passed to agent finetune (after --)")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/financial_phrasebank beside the project")
    work = args.work or Path(tempfile.gettempdir()) / f"agent-bench-phrasebank-{args.agree}"
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "AGENT_HOME": str(work / "home")}
    train, test = split(read(args.agree), args.seed)
    plugin = work / "plugins" / "phrasebank"
    run(["agent", "new-plugin", str(plugin), "--examples", str(write_pairs(work / "train.csv", train))], env)
    test_csv = write_pairs(work / "test.csv", test)
    before = evaluate(plugin, test_csv, work / "eval-before.json", env)
    t_ft = run(["agent", "finetune", str(plugin), "--json", *args.finetune_args], env)
    after = evaluate(plugin, test_csv, work / "eval-after.json", env)
    version = (work / "home" / "models" / plugin.name / "current").read_text().strip()
    ft = json.loads((work / "home" / "models" / plugin.name / version / "report.json").read_text())
    summary = {
        "agree": args.agree, "seed": args.seed, "train_rows": len(train), "test_rows": len(test),
        "mode": ft["run"]["mode"], "device": ft["run"]["device"], "epochs": ft["run"]["epochs"],
        "finetune_seconds_wall": round(t_ft, 1),
        "test_accuracy_before": before["accuracy"], "test_macro_f1_before": before["macro_f1"],
        "test_accuracy_after": after["accuracy"], "test_macro_f1_after": after["macro_f1"],
        "holdout_accuracy": ft["evaluation"]["candidate"]["accuracy"], "status": ft["status"],
    }
    print(json.dumps(summary, indent=2))
    (work / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
