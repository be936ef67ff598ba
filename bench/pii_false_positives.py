"""Redaction false positives: the share of ordinary messages that `redact()` changes, on the bundled plugins' data
and BANKING77's test set (Chinese sets too, when asked), with every changed message shown.

None of these messages holds personal data, so every change is a false positive. `--compare FILE` runs an
earlier pii.py beside today's on the same messages (e.g. `git show HEAD~1:agent/pii.py > /tmp/pii_old.py`).

Usage: python bench/pii_false_positives.py [--compare OLD_PII_PY] [--chinese]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
from pathlib import Path
from typing import Callable

from common import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def bundled_texts() -> list[str]:
    """Every text cell of the bundled plugins' CSV files (examples, FAQs, items, sentences)."""
    texts = []
    for path in sorted((REPO / "plugins").glob("*/*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                texts += [v for k, v in row.items() if k and v and not _is_label(k)]
    return texts


def _is_label(column: str) -> bool:
    """Columns that hold labels or ids, not text a person wrote."""
    return column.lower() in {"label", "intent", "category", "id", "item_id", "sentiment"}


def csv_column(path: Path, column: str) -> list[str]:
    """One column of a CSV file."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [row[column] for row in csv.DictReader(fh)]


def chinese_sets() -> dict[str, list[str]]:
    """Chinese messages: MASSIVE zh-CN test, waimai_10k reviews, FinFE eval posts."""
    finfe = json.loads((SHARED_DATA / "finfe" / "eval_list.json").read_text(encoding="utf-8"))
    return {"MASSIVE zh-CN test": csv_column(SHARED_DATA / "massive_zh" / "test.csv", "text"),
            "waimai_10k": csv_column(SHARED_DATA / "waimai_10k" / "waimai_10k.csv", "review"),
            "FinFE eval": [row[0] for row in finfe]}


def load_redact(path: Path) -> Callable[[str], tuple[str, int]]:
    """The redact() of a pii.py file."""
    spec = importlib.util.spec_from_file_location(f"pii_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.redact


def report(name: str, texts: list[str], redacts: dict[str, Callable[[str], tuple[str, int]]]) -> None:
    """The share of `texts` each redact() changes, and every message whose redaction differs or changed."""
    outputs = {who: [fn(t)[0] for t in texts] for who, fn in redacts.items()}
    shares = ", ".join(f"{who} {sum(o != t for o, t in zip(out, texts))} ({sum(o != t for o, t in zip(out, texts)) / len(texts):.3%})"
                       for who, out in outputs.items())
    print(f"\n## {name}: {len(texts):,} messages; changed by {shares}")
    for i, text in enumerate(texts):
        seen = {who: out[i] for who, out in outputs.items()}
        if any(v != text for v in seen.values()):
            print(f"- {text!r}")
            for who, out in seen.items():
                print(f"    {who}: {out!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare", type=Path, help="an earlier pii.py to run beside today's")
    parser.add_argument("--chinese", action="store_true", help="also MASSIVE zh-CN, waimai_10k and FinFE")
    args = parser.parse_args()
    redacts = {"today": load_redact(REPO / "agent" / "pii.py")}
    if args.compare:
        redacts = {"before": load_redact(args.compare), **redacts}
    report("bundled plugins' data", bundled_texts(), redacts)
    if not (SHARED_DATA / "banking77").is_dir():
        sys.exit(f"{SHARED_DATA / 'banking77'} not found: the BANKING77 figure needs ../shared/data beside the project")
    report("BANKING77 test", csv_column(SHARED_DATA / "banking77" / "test.csv", "text"), redacts)
    if args.chinese:
        for name, texts in chinese_sets().items():
            report(name, texts, redacts)


if __name__ == "__main__":
    main()
