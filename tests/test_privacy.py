"""PII redaction: recall on the project's own corpora, nothing raw on disk after a chat and a fine-tune,
and the per-plugin `[privacy]` table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent.core import Agent
from agent.encoder import Encoder
from agent.errors import PluginError
from agent.finetune import Options, finetune
from agent.guard import PLACEHOLDERS, redact
from agent.manifest import load_manifest
from agent.settings import Settings
from conftest import make_plugin

DATA = Path(__file__).parent / "data"
CORPORA = ["pii_corpus.jsonl", "pii_holdout.jsonl"]


def score(path: Path) -> dict[str, object]:
    """Recall (planted values gone, replaced by their kind's placeholder) and false positives of redact()."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    planted = [(r, p) for r in rows for p in r["pii"]]
    outputs = {r["id"]: redact(r["text"])[0] for r in rows}
    missed = [p for r, p in planted if p["value"] in outputs[r["id"]] or PLACEHOLDERS[p["kind"]] not in outputs[r["id"]]]
    clean = [r for r in rows if not r["pii"]]
    changed = [(r["text"], outputs[r["id"]]) for r in clean if outputs[r["id"]] != r["text"]]
    return {"planted": len(planted), "missed": missed, "recall": 1 - len(missed) / len(planted),
            "clean": len(clean), "false_positives": changed, "kinds": sorted({p["kind"] for _, p in planted})}


@pytest.mark.parametrize("name", CORPORA)
def test_redaction_recall_on_our_corpora(name: str) -> None:
    s = score(DATA / name)
    assert s["planted"] >= 200 and s["clean"] >= 200 and s["kinds"] == sorted(PLACEHOLDERS)
    assert s["recall"] >= 0.99, s["missed"]
    assert len(s["false_positives"]) <= 0.02 * s["clean"], s["false_positives"]  # reported in the README


CARDS = ["4539 1488 0343 6467", "5555-5555-5555-4444", "378282246310005"]


def test_no_card_number_reaches_the_home_folder(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    make_plugin(root)
    settings = Settings(home=tmp_path / "home", plugin_paths=[root])
    agent = Agent(settings, encoder=encoder)
    ids = []
    for card in CARDS:
        reply = agent.reply(f"I lost my card {card}, block it and mail me at jo.doe@example.com")
        ids.append(reply.turn_id)
        assert card not in agent.store.turn(reply.turn_id)["text"]
    for turn_id in ids:
        agent.feedback(turn_id, label="card_lost", note=f"customer read out {CARDS[0]} on the phone")
    result = finetune(root / "shop", settings, Options(mode="head", device="cpu"), encoder=encoder)
    assert result.status == "promoted"
    agent.store.close()
    files = [p for p in [*settings.home.rglob("*"), *(root / "shop").rglob("*")] if p.is_file()]
    assert any(p.name == "agent.db" for p in files) and any("models" in p.parts for p in files)
    for path in files:
        data = path.read_bytes()
        for card in CARDS:
            for form in {card, re.sub(r"\D", "", card)}:
                assert form.encode() not in data, f"{form} found in {path}"
        assert b"jo.doe@example.com" not in data, path


def plugin_with(tmp_path: Path, privacy: str) -> Settings:
    """The tiny shop plugin with a [privacy] table appended."""
    root = tmp_path / "plugins"
    folder = make_plugin(root)
    (folder / "plugin.toml").write_text((folder / "plugin.toml").read_text() + "\n[privacy]\n" + privacy)
    return Settings(home=tmp_path / "home", plugin_paths=[root])


def test_privacy_table_chooses_what_is_redacted(tmp_path: Path, encoder: Encoder) -> None:
    agent = Agent(plugin_with(tmp_path, 'redact = ["email"]\n'), encoder=encoder)
    reply = agent.reply("refund please, mail jo@example.com or call +44 20 7946 0958")
    stored = agent.store.turn(reply.turn_id)
    assert stored["text"] == "refund please, mail <EMAIL> or call +44 20 7946 0958" and stored["redactions"] == 1


def test_privacy_store_raw_keeps_the_text(tmp_path: Path, encoder: Encoder) -> None:
    agent = Agent(plugin_with(tmp_path, "store_raw = true\n"), encoder=encoder)
    reply = agent.reply("refund to card 4539 1488 0343 6467 please")
    assert agent.store.turn(reply.turn_id)["text"] == "refund to card 4539 1488 0343 6467 please"


def test_default_redacts_every_kind_and_counts_them(tmp_path: Path, encoder: Encoder) -> None:
    agent = Agent(plugin_with(tmp_path, ""), encoder=encoder)
    reply = agent.reply("refund to GB82 WEST 1234 5698 7654 32, card 4539148803436467, account 12345678, "
                        "jo@example.com, +1 (202) 555-0143")
    stored = agent.store.turn(reply.turn_id)
    assert stored["text"] == "refund to <IBAN>, card <CARD>, account <ACCOUNT>, <EMAIL>, <PHONE>"
    assert stored["redactions"] == 5


@pytest.mark.parametrize("privacy, key", [('redact = ["ssn"]\n', "privacy.redact"),
                                          ('store_raw = "yes"\n', "privacy.store_raw"),
                                          ('keep = ["email"]\n', "keep")])
def test_a_bad_privacy_table_names_the_key(tmp_path: Path, privacy: str, key: str) -> None:
    plugin_with(tmp_path, privacy)
    with pytest.raises(PluginError, match=re.escape(key)):
        load_manifest(tmp_path / "plugins" / "shop")


@pytest.mark.parametrize("text, expected", [
    ("card 4111 1111 1111 1111 12/26 thanks", "card <CARD> 12/26 thanks"),
    ("order 1234567 on 2024-03-15 14:30 for $1,250.00", "order 1234567 on 2024-03-15 14:30 for $1,250.00"),
    ("iban ie43 bofi 3676 7507 7122 81 is mine", "iban <IBAN> is mine"),
    ("text 06 39 98 69 55 please", "text <PHONE> please"),
    ("account 3305 4232 sort code 60-16-13", "account <ACCOUNT> sort code 60-16-13"),
    ("card ending 4242, ZIP 10001-0001", "card ending 4242, ZIP 10001-0001"),
])
def test_redaction_edge_cases(text: str, expected: str) -> None:
    assert redact(text)[0] == expected
