"""Few rows per label: label-balanced batches, a contrastive term, label-name anchors, cross-validated judging."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from agent.learn import crossval, fewshot
from agent.learn.finetune import Options, finetune, plugin_versions
from agent.learn.multitask import LABELS, PER_LABEL, label_batches, supcon
from agent.learn.trainset import Row, TrainSet
from agent.plugin.manifest import load_manifest
from agent.reply.agent import Agent
from agent.settings import Settings
from conftest import DESK, models_of, two_plugin_home


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    """A home with `shop` and `desk` (labels without descriptions: their names become anchors)."""
    return two_plugin_home(tmp_path, DESK)


def test_label_batches_take_every_row_once_in_groups_of_one_label() -> None:
    import torch

    labels = [i % 40 for i in range(400)]  # 40 labels, 10 rows each
    batches = label_batches(labels, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(400))
    for b in batches[:-1]:
        per = Counter(labels[i] for i in b)
        assert len(per) <= LABELS and max(per.values()) <= PER_LABEL
    paired = sum(Counter(labels[i] for i in b)[labels[j]] > 1 for b in batches for j in b)
    assert paired > 0.9 * 400  # nearly every row meets another row of its label in its batch
    assert label_batches(labels, torch.Generator().manual_seed(1)) != batches


def test_one_label_with_many_more_rows_than_the_rest_is_not_left_in_one_huge_batch() -> None:
    import torch

    labels = [i % 10 for i in range(50)] + [10] * 500  # ten labels of 5 rows, one of 500
    batches = label_batches(labels, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(550))
    assert max(len(b) for b in batches) == LABELS * PER_LABEL


def test_the_contrastive_term_is_low_when_rows_sit_with_their_label() -> None:
    import torch

    y = torch.tensor([0, 0, 1, 1, 2, 2])
    grouped = torch.nn.functional.normalize(torch.eye(3)[y] + 0.01 * torch.randn(6, 3), dim=-1)
    mixed = torch.nn.functional.normalize(torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])] + 0.01 * torch.randn(6, 3), dim=-1)
    assert float(supcon(grouped, y)) < 0.1 < float(supcon(mixed, y))
    assert float(supcon(grouped, torch.tensor([0, 1, 2, 3, 4, 5]))) == 0.0  # no pairs: nothing to learn


def test_which_tasks_add_the_contrastive_term() -> None:
    from agent.learn.multitask import Task, contrasted

    def task(n_labels: int, few: bool = False) -> Task:
        return Task("t", [], [f"l{i % n_labels}" for i in range(10 * n_labels)], None, None, few)  # type: ignore[arg-type]

    assert contrasted([task(3), task(3), task(77, few=True)], 32) == [True, False, True]  # the asked plugin, a few-shot one
    assert contrasted([task(77), task(3)], 32) == [False, False]  # 77 labels in 32 rows: most rows meet no other of theirs
    assert contrasted([task(31)], 32) == [True] and contrasted([task(33)], 32) == [False]


def test_names_of_labels_without_a_description_become_anchor_rows(home: Settings) -> None:
    shop = load_manifest(home.plugin_paths[0] / "shop")  # type: ignore[index]
    desk = load_manifest(home.plugin_paths[0] / "desk")  # type: ignore[index]
    data = TrainSet([Row("I forgot my password", "password_reset", "examples")], [],
                    ["password_reset", "invoice_copy", "card_lost", "x42", "7"])
    assert [(r.text, r.label) for r in fewshot.name_anchors(desk, data)] == [
        ("password reset", "password_reset"), ("invoice copy", "invoice_copy"), ("card lost", "card_lost")]
    assert [r.label for r in fewshot.name_anchors(shop, data)] == ["password_reset", "invoice_copy"]  # card_lost is described
    assert fewshot.is_few(data)
    many = TrainSet([Row(f"text {i}", f"l{i % 2}", "examples") for i in range(100)], [], ["l0", "l1"])
    assert not fewshot.is_few(many)
    repeated = TrainSet([Row(f"text {i}", f"l{i % 2}", f"log:{i}") for i in range(30) for _ in range(3)], [], ["l0", "l1"])
    assert fewshot.is_few(repeated)  # a labelled turn trains three times but counts once


def test_folds_are_stable_and_spread_rows() -> None:
    texts = [f"message number {i}" for i in range(300)]
    folds = [crossval.fold_of(t) for t in texts]
    assert folds == [crossval.fold_of(t) for t in texts]
    assert min(Counter(folds).values()) > 60
    assert crossval.fold_of("Hello  World") == crossval.fold_of("hello world")  # folded text, as duplicates are


def test_with_turns_to_judge_only_they_are_split_and_every_other_row_always_trains() -> None:
    rows = [Row(f"example {i}", "a", "examples") for i in range(30)] + [Row(f"turn {i}", "b", f"log:{i}") for i in range(9)]
    judged = {f"turn {i}" for i in range(9)}
    plan = crossval.folds(rows, len(rows), judged)
    assert sorted(i for _, test, _ in plan for i in test) == list(range(30, 39))  # each judged turn once
    for _, test, fit in plan:
        assert set(range(30)) <= set(fit) and not set(test) & set(fit)
    everything = crossval.folds(rows, len(rows))
    assert sorted(i for _, test, _ in everything for i in test) == list(range(39))


def test_a_few_shot_plugin_trains_on_every_row_and_is_judged_on_all_of_them(home: Settings, encoder) -> None:
    desk = home.plugin_paths[0] / "desk"  # type: ignore[index]
    result = finetune(desk, home, Options(device="cpu", epochs=3, force=True), encoder=encoder)  # judged, then kept
    rep = result.report
    n = sum(len(v) for v in DESK.values())
    assert rep["data"]["holdout_rows"] == 0 and rep["data"]["train_rows"] == n and rep["data"]["anchor_rows"] == 3
    ev = rep["evaluation"]
    assert ev["cross_validated"]["folds"] == crossval.FOLDS and ev["candidate"]["n"] == n == ev["current"]["n"]
    assert "frozen-encoder head" in ev["cross_validated"]["rows"]
    assert "contrastive" in " ".join(rep["run"]["notes"])
    assert "cross-validated accuracy" in rep["decision"] and "tolerance 0.0" in rep["decision"]
    assert " vs the frozen-encoder head " in rep["decision"]  # not "vs current": no version is in use
    assert f"judged by 3-fold cross-validation on all {n} rows" in (result.folder / "report.md").read_text()
    assert (result.folder / "learned.jsonl").read_text().strip() == ""  # anchors are trained on, never learned
    assert result.status == "promoted"
    assert Agent(home, encoder=encoder).reply("reset my password please", plugin="desk").label == "password_reset"


def test_with_a_version_in_use_the_turns_it_never_saw_judge_the_next_one(home: Settings, encoder) -> None:
    desk = home.plugin_paths[0] / "desk"  # type: ignore[index]
    first = finetune(desk, home, Options(device="cpu", epochs=3, force=True), encoder=encoder)
    assert first.status == "promoted"
    agent = Agent(home, encoder=encoder)
    turn = agent.reply("my bill from march please", plugin="desk")
    agent.feedback(turn.turn_id, label="invoice_copy")
    second = finetune(desk, home, Options(device="cpu", epochs=3), encoder=encoder)
    ev = second.report["evaluation"]
    assert ev["candidate"]["n"] == 1 and ev["current_version"] == "v1"
    assert "never trained on" in ev["cross_validated"]["rows"]
    learned = [json.loads(line) for line in (second.folder / "learned.jsonl").read_text().splitlines() if line]
    assert [r["text"] for r in learned] == ["my bill from march please"]
    assert (models_of(home.home, "desk") / "v2" / "report.json").exists()


def test_mode_head_with_few_rows_is_judged_by_folds_too(home: Settings, encoder) -> None:
    desk = home.plugin_paths[0] / "desk"  # type: ignore[index]
    first = finetune(desk, home, Options(device="cpu", mode="head"), encoder=encoder)
    n = sum(len(v) for v in DESK.values())
    assert first.status == "promoted" and first.report["data"]["holdout_rows"] == 0
    assert first.report["data"]["anchor_rows"] == 3 and first.report["evaluation"]["candidate"]["n"] == n
    assert "no version in use to compare with" in first.report["decision"] and first.report["evaluation"]["current"] is None
    assert crossval.judged_by_folds_before(plugin_versions(home, desk))  # so its successors are judged by folds too
    agent = Agent(home, encoder=encoder)
    for text, label in [("my bill from march please", "invoice_copy"), ("parcel still not here", "delivery_time")]:
        agent.feedback(agent.reply(text, plugin="desk").turn_id, label=label)
    second = finetune(desk, home, Options(device="cpu", mode="head", force=True), encoder=encoder)  # judged, then kept
    ev = second.report["evaluation"]
    assert second.status == "promoted" and ev["current_version"] == "v1" and ev["candidate"]["n"] == 2 == ev["current"]["n"]
    assert "2 labelled turns v1 never trained on" in ev["cross_validated"]["rows"]
    assert "cross-validated accuracy" in second.report["decision"] and "tolerance 0.0" in second.report["decision"]
    assert " vs v1 " in second.report["decision"] and second.report["run"]["mode"] == "head"
    third = finetune(desk, home, Options(device="cpu", mode="head"), encoder=encoder)  # v2 trained on every turn
    assert third.status == "rejected" and third.report["evaluation"]["current"] is None
    assert "v2 has trained on every labelled turn" in third.report["decision"] and "--force" in third.report["decision"]
    forced = finetune(desk, home, Options(device="cpu", mode="head", force=True), encoder=encoder)
    assert forced.status == "promoted" and "without a comparison" in forced.report["decision"]
