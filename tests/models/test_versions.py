"""Model versions and training data: pointer switching, rollback, pruning, partial clean-up, splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ModelError
from agent.learn import trainset
from agent.learn.trainset import Row
from agent.models.versions import Versions


def finished(v: Versions) -> str:
    """Write and finish an empty version."""
    name, partial = v.start()
    (partial / "config.json").write_text("{}")
    v.finish(name, partial)
    return name


def test_versions_promote_rollback_and_prune(tmp_path: Path) -> None:
    v = Versions(tmp_path)
    assert v.current() is None and v.stamp() is None
    first, second = finished(v), finished(v)
    assert (first, second) == ("v1", "v2")
    v.promote(first)
    v.promote(second)
    assert v.current() == "v2" and v.history() == ["v1", "v2"]
    assert v.rollback() == ("v2", "v1")
    assert v.current() == "v1"
    with pytest.raises(ModelError, match="no earlier promoted version"):
        v.rollback()
    for _ in range(5):
        finished(v)
    removed = v.prune(keep=2)
    assert "v1" not in removed and v.current() == "v1"
    assert v.finished()[-2:] == ["v6", "v7"] and len(v.finished()) == 3


def test_partial_versions_are_invisible_and_cleaned(tmp_path: Path) -> None:
    v = Versions(tmp_path)
    v.promote(finished(v))
    name, partial = v.start()
    (partial / "model.safetensors").write_bytes(b"half")
    assert name == "v2" and v.finished() == ["v1"] and v.current() == "v1"
    assert v.clean_partials() == [partial.name]
    assert not partial.exists()
    with pytest.raises(ModelError, match="no finished version"):
        v.promote("v2")


def test_one_finetune_per_plugin_at_a_time(tmp_path: Path) -> None:
    v = Versions(tmp_path)
    with v.lock():
        with pytest.raises(ModelError, match="another fine-tune"):
            with Versions(tmp_path).lock():
                pass
    with v.lock():  # released
        pass


def test_trainset_merges_duplicates_and_resolves_conflicts() -> None:
    examples = [("Block my card", "card_lost"), ("block  my CARD", "card_lost"), ("where is my refund", "refund"),
                ("where is my refund", "refund"), ("Where is my refund", "card_lost")]
    logged = [Row("Is my card blocked? mail me at a.b@example.com", "card_lost", "log:1"),
              Row("where is my refund", "refund_status", "log:2")]
    ts = trainset.build(examples, logged, ["card_lost", "refund"], holdout=0.0)
    texts = {r.text: r.label for r in ts.train}
    assert texts["where is my refund"] == "refund_status"  # a person's correction wins
    assert ts.duplicates == 4  # 7 rows, 3 distinct texts
    assert [c["chosen"] for c in ts.conflicts] == ["refund_status"]
    assert "refund_status" in ts.new_labels
    assert any("<EMAIL>" in t for t in texts) and ts.redactions == 1
    assert sum(r.source == "log:1" for r in ts.train) == trainset.LOG_REPEAT


def test_holdout_is_stable_and_only_from_examples() -> None:
    examples = [(f"message number {i} about {lab}", lab) for lab in ("a", "b") for i in range(40)]
    logged = [Row(f"logged {i}", "a", f"log:{i}") for i in range(20)]
    first = trainset.build(examples, logged, ["a", "b"], holdout=0.25)
    again = trainset.build(list(reversed(examples)), logged[:5], ["a", "b"], holdout=0.25)
    assert {r.text for r in first.holdout} == {r.text for r in again.holdout}
    assert 5 < len(first.holdout) < 35
    assert all(r.source == "examples" for r in first.holdout)


def test_resolve_feedback_rules() -> None:
    turn = {"label": "a", "fallback_reason": None, "feedback": [{"kind": "good", "label": None}]}
    assert trainset._resolve_feedback(turn) == "a"
    assert trainset._resolve_feedback({**turn, "fallback_reason": "low_confidence"}) is None
    assert trainset._resolve_feedback({**turn, "feedback": [{"kind": "bad", "label": None}]}) is None
    fixed = [{"kind": "label", "label": "b"}, {"kind": "bad", "label": None}, {"kind": "label", "label": "c"}]
    assert trainset._resolve_feedback({**turn, "feedback": fixed}) == "c"


def dead_pid() -> int:
    """The id of a process that has exited."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_processes_are_cleaned_and_live_ones_kept(tmp_path: Path) -> None:
    import os

    from agent.models.retrieval import clean_stale

    v = Versions(tmp_path)
    v.promote(finished(v))
    gone = dead_pid()
    dead_dir, live_dir = v.root / f".partial-v7-{gone}", v.root / f".partial-v8-{os.getpid()}"
    dead_tmp, live_tmp = v.root / f".current.{gone}.ab12cd34.tmp", v.root / f".current.{os.getpid()}.zz99yy88.tmp"
    for d in (dead_dir, live_dir):
        d.mkdir()
    for f in (dead_tmp, live_tmp):
        f.write_bytes(b"half")
    assert sorted(v.clean_partials(dead_only=True)) == sorted([dead_dir.name, dead_tmp.name])
    assert live_dir.exists() and live_tmp.exists() and not dead_dir.exists() and not dead_tmp.exists()
    assert clean_stale(v.root) == [] and v.current() == "v1"
