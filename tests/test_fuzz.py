"""Fuzzing the entry points that read what people and files give us: bad input must become an AgentError.

The goal is "10,000 fuzzed inputs per entry point: zero crashes", where a crash is any exception that is
not an `agent.errors.AgentError`. By default each test tries 200 inputs so that the file stays quick; run
the full goal with:

    AGENT_FUZZ_EXAMPLES=10000 python -m pytest -q tests/test_fuzz.py

Runs are derandomized (the same inputs every time, so CI is stable); AGENT_FUZZ_RANDOM=1 draws fresh ones.
Entry points: Agent.reply, load_manifest, the CSV/JSONL data readers and the replay input reader; and
the other way round, whatever a person types (keyboard characters, emoticons, emoji) must pass as text.
Values known to break parsers (4,400-digit ints, deep nesting, impossible dates) are drawn as short
markers such as <<BIG_INT>> and expanded just before use, so a failing example prints readably.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import shutil
import string
import traceback
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from agent.errors import AgentError
from agent.models.encoder import Encoder
from agent.plugin.data import iter_rows, read_rows
from agent.plugin.manifest import Manifest, load_manifest
from agent.replay.inputs import CSV_COLUMNS, BadLine, ReplayTurn, read_entries
from agent.reply.agent import Agent, Reply
from agent.scenarios.monitor.feed import clean_text
from agent.settings import PACKAGE_ROOT, Settings
from agent.text import guard
from conftest import EXAMPLES as SHOP_EXAMPLES
from conftest import make_plugin

EXAMPLES = int(os.environ.get("AGENT_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    derandomize=os.environ.get("AGENT_FUZZ_RANDOM") != "1",
    phases=[p for p in Phase if p is not Phase.explain],  # explaining re-runs slow failures many times
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                           HealthCheck.filter_too_much],
)
MAX_CHARS = 5000
PACKAGE = PACKAGE_ROOT / "agent"
T = TypeVar("T")
_cases = itertools.count()

# ---- pieces of nasty input ----------------------------------------------------------------------------------
BIG_INT, BIG_HEX, HUGE_HEX, DEEP, DEEP_YAML, BAD_DATE, TAG = (
    f"<<{m}>>" for m in ("BIG_INT", "BIG_HEX", "HUGE_HEX", "DEEP", "DEEP_YAML", "BAD_DATE", "TAG"))
MARKERS = {
    BIG_INT: "1" * 4400,  # past Python's 4,300-digit limit on int/str conversion
    BIG_HEX: "0x" + "f" * 300,  # beyond float range (hex is read without the digit limit)
    HUGE_HEX: "0x" + "f" * 3600,  # reads fine, but its repr() passes the 4,300-digit limit
    DEEP: "[" * 1500 + "]" * 1500,  # past the recursion limit of recursive parsers
    DEEP_YAML: "[" * 500 + "]" * 500,  # enough for PyYAML (two frames a level), which is slow on deeper nesting
    BAD_DATE: "2020-13-45",  # matches YAML's timestamp pattern, but there is no month 13
    TAG: "!!python/name:os.system",  # a tag the safe loader refuses
}
NASTY = ["\x00", "\ufeff", "\r", "\r\n", "\n", "\t", "\x0b", "\x1b[31m", "\x85", "\u2028", "\u00a0", "\u200b",
         "\u202e", "\u200f", "\ud800", "\udfff", "\ufffd", "\ue000", "\uffff", "\U0010ffff", "e\u0301", "🙂",
         "👩\u200d👩\u200d👧", "مرحبا", "שלום", "日本語", '"', "'", ",", ";", "\\", "{", "}", "[", "]", ":", "=",
         "#", "&a ", "*a", "- ", "? ", "|", "%", "@", "!!", BIG_INT, BIG_HEX, DEEP]
WORDS = [t for ts in SHOP_EXAMPLES.values() for t in ts] + ["/use", "/use shop", "/use nope", "/use ", "/usex"]
ANY_CHAR = st.characters(exclude_categories=())  # every code point, lone surrogates included
FILE_CHAR = st.characters(exclude_categories=("Cs",))  # what a UTF-8 file can hold
TEXT = st.text(FILE_CHAR, max_size=20)


def expand(data: str | bytes, for_yaml: bool = False) -> str | bytes:
    """Swap the markers for the values they stand for."""
    for marker, value in MARKERS.items():
        value = MARKERS[DEEP_YAML] if for_yaml and marker == DEEP else value
        data = data.replace(marker, value) if isinstance(data, str) else data.replace(marker.encode(), value.encode())
    return data


def mixed(pieces: list[str], chars: st.SearchStrategy[str] = ANY_CHAR, max_size: int = 12) -> st.SearchStrategy[str]:
    """Strings glued from format pieces, nasty pieces and random text."""
    part = st.one_of(st.sampled_from(pieces), st.sampled_from(NASTY), st.text(chars, max_size=20))
    return st.lists(part, max_size=max_size).map("".join)


def file_text(pieces: list[str], max_size: int = 12) -> st.SearchStrategy[str]:
    """Like `mixed`, without lone surrogates (a file holds UTF-8)."""
    return mixed(pieces, FILE_CHAR, max_size).map(lambda s: s.encode("utf-8", "replace").decode("utf-8"))


def encoded(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Text saved the ways people save files: UTF-8 (with a BOM or not, lone surrogates kept), Latin-1, UTF-16."""
    codecs = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"])
    return st.builds(lambda s, c: s.encode(c, "surrogatepass" if c.startswith("utf-8") else "replace"), text, codecs)


def junk_bytes(pieces: list[str]) -> st.SearchStrategy[bytes]:
    """Binary junk, or format-flavoured text in some encoding."""
    return st.one_of(st.binary(max_size=400), encoded(mixed(pieces)))


# ---- running one input ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module; each example writes a subfolder of its own and removes it."""
    return tmp_path_factory.mktemp("fuzz")


def run_in(folder: Path, name: str, data: bytes, check: Callable[[Path], None]) -> None:
    """Write the input (markers expanded) as `name` in a fresh folder, check it, remove it."""
    path = folder / f"case{next(_cases)}" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(expand(data, for_yaml=path.suffix == ".yaml"))
    try:
        check(path)
    finally:
        shutil.rmtree(path.parent)


def outcome(call: Callable[[], T]) -> T | None:
    """What the call returns, or None when it raised an AgentError (which must say something).

    Any other exception fails the test. A RecursionError becomes one AssertionError naming the project
    frame it came through: where the stack overflows varies, and Hypothesis would call that flaky.
    """
    try:
        return call()
    except AgentError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        event(f"refused: {type(exc).__name__}")
        return None
    except RecursionError as exc:
        where = project_frame(exc)
    raise AssertionError(f"RecursionError (not an AgentError) escaped through {where}")  # outside `except`: no context


def project_frame(exc: BaseException) -> str:
    """'file:line in function' of the innermost traceback frame in the agent package."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).is_relative_to(PACKAGE)]
    return f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else "(no agent frame)"


# ---- 1. Agent.reply -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Agent:
    """An agent over the tiny `shop` plugin with a temporary home (indexes, SQLite log), warmed up."""
    root = tmp_path_factory.mktemp("fuzz-agent")
    make_plugin(root / "plugins")
    built = Agent(Settings(home=root / "home", plugin_paths=[root / "plugins"], max_chars=MAX_CHARS), encoder=encoder)
    built.reply("I lost my card")
    return built


def huge(chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A short chunk repeated to about the message limit, up to twice it (cheap to draw, long to handle)."""
    chunk = st.text(chars, min_size=1, max_size=12) | st.sampled_from(WORDS + [n for n in NASTY if n not in MARKERS])
    return st.builds(lambda c, n: (c * (n // len(c) + 1))[:n], chunk, st.integers(MAX_CHARS - 50, 2 * MAX_CHARS))


WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u205f\u3000\ufeff\u200b"
JUNK = mixed(["?", "!!!", " "], max_size=2)
DECORATED = st.builds(lambda before, words, after: before + words + after,  # real questions dressed in junk
                      JUNK, st.sampled_from(WORDS), JUNK)
USE = st.builds(lambda name, rest: f"/use {name} {rest}",
                st.text(ANY_CHAR, max_size=10) | st.sampled_from(["shop", "nope"]), mixed(WORDS, max_size=3))
MESSAGE_TEXT = st.one_of(st.text(ANY_CHAR, max_size=200), mixed(WORDS), DECORATED, huge(ANY_CHAR),
                         st.text(st.sampled_from(WHITESPACE), max_size=50), USE)
MESSAGE_BYTES = st.one_of(st.binary(max_size=500), encoded(mixed(WORDS)), encoded(DECORATED),
                          huge(ANY_CHAR).map(lambda s: s.encode("utf-8", "surrogatepass")))
CONVERSATION = st.none() | st.sampled_from(["", "c1", "c2"]) | st.text(FILE_CHAR, max_size=30)
PLUGIN = st.none() | st.sampled_from(["", "shop", "nope", "SHOP"]) | st.text(ANY_CHAR, max_size=15)


def check_reply(agent: Agent, text: str | bytes, conversation_id: str | None, plugin: str | None) -> None:
    """A Reply with text to show, or an AgentError that says why not."""
    reply = outcome(lambda: agent.reply(expand(text), conversation_id=conversation_id, plugin=plugin))
    if reply is None:
        return
    event("answered")
    assert isinstance(reply, Reply)
    assert isinstance(reply.text, str) and reply.text.strip()


@FUZZ
@given(text=MESSAGE_TEXT, conversation_id=CONVERSATION, plugin=PLUGIN)
def test_reply_survives_any_text(agent: Agent, text: str, conversation_id: str | None, plugin: str | None) -> None:
    check_reply(agent, text, conversation_id, plugin)


@FUZZ
@given(data=MESSAGE_BYTES, conversation_id=CONVERSATION, plugin=PLUGIN)
def test_reply_survives_any_bytes(agent: Agent, data: bytes, conversation_id: str | None, plugin: str | None) -> None:
    check_reply(agent, data, conversation_id, plugin)


@FUZZ
@given(text=DECORATED, conversation_id=mixed(["c1", "conversation-42"], max_size=4),
       plugin=st.none() | st.just("shop") | mixed(["shop", "nope"], max_size=3))
def test_reply_survives_any_conversation_id_and_plugin(agent: Agent, text: str, conversation_id: str,
                                                      plugin: str | None) -> None:
    # Front ends pass these through: a CLI argument decoded with surrogateescape can hold lone surrogates.
    check_reply(agent, text, conversation_id, plugin)


# ---- 2. the manifest loader -----------------------------------------------------------------------------------
TOML_PIECES = ['name = "shop"\n', 'description = "d"\n', 'role = "observer"\n', 'version = 1\n', "[data]\n",
               "[retrieval]\n", "[thresholds]\n", "[fallback]\n", "[labels]\n", "[[labels]]\n", 'labels = ["a", "b"]\n',
               'examples = "../x.csv"\n', 'corpus = "faq.csv"\n', "top_k = ", "min_confidence = ", "name = ",
               "text_columns = [", BIG_INT, "-" + BIG_INT, BIG_HEX, HUGE_HEX, "1e999", "nan", "-inf", "0o777", "0b2",
               "1_000", "1979-05-27", "1979-13-45", "07:32:00", "true", '"""', "'''", "a = " + DEEP,
               "a = " + "{b=" * 600, "x.y.z = 1\n", '"" = 1\n']


@dataclass(frozen=True)
class Raw:
    """Text written into the TOML as is: numbers past what Hypothesis prints, deliberately broken values."""

    text: str


def toml_str(s: str) -> str:
    """A TOML basic string."""
    escaped = ("\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in s)
    return '"' + "".join(escaped) + '"'


def toml_value(v: Any) -> str:
    """An inline TOML value."""
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return hex(v) if v > 2**64 else str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_str(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    """Top-level keys first, then each table as a [section]."""
    lines = [f"{toml_str(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for key, table in ((k, v) for k, v in doc.items() if isinstance(v, dict)):
        lines += ["", f"[{toml_str(key)}]"] + [f"{toml_str(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


HUGE_INTS = st.sampled_from([2**1024, 10**400, 2**63, -(2**63) - 1]) | st.sampled_from(
    [Raw(BIG_HEX), Raw(HUGE_HEX), Raw(BIG_INT), Raw("-" + BIG_INT)])
TOML_SCALARS = st.one_of(st.booleans(), st.integers(), HUGE_INTS, st.floats(), TEXT, st.dates(), st.datetimes(),
                         st.sampled_from([Raw(p) for p in ("1979-13-45", "0b2", "nan", "1_000", DEEP)]))
TOML_ANY = st.recursive(TOML_SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
                        max_leaves=8)


def either(good: st.SearchStrategy[Any], other: st.SearchStrategy[Any] = TOML_ANY) -> st.SearchStrategy[Any]:
    """Usually a plausible value, sometimes anything at all."""
    return st.one_of(good, good, good, other)


def table(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A table with some of its known keys, sometimes an unknown key too, sometimes not a table at all."""
    known = st.fixed_dictionaries({}, optional=keys)
    typo = st.builds(lambda d, extra: {**d, **extra}, known, st.dictionaries(TEXT, TOML_ANY, max_size=1))
    return st.one_of(known, known, known, typo, TOML_ANY)


UNIT = st.floats(0, 1) | st.integers(-1, 2) | st.floats() | HUGE_INTS
MANIFEST_DOC = st.builds(
    lambda required, optional, extra: {**required, **optional, **extra},
    st.fixed_dictionaries({"name": either(st.sampled_from(["shop", "my-plugin", "a_b"]) | TEXT),
                           "description": either(TEXT)}),
    st.fixed_dictionaries({}, optional={
        "role": either(st.sampled_from(["responder", "observer", "Responder", ""])),
        "version": either(st.sampled_from(["0.1.0", "1"])),
        "labels": either(st.lists(TEXT, max_size=4) | st.dictionaries(TEXT, either(TEXT), max_size=4)),
        "data": table({"examples": either(TEXT), "text_column": either(TEXT), "label_column": either(TEXT)}),
        "retrieval": table({"corpus": either(TEXT), "id_column": either(TEXT), "answer_column": either(TEXT),
                            "label_column": either(TEXT), "text_columns": either(st.lists(TEXT, max_size=3)),
                            "top_k": either(st.integers(-2, 60) | HUGE_INTS)}),
        "thresholds": table({k: either(UNIT) for k in ("min_confidence", "min_margin", "min_similarity")}),
        "fallback": table({"message": either(TEXT), "handoff": either(TEXT)}),
    }),
    st.dictionaries(TEXT, TOML_ANY, max_size=1) | st.just({}),
)


def check_manifest(path: Path) -> None:
    """A validated Manifest, or a PluginError naming the file."""
    m = outcome(lambda: load_manifest(path))
    if m is None:
        return
    event("loaded")
    assert isinstance(m, Manifest)
    assert m.name.replace("_", "").replace("-", "").isalnum() and m.role in ("responder", "observer")
    assert all(0.0 <= getattr(m.thresholds, k) <= 1.0 for k in ("min_confidence", "min_margin", "min_similarity"))
    assert m.retrieval is None or 1 <= m.retrieval.top_k <= 50


@FUZZ
@given(text=file_text(TOML_PIECES, max_size=20))
def test_manifest_loader_survives_random_text(workdir: Path, text: str) -> None:
    run_in(workdir, "plugin.toml", text.encode("utf-8"), check_manifest)


@FUZZ
@given(data=junk_bytes(TOML_PIECES))
def test_manifest_loader_survives_random_bytes(workdir: Path, data: bytes) -> None:
    run_in(workdir, "plugin.toml", data, check_manifest)


@FUZZ
@given(doc=MANIFEST_DOC)
def test_manifest_loader_survives_structured_toml(workdir: Path, doc: dict[str, Any]) -> None:
    run_in(workdir, "plugin.toml", toml_document(doc).encode("utf-8"), check_manifest)


# ---- 3. the CSV / JSONL data readers --------------------------------------------------------------------------
COLUMNS = ["text", "label", "id", "question", "answer"]
CELL_PIECES = ["", " ", "x", "hello, world", 'say "hi"', '"', "line\nbreak", "cr\rhere", "tab\there", "\x00", "\ufeff",
               "é", "🙂", "null", "1e999", BIG_INT]
HEADER = st.lists(st.sampled_from(COLUMNS + [" text ", "TEXT", "", "a,b", 'q"x', "\ufefftext", "label\t"]) | TEXT,
                  max_size=6)
REQUIRED = st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=3, unique=True)
CELLS = st.lists(st.lists(file_text(CELL_PIECES, max_size=3), max_size=7), max_size=8)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT, st.sampled_from([BIG_INT, DEEP]))
JSON_ANY = st.recursive(JSON_LEAF, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
                        max_leaves=10)


def to_json(value: Any) -> str:
    """JSON text; markers lose their quotes, to stand for what json.dumps cannot write (huge ints, deep nesting)."""
    text = json.dumps(value, ensure_ascii=False)
    for marker in MARKERS:
        text = text.replace(f'"{marker}"', marker)
    return text


def csv_text(header: list[str], rows: list[list[str]], delimiter: str, how: str, newline: str) -> str:
    """Rows written by the csv module with some quoting style, or naively joined (no quoting at all)."""
    if how == "naive":
        return newline.join(delimiter.join(r) for r in [header, *rows]) + newline
    out = io.StringIO(newline="")
    quoting = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL, "nonnumeric": csv.QUOTE_NONNUMERIC}[how]
    csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=newline).writerows([header, *rows])
    return out.getvalue()


def check_rows(path: Path, required: list[str], stream: bool = False) -> None:
    """Rows with every required value filled in, or a DataError naming the file."""
    rows = outcome(lambda: list(iter_rows(path, required, "fix it")) if stream else read_rows(path, required, "fix it"))
    if rows is None:
        return
    event("read rows" if rows else "read no rows")
    for row in rows:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in row.items())
        assert all(row[c].strip() for c in required)


@FUZZ
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
@given(data=junk_bytes(CELL_PIECES + COLUMNS + ['{"text": "a", "label": "b"}\n', "{", "}", "[", "]"]),
       required=REQUIRED, stream=st.booleans())
def test_data_readers_survive_random_bytes(workdir: Path, suffix: str, data: bytes, required: list[str],
                                           stream: bool) -> None:
    run_in(workdir, "data" + suffix, data, lambda p: check_rows(p, required, stream))


@FUZZ
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
@given(header=HEADER, rows=CELLS, required=REQUIRED, add_required=st.booleans(), fit=st.booleans(),
       how=st.sampled_from(["minimal", "all", "nonnumeric", "naive"]), newline=st.sampled_from(["\n", "\r\n", "\r"]),
       codec=st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]))
def test_data_readers_survive_structured_csv(workdir: Path, suffix: str, header: list[str], rows: list[list[str]],
                                             required: list[str], add_required: bool, fit: bool, how: str,
                                             newline: str, codec: str) -> None:
    header = [*required, *header] if add_required else header
    if fit:  # rows as wide as the header, every value filled in: files that should read
        rows = [[cell.replace("\x00", "") or "x" for cell in (row + ["x"] * len(header))[:len(header)]] for row in rows]
    text = csv_text(header, rows, "\t" if suffix == ".tsv" else ",", how, newline)
    run_in(workdir, "data" + suffix, text.encode(codec, "replace"), lambda p: check_rows(p, required))


JSONL_LINE = st.one_of(
    st.fixed_dictionaries(dict.fromkeys(COLUMNS, st.sampled_from(WORDS) | st.integers() | TEXT)).map(to_json),
    st.builds(lambda known, more: to_json({**known, **more}),
              st.fixed_dictionaries({}, optional=dict.fromkeys(COLUMNS, JSON_ANY)),
              st.dictionaries(TEXT, JSON_ANY, max_size=3)),
    JSON_ANY.map(to_json),
    file_text(['{"text": ', '"label": ', "}", "{", "[", ",", ":", "null", "NaN", "Infinity", BIG_INT], max_size=6),
    st.just(""),
)


@FUZZ
@given(lines=st.lists(JSONL_LINE, max_size=6), required=REQUIRED, newline=st.sampled_from(["\n", "\r\n", "\r"]),
       bom=st.booleans())
def test_data_readers_survive_structured_jsonl(workdir: Path, lines: list[str], required: list[str], newline: str,
                                               bom: bool) -> None:
    data = ("\ufeff" if bom else "") + newline.join(lines)
    run_in(workdir, "data.jsonl", data.encode("utf-8"), lambda p: check_rows(p, required))


# ---- 4. the replay input reader -------------------------------------------------------------------------------
def check_entries(path: Path, fmt: str) -> None:
    """Every entry is a turn or a bad line with a positive line number; only an AgentError may end the read."""
    entries = outcome(lambda: list(read_entries(str(path), fmt)))
    if entries is None:
        return
    event("some turns" if any(isinstance(e, ReplayTurn) for e in entries) else "no turns")
    for e in entries:
        assert isinstance(e, (ReplayTurn, BadLine)), e
        if isinstance(e, BadLine):
            assert isinstance(e.line, int) and e.line > 0, e
            assert isinstance(e.reason, str) and e.reason.strip(), e
        else:
            assert isinstance(e.line, int) and isinstance(e.text, str) and isinstance(e.conversation, str), e
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in e.expect.items()), e


EXPECT_VALUE = either(st.sampled_from(["shop", "card_lost", "refund-1", "true", "no", "maybe", ""]) | st.booleans(),
                      JSON_ANY)
EXPECT = st.fixed_dictionaries({}, optional=dict.fromkeys(["plugin", "label", "answer", "fallback", "bogus"],
                                                          EXPECT_VALUE))
TURN_TEXT = st.one_of(st.sampled_from(WORDS), TEXT, JSON_ANY)
LINE_KEY = {"__line__": JSON_ANY | st.integers(-3, 3)}  # the key the YAML loader adds, written by hand
SCRIPTED_TURN = st.one_of(
    TURN_TEXT,
    st.builds(lambda known, more: {**known, **more},
              st.fixed_dictionaries({}, optional={"text": TURN_TEXT, "user": TURN_TEXT, "expect": EXPECT | JSON_ANY,
                                                  "label": EXPECT_VALUE, "fallback": EXPECT_VALUE, **LINE_KEY}),
              st.dictionaries(TEXT, JSON_ANY, max_size=1)),
)
CONVERSATION_OBJ = st.fixed_dictionaries(
    {"turns": st.lists(SCRIPTED_TURN, max_size=4) | JSON_ANY},
    optional={"conversation": JSON_ANY, "conversation_id": JSON_ANY, "id": JSON_ANY, **LINE_KEY},
)
SINGLE_TURN = st.builds(
    lambda known, expect: {**known, **expect},
    st.fixed_dictionaries({"text": TURN_TEXT}, optional={"conversation_id": JSON_ANY, "expect": EXPECT | JSON_ANY}),
    EXPECT,
)
FEEDBACK = st.lists(st.fixed_dictionaries({}, optional={"kind": st.sampled_from(["label", "good", "bad"]) | JSON_ANY,
                                                        "label": EXPECT_VALUE}) | JSON_ANY, max_size=3)
LOGGED_TURN = st.fixed_dictionaries(  # a line of `agent logs export`
    {"text": TURN_TEXT, "reply": TEXT | JSON_ANY},
    optional={"id": JSON_ANY, "conversation_id": JSON_ANY, "plugin": EXPECT_VALUE, "label": EXPECT_VALUE,
              "answer_id": JSON_ANY, "fallback_reason": JSON_ANY, "confidence": JSON_ANY, "forced": EXPECT_VALUE,
              "feedback": FEEDBACK | JSON_ANY, "expect": EXPECT | JSON_ANY},
)
REPLAY_OBJECT = st.one_of(CONVERSATION_OBJ, SINGLE_TURN, LOGGED_TURN, JSON_ANY)
REPLAY_PIECES = ['{"text": "hi"}\n', '{"turns": ["a", {"text": "b"}]}\n', "text,label\n", "message,expected_plugin\n",
                 "- conversation: a\n  turns:\n    - hi\n", "turns:\n", "  - text: ", "expect: {", "---\n", "...\n",
                 "%YAML 1.1\n", "!!python/object/apply:os.system ['true']", "!!binary AAA", "<<: *a\n", "2020-13-45",
                 "!!timestamp x", "!!int x", "!!float ", "0000-00-00", "2020-01-01 25:00:00", ": ", "__line__: x\n"]


@FUZZ
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "yaml"])
@given(data=junk_bytes(REPLAY_PIECES))
def test_replay_reader_survives_random_bytes(workdir: Path, fmt: str, data: bytes) -> None:
    run_in(workdir, f"input.{fmt}", data, lambda p: check_entries(p, fmt))


@FUZZ
@given(lines=st.lists(REPLAY_OBJECT.map(to_json) | file_text(REPLAY_PIECES, max_size=4), max_size=6),
       newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
def test_replay_jsonl_survives_structured_entries(workdir: Path, lines: list[str], newline: str, bom: bool) -> None:
    data = ("\ufeff" if bom else "") + newline.join(lines)
    run_in(workdir, "input.jsonl", data.encode("utf-8"), lambda p: check_entries(p, "jsonl"))


def to_yaml(docs: list[Any]) -> str:
    """YAML documents; markers lose their quotes, to stand for scalars safe_dump would quote."""
    text = yaml.safe_dump_all(docs, allow_unicode=True, sort_keys=False)
    for marker in MARKERS:
        text = text.replace(f"'{marker}'", marker)
    return text


YAML_LEAF = st.one_of(JSON_LEAF, st.dates(), st.sampled_from([BAD_DATE, TAG]))
YAML_DOC = st.one_of(
    st.lists(REPLAY_OBJECT, max_size=3),
    REPLAY_OBJECT,
    st.fixed_dictionaries({"conversations": st.lists(REPLAY_OBJECT, max_size=3) | JSON_ANY}),
    st.recursive(YAML_LEAF, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(TEXT, kids, max_size=3),
                 max_leaves=8),
)


@FUZZ
@given(docs=st.lists(YAML_DOC, min_size=1, max_size=3), tail=file_text(REPLAY_PIECES, max_size=3) | st.just(""))
def test_replay_yaml_survives_structured_docs(workdir: Path, docs: list[Any], tail: str) -> None:
    run_in(workdir, "input.yaml", (to_yaml(docs) + tail).encode("utf-8"), lambda p: check_entries(p, "yaml"))


REPLAY_HEADER = st.lists(
    st.sampled_from([n for names in CSV_COLUMNS.values() for n in names] + [" Text ", "", "bogus"]) | TEXT, max_size=6)


@FUZZ
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
@given(header=REPLAY_HEADER, rows=CELLS, add_text=st.booleans(), how=st.sampled_from(["minimal", "all", "naive"]),
       newline=st.sampled_from(["\n", "\r\n", "\r"]), codec=st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
def test_replay_csv_survives_structured_rows(workdir: Path, suffix: str, header: list[str], rows: list[list[str]],
                                             add_text: bool, how: str, newline: str, codec: str) -> None:
    header = ["text", *header] if add_text else header
    text = csv_text(header, rows, "\t" if suffix == ".tsv" else ",", how, newline)
    run_in(workdir, "input" + suffix, text.encode(codec, "replace"), lambda p: check_entries(p, "csv"))


# ---- 5. what people type is text ------------------------------------------------------------------------------
# Every character a keyboard types (US and UK layouts, with AltGr / Option) and common phone emoji; none is
# "binary". Emoji newer than this Python's Unicode tables (🩷 🫨 from Unicode 15) are among them.
KEYBOARD = string.printable.strip() + "£€¬¦¢¥§¶°±µ©®™«»¡¿–—…‘’“”„•·×÷¨´`^~ßæøåœéèêëàâäîïôöùûüçñÁÉÍÓÚÑ\uf8ff"
EMOJI = ["👍", "👍🏽", "👎🏿", "❤️", "♥", "😂", "🤣", "😊", "🙂", "😉", "😍", "🥰", "😘", "😭", "😢", "😡", "😠", "🤔", "🙄", "😅",
         "😎", "🤗", "🤷‍♀️", "🤦🏻‍♂️", "🙏", "🙏🏾", "👏", "🙌", "💪🏼", "👌", "✌️", "👋", "🔥", "✨", "🎉", "💯", "✅", "❌",
         "⚠️", "💔", "👨‍👩‍👧", "👩‍❤️‍👨", "🏳️‍🌈", "🇬🇧", "🇪🇸", "🇯🇵", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "#️⃣", "1️⃣", "🩷", "🫨", "🫠", "😶‍🌫️"]
EMOTICONS = [":)", ":-)", ":(", ":-(", ":D", "xD", ";)", ":P", ":'(", "^_^", "<3", "</3", "-_-", "o_O", ":/", "(╯°□°)╯︵ ┻━┻"]
CLEANERS = [guard.clean, clean_text]
VISIBLE = st.characters(categories=("L", "M", "N", "P", "S", "Zs"), exclude_characters="\ufffd")
JUNK_CHAR = st.characters(categories=("Co", "Cn", "Cc"), exclude_characters="\uf8ff").filter(
    lambda ch: not ch.isspace() and ord(ch) not in range(0x1F000, 0x1FC00)) | st.just("\ufffd")  # new emoji are Cn here


@pytest.mark.parametrize("clean", CLEANERS)
@pytest.mark.parametrize("text", [*KEYBOARD, KEYBOARD, *EMOJI, "".join(EMOJI), *EMOTICONS, "¿?", "…", "?!", "€50", "你好",
                                  "مرحبا", "नमस्ते", "שלום", "こんにちは 😊"])
def test_what_people_type_is_text(clean: Callable[[str, int], str], text: str) -> None:
    assert clean(text, MAX_CHARS) == " ".join(unicodedata.normalize("NFC", text).split())


@FUZZ
@pytest.mark.parametrize("clean", CLEANERS)
@given(text=st.text(VISIBLE, min_size=1, max_size=40).filter(lambda s: any(unicodedata.category(c)[0] in "LNPS" for c in s)))
def test_any_visible_text_passes(clean: Callable[[str, int], str], text: str) -> None:
    assert clean(text, MAX_CHARS)


@FUZZ
@pytest.mark.parametrize("clean", CLEANERS)
@given(junk=st.text(JUNK_CHAR, min_size=1, max_size=40), text=st.text(VISIBLE, max_size=3))
def test_mostly_junk_is_refused(clean: Callable[[str, int], str], junk: str, text: str) -> None:
    # At least one junk character to at most three others: always over a fifth junk.
    with pytest.raises((AgentError, ValueError), match="does not look like text"):
        clean(junk + text, MAX_CHARS)
