"""PII redaction: recall on the project's own corpora, nothing raw on disk after a chat, a fine-tune and a
monitored feed (cards typed with any separator, in either width), and the per-plugin `[privacy]` table."""

from __future__ import annotations

import io
import json
import re
import shutil
import unicodedata
from pathlib import Path

import pytest

from agent.errors import PluginError
from agent.learn.finetune import Options, finetune
from agent.models.encoder import Encoder
from agent.plugin.manifest import load_manifest
from agent.reply.agent import Agent
from agent.scenarios.monitor.run import watch
from agent.settings import Settings
from agent.text.guard import PLACEHOLDERS, redact
from conftest import REPO, make_plugin

DATA = Path(__file__).resolve().parents[1] / "data"
WESTERN = sorted(set(PLACEHOLDERS) - {"id"})  # the corpora were written before resident IDs were a kind
CORPORA = {"pii_corpus.jsonl": WESTERN, "pii_holdout.jsonl": WESTERN,
           "pii_separators.jsonl": ["account", "card", "iban", "phone"]}  # separators: e-mails have none to vary


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


@pytest.mark.parametrize("name, kinds", CORPORA.items())
def test_redaction_recall_on_our_corpora(name: str, kinds: list[str]) -> None:
    s = score(DATA / name)
    assert s["planted"] >= 200 and s["clean"] >= 150 and s["kinds"] == kinds
    assert s["recall"] >= 0.99, s["missed"]
    assert len(s["false_positives"]) <= 0.02 * s["clean"], s["false_positives"]  # reported in the README


CARDS = ["4539 1488 0343 6467", "5555-5555-5555-4444", "378282246310005", "6011.1111.1111.1117", "4111/1111/1111/1111",
         "5105\u00a01051\u00a00510\u00a05100", "４０１２\u3000８８８８\u3000８８８８\u3000１８８１", "５２００８２８２８２８２８２１０",
         "3530.1113-3330\u202f0000"]  # Luhn-valid: plain, dots, slashes, no-break spaces, full-width digits, a mix
SEPARATORS = ["", " ", "-", ".", "/", "\u00a0", "\u202f", "\u2009", "\u2007", "\u3000", "\uff0e", "\uff0f", "\uff0d"]


def card_forms(card: str) -> set[bytes]:
    """Every way a card's digits could sit in a file: as typed, or its groups (and its last two alone) joined
    by any separator, in ASCII or full-width digits, as UTF-8 or JSON-escaped."""
    groups = ["".join(str(unicodedata.decimal(ch)) for ch in g) for g in re.findall(r"\d+", card)]
    widths = [str, lambda g: "".join(chr(0xFF10 + int(d)) for d in g)]
    forms = {card} | {sep.join(map(width, part)) for part in (groups, groups[-2:]) for width in widths for sep in SEPARATORS}
    return {f.encode() for f in forms} | {json.dumps(f)[1:-1].encode() for f in forms}


def test_card_forms_cover_the_digits_alone_and_every_separator() -> None:
    forms = card_forms("６０１１.1111\u00a01111-1117")
    assert {b"6011111111111117", "６０１１１１１１１１１１１１１７".encode(), b"6011/1111/1111/1117", b"1111-1117",
            b"6011\\u00a01111\\u00a01111\\u00a01117"} <= forms


def assert_no_card_in(folders: list[Path], cards: list[str]) -> list[Path]:
    """The files under `folders`, after checking that none holds any form of any of `cards`."""
    files = [p for folder in folders for p in folder.rglob("*") if p.is_file()]
    forms = {form: card for card in cards for form in card_forms(card)}
    for path in files:
        data = path.read_bytes()
        leaked = [(card, form) for form, card in forms.items() if form in data]
        assert not leaked, f"{leaked[:3]} found in {path}"
    return files


def test_no_card_number_reaches_the_home_folder(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    make_plugin(root)
    settings = Settings(home=tmp_path / "home", plugin_paths=[root])
    agent = Agent(settings, encoder=encoder)
    ids = []
    for card in CARDS:
        reply = agent.reply(f"I lost my card {card}, block it and mail me at jo.doe@example.com")
        ids.append(reply.turn_id)
        stored = agent.store.turn(reply.turn_id)["text"]
        assert card not in stored and stored.startswith("I lost my card <CARD>, block it"), stored
    for turn_id, card in zip(ids, reversed(CARDS)):
        agent.feedback(turn_id, label="card_lost", note=f"customer read out {card} on the phone")
    result = finetune(root / "shop", settings, Options(mode="head", device="cpu"), encoder=encoder)
    assert result.status == "promoted"
    agent.store.close()
    files = assert_no_card_in([settings.home, root / "shop"], CARDS)
    assert any(p.name == "agent.db" for p in files) and any("models" in p.parts for p in files)
    for path in files:
        assert b"jo.doe@example.com" not in path.read_bytes(), path


def test_no_card_number_reaches_the_home_folder_from_a_monitored_feed(tmp_path: Path, encoder: Encoder) -> None:
    root = tmp_path / "plugins"
    shutil.copytree(REPO / "plugins" / "sentiment_monitor", root / "sentiment_monitor",
                    ignore=shutil.ignore_patterns("model", "__pycache__"))
    agent = Agent(Settings(home=tmp_path / "home", plugin_paths=[root]), encoder=encoder)
    feed = "".join(json.dumps({"text": f"charged twice on {card}, furious", "timestamp": 1795392000.0 + i * 60},
                              ensure_ascii=i % 2 == 0) + "\n" for i, card in enumerate(CARDS))
    summary = watch(agent.observers["sentiment_monitor"], agent.store, io.BytesIO(feed.encode()), None)
    texts = [r["text"] for r in agent.store.query("SELECT text FROM feed_items WHERE run_id = ?", [summary.run_id])]
    assert texts == ["charged twice on <CARD>, furious"] * len(CARDS)
    agent.store.close()
    assert any(p.name == "agent.db" for p in assert_no_card_in([agent.settings.home], CARDS))


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
    ("ｈｉ　card ６０１１．１１１１．１１１１．１１１７！ thanks", "ｈｉ　card <CARD>！ thanks"),  # the original span goes
    ("iban DE89\u00a03704\u202f0044/0532.0130\u200900 ok", "iban <IBAN> ok"),
    ("call ＋４４（０）２０－７９４６－０９５８ or 06.39.98.69.55", "call <PHONE> or <PHONE>"),
    ("Kontonummer 12.34.56.789, rekening 0532\u2007013\u2007000", "Kontonummer <ACCOUNT>, rekening <ACCOUNT>"),
    ("router 192.168.100.254, build 10.0.19045.3803, order 302-5419962-7483544",
     "router 192.168.100.254, build 10.0.19045.3803, order 302-5419962-7483544"),
    ("paid 1.234,56 € on 12.03.2024 at 14:30, 03/12/2024, ISBN 978-0-306-40615-7",
     "paid 1.234,56 € on 12.03.2024 at 14:30, 03/12/2024, ISBN 978-0-306-40615-7"),
])
def test_redaction_edge_cases(text: str, expected: str) -> None:
    assert redact(text)[0] == expected


@pytest.mark.parametrize("text", [
    "call me about my order 0412 345 678", "ring me about the parcel on 07700 900 123",
    "text me about the ticket 07700900123", "my account for the order is 12345678",
    "Hi, about my order. 07700 900123 is my mobile", "12.345.678.901 is my account", "ring me on 20.12.34.56",
    "account 12.34.56.78"])
def test_a_reference_word_or_an_address_shape_never_outweighs_a_phone_or_account(text: str) -> None:
    redacted, count = redact(text)
    digits = re.sub(r"\D", "", text)
    assert count == 1 and not re.search(r"\d{4}", redacted) and digits not in re.sub(r"\D", "", redacted)


@pytest.mark.parametrize("text", ["Windows 10.0.19045.3803 crashes", "since 1.7.5.6310 the app logs me out"])
def test_a_version_number_without_a_cue_is_left_alone(text: str) -> None:
    assert redact(text) == (text, 0)
