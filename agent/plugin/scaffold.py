"""New plugin folders: a commented sample to edit, or one built from a labelled CSV and label descriptions."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from agent.errors import PluginError
from agent.plugin import templates as T
from agent.plugin.data import columns, numbered_rows, read_rows


@dataclass
class FaqColumns:
    """The FAQ's column names; None: found by the usual name in any case (see `_faq_columns`)."""

    question: str | None = None
    answer: str | None = None
    id: str | None = None
    label: str | None = None


def slug(name: str) -> str:
    """A plugin name from a folder name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "plugin"


def copy_plugin(source: Path, dest: Path, name: str, force: bool = False) -> Path:
    """Copy a plugin folder (its manifest, data and hooks; no caches) to DEST under a new name; the manifest path."""
    import shutil

    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()) and not force:
        raise PluginError(f"{dest} already exists and is not empty; choose a new folder or pass --force")
    shutil.copytree(source, dest, dirs_exist_ok=True, ignore=_inputs_only)
    manifest = dest / "plugin.toml"
    text = manifest.read_text(encoding="utf-8")
    renamed, n = re.subn(r'(?m)^name\s*=\s*"[^"]*"', f"name = {json.dumps(name)}", text, count=1)
    if not n:
        raise PluginError(f"{source / 'plugin.toml'}: no top-level name = \"...\" line to rename; copy it by hand")
    manifest.write_text(renamed, encoding="utf-8")
    return manifest


def _inputs_only(folder: str, names: list[str]) -> list[str]:
    """What not to copy out of a plugin folder: caches, its own tests, and model folders of the old layout."""
    here = Path(folder)
    return [n for n in names if n == "__pycache__" or n.startswith(("test_", ".partial-"))
            or (here / n / "current").is_file() or (here / n / "history.json").is_file()]


def scaffold(dest: Path, role: str = "responder", name: str | None = None, examples: Path | None = None,
             labels: Path | None = None, faq: Path | None = None, text_column: str = "text",
             label_column: str = "label", force: bool = False, faq_columns: FaqColumns | None = None) -> Path:
    """Write DEST/plugin.toml, its data files, hooks.py and test_NAME.py; return the manifest path.

    With neither `examples` nor `labels`, the data are commented samples to replace; otherwise the
    labels come from a `label,description` CSV and/or the labelled examples.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()) and not force:
        raise PluginError(f"{dest} already exists and is not empty; choose a new folder or pass --force")
    if role == "observer" and faq is not None:
        raise PluginError("an observer never answers, so it takes no --faq; drop it or use --role responder")
    name = slug(name or dest.name)
    if examples is None and labels is None:
        sample = T.SAMPLES[role]
        described, rows, faq_rows, source = dict(sample["labels"]), list(sample["examples"]), list(sample["faq"]), "samples"
        cases = list(sample["cases"])
    else:
        described, rows = _read_labels(labels), _read_examples(examples, text_column, label_column)
        described = _merge_labels(described, rows, labels, examples)
        faq_rows = _read_faq(faq, set(described), _faq_columns(faq, faq_columns, examples, label_column)) if faq else []
        source = ", ".join(p.name for p in (labels, examples, faq) if p)
        cases = _cases(rows or [(d, lab) for lab, d in described.items() if d])
    dest.mkdir(parents=True, exist_ok=True)
    if rows:
        _write_csv(dest / "examples.csv", ["text", "label"], rows)
    has_label = any(r[3] for r in faq_rows) if faq_rows else False
    if faq_rows:
        _write_csv(dest / "faq.csv", ["id", "question", "answer", "label"], faq_rows)
    (dest / "plugin.toml").write_text(_manifest(name, role, source, described, bool(rows), bool(faq_rows), has_label),
                                      encoding="utf-8")
    (dest / "hooks.py").write_text(T.HOOKS.format(name=name), encoding="utf-8")
    test = T.TEST.format(name=name, name_q=json.dumps(name), folder=dest.as_posix(), cases=_py_list(cases))
    (dest / f"test_{name.replace('-', '_')}.py").write_text(test, encoding="utf-8")
    return dest / "plugin.toml"


def _manifest(name: str, role: str, source: str, labels: dict[str, str], has_examples: bool, has_faq: bool,
              faq_labels: bool) -> str:
    """The commented plugin.toml text."""
    description = json.dumps(f"{name}: {len(labels)} labels, from {source}; describe the plugin in one line")
    lines = "\n".join(f"{_key(k)} = {json.dumps(v)}" for k, v in labels.items())
    text = T.MANIFEST_HEAD.format(name=name, name_q=json.dumps(name), description=description, role=role, labels=lines)
    if has_examples:
        text += T.DATA
    if has_faq:
        text += T.RETRIEVAL.format(label_column="label" if faq_labels else "")
    if role == "responder":
        text += T.THRESHOLDS + T.FALLBACK
    return text


def _key(label: str) -> str:
    """A TOML key: bare when it can be, quoted otherwise."""
    return label if re.fullmatch(r"[A-Za-z0-9_-]+", label) else json.dumps(label)


def _read_labels(path: Path | None) -> dict[str, str]:
    """label -> description from a CSV with columns label,description."""
    if path is None:
        return {}
    rows = read_rows(path, ["label", "description"], "the labels file needs columns label,description")
    out: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        label = row["label"].strip()
        if not label:
            raise PluginError(f"{path}:{line}: empty label; give every row a label name")
        if label in out:
            raise PluginError(f"{path}:{line}: label '{label}' appears twice; keep one row per label")
        out[label] = " ".join(row["description"].split())
    return out


def _read_examples(path: Path | None, text_column: str, label_column: str) -> list[tuple[str, str]]:
    """(text, label) rows of a labelled CSV/JSONL; the columns are matched in any case ('Text' is text)."""
    if path is None:
        return []
    found = columns(path)
    text_column = _column(path, found, text_column) or text_column
    label_column = _column(path, found, label_column) or label_column
    rows = read_rows(path, [text_column, label_column], "pass --text-column / --label-column to name the columns")
    if not rows:
        raise PluginError(f"{path}: no rows; a plugin needs labelled examples (or only --labels)")
    return [(r[text_column], r[label_column]) for r in rows]


def _column(path: Path, found: list[str], wanted: str, option: str | None = None) -> str | None:
    """The column named `wanted` (exactly, else in any case); None if absent, or an error naming `option` when given."""
    match = next((c for c in found if c == wanted), None) or next((c for c in found if c.casefold() == wanted.casefold()), None)
    if match is None and option is not None:
        raise PluginError(f"{path}: no column '{wanted}' (in any case) among the columns found, {found}; "
                          f"pass {option} NAME to say which column holds it")
    return match


def _merge_labels(described: dict[str, str], rows: list[tuple[str, str]], labels: Path | None,
                  examples: Path | None) -> dict[str, str]:
    """All labels: those described, then those only in the examples (refused when a labels file is given)."""
    found = sorted({label for _, label in rows})
    extra = [lab for lab in found if lab not in described]
    if labels is not None and extra:
        raise PluginError(f"{examples}: label(s) {extra[:5]} are not in {labels}; add a row for each there")
    merged = {**described, **{lab: "" for lab in extra}}
    if len(merged) < 2:
        raise PluginError(f"{labels or examples}: only the label(s) {list(merged)}; a plugin needs at least 2")
    return merged


def _faq_columns(src: Path, given: FaqColumns | None, examples: Path | None, label_column: str) -> FaqColumns:
    """The FAQ's columns: those given, else the usual names in any case (the label: the examples' when it is that file)."""
    given, found = given or FaqColumns(), columns(src)
    same = examples is not None and Path(examples).resolve() == Path(src).resolve()
    label = given.label or (label_column if same else "label")
    return FaqColumns(
        question=_column(src, found, given.question or "question", "--faq-question-column"),
        answer=_column(src, found, given.answer or "answer", "--faq-answer-column"),
        id=_column(src, found, given.id, "--faq-id-column") if given.id else _column(src, found, "id"),
        label=_column(src, found, given.label, "--faq-label-column") if given.label
        else _column(src, found, label, "--label-column" if same else None))


def _read_faq(src: Path, labels: set[str], cols: FaqColumns) -> list[tuple[str, str, str, str]]:
    """FAQ rows (id, question, answer, label), ids faq-0001... when none; unknown labels, repeated ids or questions refused."""
    assert cols.question and cols.answer
    required = [cols.question, cols.answer, *([cols.id] if cols.id else [])]
    rows = list(numbered_rows(src, required, "fill in every question and answer, or delete the line"))
    width = max(4, len(str(len(rows))))
    out: list[tuple[str, str, str, str]] = []
    seen_ids: dict[str, int] = {}
    seen_questions: dict[str, int] = {}
    for n, (line, row) in enumerate(rows, start=1):
        entry_id = row[cols.id] if cols.id else f"faq-{n:0{width}d}"
        label = row.get(cols.label, "") if cols.label else ""
        if label and label not in labels:
            raise PluginError(f"{src}:{line}: label '{label}' is not among the plugin's labels; fix the row")
        _once(seen_ids, entry_id, src, line, f"id '{entry_id}'", "give every row its own id")
        _once(seen_questions, " ".join(row[cols.question].casefold().split()), src, line,
              f"question '{row[cols.question][:60]}'", "keep one row per question")
        out.append((entry_id, row[cols.question], row[cols.answer], label))
    return out


def _once(seen: dict[str, int], key: str, src: Path, line: int, what: str, fix: str) -> None:
    """Remember `key` at `line`, or refuse it when an earlier line had it."""
    if key in seen:
        raise PluginError(f"{src}:{line}: {what} is already on line {seen[key]}; {fix}")
    seen[key] = line


def _cases(rows: list[tuple[str, str]], limit: int = 10) -> list[tuple[str, str]]:
    """One example of each of the first labels, as starting test cases."""
    seen: dict[str, str] = {}
    for text, label in rows:
        seen.setdefault(label, text)
    return [(text, label) for label, text in list(seen.items())[:limit]]


def _py_list(cases: list[tuple[str, str]]) -> str:
    """A Python list literal of (text, label) pairs, one per line."""
    if not cases:
        return "[]"
    return "[\n" + "".join(f"    ({json.dumps(t)}, {json.dumps(lab)}),\n" for t, lab in cases) + "]"


def _write_csv(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> None:
    """Write a UTF-8 CSV with a header."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
