"""plugin.toml -> Manifest: validated, with errors that name the file, the key and the fix."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import PluginError

ROLES = ("responder", "observer")
TOP_KEYS = {"name", "description", "role", "version", "labels", "data", "retrieval", "thresholds", "fallback", "privacy",
            "finetune"}
PII_KINDS = ("email", "iban", "id", "card", "account", "phone")  # agent.text.guard.KINDS, without importing it here


@dataclass
class Thresholds:
    """When the agent refuses to guess."""

    min_confidence: float = 0.40
    min_margin: float = 0.05
    min_similarity: float = 0.40
    two_choices: float = 0.5  # a fallback whose second label is this likely relative to the first offers both
    second_choice: float = 0.8  # an answer whose second label is this likely relative to the first offers it too


@dataclass
class Retrieval:
    """The corpus a plugin answers from."""

    corpus: str
    id_column: str = "id"
    text_columns: list[str] = field(default_factory=lambda: ["question"])
    answer_column: str = "answer"
    label_column: str | None = "label"
    top_k: int = 3


@dataclass
class Privacy:
    """What is redacted from this plugin's turns before they are stored or trained on."""

    redact: tuple[str, ...] = PII_KINDS
    store_raw: bool = False  # True writes messages unredacted: only for plugins that never see customer data


@dataclass
class Policy:
    """When a plugin fine-tunes itself: after this many new labelled turns, at most once per period."""

    after_labels: int = 20
    min_hours: float = 24.0
    mode: str | None = None
    max_minutes: float | None = None


@dataclass
class Manifest:
    """A plugin's declared name, role, labels, data, corpus and thresholds."""

    path: Path
    name: str
    description: str
    role: str
    version: str = "0.1.0"
    labels: dict[str, str] = field(default_factory=dict)
    examples: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    retrieval: Retrieval | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    privacy: Privacy = field(default_factory=Privacy)
    finetune: "Policy | None" = None  # when the plugin fine-tunes itself ([finetune]); agent.learn.schedule says when it is due
    tables: dict[str, Any] = field(default_factory=dict)  # tables that plugins register (register_tables), parsed by them
    fallback_message: str = "I'm not sure I understood that, so I'd rather not guess."
    handoff: str = "Would you like me to pass you to a person?"
    source: str = ""  # where discovery found it: a folder, or "package DIST VERSION (entry point NAME)"
    hooks_object: Any = field(default=None, repr=False, compare=False)  # an installed package's hook module

    @property
    def folder(self) -> Path:
        """The plugin folder."""
        return self.path.parent

    def data_file(self, rel: str, key: str) -> Path:
        """Resolve a data path inside the plugin folder; refuse paths that leave it."""
        target = (self.folder / rel).resolve()
        if not target.is_relative_to(self.folder.resolve()):
            raise PluginError(f"{self.path}: {key} = {rel!r} points outside the plugin folder; keep data files inside {self.folder}")
        if not target.is_file():
            found = sorted(p.name for p in self.folder.glob("*.csv")) + sorted(p.name for p in self.folder.glob("*.jsonl"))
            raise PluginError(f"{self.path}: {key} = {rel!r}: no such file in {self.folder}; fix the name"
                              f" (data files there: {', '.join(found) or 'none'})")
        return target


class TableReader:
    """Typed access to one TOML table, naming the key at fault."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = "") -> None:
        self.path, self.table, self.prefix = path, table, prefix

    def fail(self, key: str, expected: str, found: Any) -> PluginError:
        """An error naming file and key."""
        return PluginError(f"{self.path}: key '{self.prefix}{key}' must be {expected}, found {_show(found)}; fix it in the file")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., expected: str = "") -> Any:
        """The value at key, of the given kind, or the default; missing required keys fail."""
        if key not in self.table:
            if default is ...:
                raise PluginError(f"{self.path}: missing required key '{self.prefix}{key}'; add it (see plugins/customer_service/plugin.toml)")
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise self.fail(key, expected or "a number", value) from None
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.fail(key, expected or getattr(kind, "__name__", str(kind)), value)
        return value

    def sub(self, key: str, allowed: set[str]) -> "TableReader | None":
        """A nested table, or None when absent; keys outside `allowed` are refused (likely typos)."""
        value = self.get(key, dict, None, "a table")
        if value is None:
            return None
        refuse_unknown(self.path, value, allowed, f" in [{self.prefix}{key}]")
        return TableReader(self.path, value, f"{self.prefix}{key}.")


def _show(value: Any, limit: int = 80) -> str:
    """A short repr of a value for an error message (huge numbers and long strings are cut)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"<an integer of more than {limit} digits>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def refuse_unknown(path: Path, table: dict[str, Any], allowed: set[str], where: str = "") -> None:
    """Refuse keys outside `allowed`, naming the line and the likely intended key."""
    import difflib

    unknown = sorted(set(table) - allowed)
    if not unknown:
        return
    key = unknown[0]
    guess = difflib.get_close_matches(key, sorted(allowed), n=1)
    hint = f"did you mean '{guess[0]}'?" if guess else f"expected only {sorted(allowed)}"
    raise PluginError(f"{path}{_line_of(path, key)}: unknown key '{key}'{where}; {hint}"
                      + (f" (also unknown: {unknown[1:]})" if unknown[1:] else ""))


def _line_of(path: Path, key: str) -> str:
    """':LINE' where `key = ...` is written in the file, or '' when it cannot be found."""
    import re

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    match = re.search(rf'^[ \t]*"?{re.escape(key)}"?[ \t]*=', text, re.M)
    return f":{text.count(chr(10), 0, match.start()) + 1}" if match else ""


def load_manifest(path: Path) -> Manifest:
    """Read and validate a plugin.toml."""
    path = Path(path)
    if path.is_dir():
        path = path / "plugin.toml"
    if not path.is_file():
        raise PluginError(f"{path}: no plugin.toml here; a plugin folder needs one (agent new-plugin DIR creates it)")
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PluginError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PluginError(f"{path}: invalid TOML: {exc}; fix the syntax at that line") from exc
    except RecursionError as exc:
        raise PluginError(f"{path}: invalid TOML: arrays or tables nested too deeply; simplify the file") from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise PluginError(f"{path}: invalid TOML: {str(exc)[:120]}; fix the value") from exc
    return _build(path, raw)


def _build(path: Path, raw: dict[str, Any]) -> Manifest:
    """Turn parsed TOML into a Manifest."""
    from agent.plugin import contributions

    registered = contributions.tables()
    r = TableReader(path, raw)
    refuse_unknown(path, raw, TOP_KEYS | set(registered))
    name = r.get("name", str, expected="a string")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise r.fail("name", "letters, digits, '_' or '-'", name)
    role = r.get("role", str, "responder")
    if role not in ROLES:
        raise r.fail("role", f"one of {list(ROLES)}", role)
    m = Manifest(path=path, name=name, description=r.get("description", str), role=role, version=r.get("version", str, "0.1.0"))
    m.labels = _labels(r)
    _data(r, m)
    m.retrieval = _retrieval(r)
    m.thresholds = _thresholds(r)
    m.privacy = _privacy(r)
    m.finetune = _policy(r)
    m.tables = {table: parse(r, m) for table, parse in registered.items()}
    if fb := r.sub("fallback", {"message", "handoff"}):
        m.fallback_message = fb.get("message", str, m.fallback_message)
        m.handoff = fb.get("handoff", str, m.handoff)
    return m


def _labels(r: TableReader) -> dict[str, str]:
    """labels = ["a", "b"] or [labels] a = "description"."""
    value = r.get("labels", (list, dict), {}, "a list of names or a table of name = description")
    if isinstance(value, list):
        if not all(isinstance(v, str) and v for v in value):
            raise r.fail("labels", "a list of non-empty strings", value)
        return {v: "" for v in value}
    bad = {k: v for k, v in value.items() if not isinstance(v, str)}
    if bad:
        raise r.fail(f"labels.{next(iter(bad))}", "a one-line description string", next(iter(bad.values())))
    return dict(value)


def _data(r: TableReader, m: Manifest) -> None:
    """The [data] table: labelled examples."""
    if d := r.sub("data", {"examples", "text_column", "label_column"}):
        m.examples = d.get("examples", str, None)
        m.text_column = d.get("text_column", str, "text")
        m.label_column = d.get("label_column", str, "label")


def _retrieval(r: TableReader) -> Retrieval | None:
    """The [retrieval] table: the answer corpus."""
    if not (t := r.sub("retrieval", {"corpus", "id_column", "text_columns", "answer_column", "label_column", "top_k"})):
        return None
    cols = t.get("text_columns", list, ["question"])
    if not cols or not all(isinstance(c, str) for c in cols):
        raise t.fail("text_columns", "a non-empty list of column names", cols)
    top_k = t.get("top_k", int, 3)
    if not 1 <= top_k <= 50:
        raise t.fail("top_k", "an integer from 1 to 50", top_k)
    return Retrieval(
        corpus=t.get("corpus", str),
        id_column=t.get("id_column", str, "id"),
        text_columns=cols,
        answer_column=t.get("answer_column", str, "answer"),
        label_column=t.get("label_column", str, "label") or None,
        top_k=top_k,
    )


def _thresholds(r: TableReader) -> Thresholds:
    """The [thresholds] table, each a number in [0, 1]."""
    th = Thresholds()
    keys = ("min_confidence", "min_margin", "min_similarity", "two_choices", "second_choice")
    if t := r.sub("thresholds", set(keys)):
        for key in keys:
            value = t.get(key, float, getattr(th, key), "a number from 0 to 1")
            if not 0.0 <= value <= 1.0:
                raise t.fail(key, "a number from 0 to 1", value)
            setattr(th, key, value)
    return th


def _privacy(r: TableReader) -> Privacy:
    """The [privacy] table: which kinds of personal data are redacted, and whether raw text may be stored."""
    privacy = Privacy()
    if t := r.sub("privacy", {"redact", "store_raw"}):
        kinds = t.get("redact", list, list(PII_KINDS), f"a list drawn from {list(PII_KINDS)}")
        if not all(k in PII_KINDS for k in kinds):
            raise t.fail("redact", f"a list drawn from {list(PII_KINDS)}", kinds)
        privacy = Privacy(tuple(kinds), t.get("store_raw", bool, False, "true or false"))
    return privacy


def _policy(r: TableReader) -> Policy | None:
    """The [finetune] table, each key checked, or None when the plugin has none."""
    import math

    t = r.sub("finetune", {"after_labels", "min_hours", "mode", "max_minutes"})
    if t is None:
        return None
    modes = ["shared", "full", "lora", "head"]
    p = Policy(after_labels=t.get("after_labels", int, 20, "a whole number of labelled turns, 1 or more"),
               min_hours=t.get("min_hours", float, 24.0, "a number of hours, 0 or more"),
               mode=t.get("mode", str, None, f"one of {modes}"),
               max_minutes=t.get("max_minutes", float, None, "a number of minutes above 0"))
    if p.after_labels < 1:
        raise t.fail("after_labels", "a whole number of labelled turns, 1 or more", p.after_labels)
    if not 0 <= p.min_hours < math.inf:
        raise t.fail("min_hours", "a number of hours, 0 or more", p.min_hours)
    if p.mode is not None and p.mode not in modes:
        raise t.fail("mode", f"one of {modes}", p.mode)
    if p.max_minutes is not None and not 0 < p.max_minutes < math.inf:
        raise t.fail("max_minutes", "a number of minutes above 0", p.max_minutes)
    return p
