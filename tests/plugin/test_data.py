"""CSV/JSONL readers: errors name the file, line, what was expected and found, and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import DataError
from agent.plugin.data import read_rows


def test_reads_csv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('text,label\n"hello, there",greet\n')
    (tmp_path / "a.jsonl").write_text('{"text": "hi", "label": "greet"}\n\n')
    assert read_rows(tmp_path / "a.csv", ["text", "label"]) == [{"text": "hello, there", "label": "greet"}]
    assert read_rows(tmp_path / "a.jsonl", ["text", "label"]) == [{"text": "hi", "label": "greet"}]


def test_wrong_columns(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("utterance,label\nhi,greet\n")
    with pytest.raises(DataError) as err:
        read_rows(tmp_path / "x.csv", ["text", "label"], "rename the column")
    assert str(err.value) == (f"expected columns ['text', 'label'] in {tmp_path / 'x.csv'}, "
                              "found ['utterance', 'label']; rename the column")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_rows(tmp_path / "nope.csv", ["text"])


def test_empty_value_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("text,label\nhi,greet\n,greet\n")
    with pytest.raises(DataError, match=r"x.csv:3: empty value in column 'text'"):
        read_rows(tmp_path / "x.csv", ["text", "label"])


def test_a_quote_left_open_is_named_on_the_line_it_opens(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text('text,label\n\nhi,greet\n"two\nlines",greet\n"never closed,greet\nbye,greet\n')
    with pytest.raises(DataError, match=r"q.csv:6: a quote \(\"\) opened on this line is never closed"):
        read_rows(tmp_path / "q.csv", ["text", "label"])


def test_not_utf8_and_binary(tmp_path: Path) -> None:
    (tmp_path / "latin.csv").write_bytes("text,label\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv:2: not UTF-8"):
        read_rows(tmp_path / "latin.csv", ["text", "label"])
    (tmp_path / "bin.csv").write_bytes(b"text,label\n\x00\x01\x02,x\n")
    with pytest.raises(DataError, match="binary"):
        read_rows(tmp_path / "bin.csv", ["text", "label"])


def test_broken_jsonl_line(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"text": "a", "label": "b"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"x.jsonl:2: invalid JSON"):
        read_rows(tmp_path / "x.jsonl", ["text", "label"])
