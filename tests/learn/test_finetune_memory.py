"""A fine-tune holds one model and one optimizer at a time: nothing of a fold outlives it, nothing of the run outlives
the run, and the report says what the run's memory peaked at."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from agent import memory
from agent.learn import multitask
from agent.learn.finetune import Options, finetune
from agent.settings import Settings
from conftest import DESK, two_plugin_home


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    """A home with `shop` and `desk`, both few-shot: `desk` is judged by three folds, then trained once more."""
    return two_plugin_home(tmp_path, DESK)


def live(kind: type) -> list[Any]:
    """The objects of a type the collector can see now (models and optimizers are tracked containers)."""
    return [o for o in gc.get_objects() if isinstance(o, kind)]


def test_no_fold_leaves_a_model_or_an_optimizer_behind(home: Settings, encoder, monkeypatch) -> None:
    import torch

    trained: list[weakref.ref] = []  # every encoder a training returned, weakly
    seen: list[tuple[int, int]] = []  # at each training's start: earlier models still alive, optimizers alive
    train = multitask.train_shared

    def watched(*args: Any, **kw: Any) -> Any:
        seen.append((sum(r() is not None for r in trained), len(live(torch.optim.Optimizer))))
        out = train(*args, **kw)
        trained.append(weakref.ref(out[0].model))
        return out

    monkeypatch.setattr(multitask, "train_shared", watched)
    before = len(live(torch.nn.Module))
    result = finetune(home.plugin_paths[0] / "desk", home, Options(device="cpu", epochs=1, force=True),  # type: ignore[index]
                      encoder=encoder)
    assert result.report["evaluation"]["cross_validated"]["folds"] == 3
    assert len(seen) == 4  # three folds, then the final run on every row
    assert seen == [(0, 0)] * 4  # no collection asked for: what a fold held was gone when the next one started
    assert [r() for r in trained] == [None] * 4  # nor does the run's own model outlive it (the chat app lives on)
    assert len(live(torch.nn.Module)) <= before and not live(torch.optim.Optimizer)


def test_the_report_records_peak_memory_beside_the_wall_time(home: Settings, encoder) -> None:
    result = finetune(home.plugin_paths[0] / "shop", home, Options(device="cpu", mode="head"), encoder=encoder)  # type: ignore[index]
    run = result.report["run"]
    assert 0 < memory.rss_mb() <= run["peak_rss_mb"] * 1.5 and "peak_gpu_mb" not in run  # a CPU run has no GPU figure
    assert f"{run['seconds']} s, peak RSS {run['peak_rss_mb']:.0f} MB" in (result.folder / "report.md").read_text()


def test_peaks_start_afresh_for_each_run() -> None:
    ballast = bytearray(64 * 2**20)  # 64 MB, touched
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])
    high = memory.peak_rss_mb()
    del ballast
    memory.release()
    memory.reset_peaks()
    assert memory.peak_rss_mb() < high - 32  # a later run does not report this one's peak


def test_length_groups_cap_padded_tokens_and_keep_every_row_once() -> None:
    lengths = [5, 40, 7, 12, 300, 6, 40, 9]
    groups = multitask.length_groups(lengths, 64)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(len(g) * max(lengths[i] for i in g) <= 64 or len(g) == 1 for g in groups)
    assert [4] in groups  # a row over the budget goes alone
    assert [lengths[i] for g in groups for i in g] == sorted(lengths)  # shortest first: little padding in a group


def _grads(net: Any) -> "Any":
    import torch

    return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])


@pytest.mark.parametrize("contrast", [False, True])
def test_gradients_taken_group_by_group_equal_those_of_the_whole_batch(encoder, contrast: bool) -> None:
    import copy

    import torch

    from agent.models.classifier import TextClassifier

    texts = ["hi", "where is my card", "I was charged twice for the same coffee this morning, please refund one",
             "card", "how do I change the PIN of my new debit card before I travel abroad next week", "thanks"]
    rows = multitask._token_ids(encoder, texts, 128)
    y, target = torch.tensor([0, 1, 0, 1, 1, 0]), torch.nn.functional.normalize(torch.randn(6, 384), dim=-1)
    head = TextClassifier(["a", "b"], torch.randn(2, 384).numpy(), torch.zeros(2).numpy(), "shared", {})
    groups = multitask.length_groups([len(r) for r in rows], 24)
    assert len(groups) == 3
    # the whole batch's loss over the same groups in one graph (dropout on, drawn in the same order)
    whole = multitask._MultiNet(copy.deepcopy(encoder.model).train(), [head])
    torch.manual_seed(0)
    outs = [whole(multitask._pad([rows[i] for i in g], torch.device("cpu")), 0) for g in groups]
    back = torch.tensor([i for g in groups for i in g]).argsort()
    logits, pooled = (torch.cat([o[n] for o in outs])[back] for n in (0, 1))
    loss = multitask._row_losses(logits, pooled, y, target, 0.5).mean() + (multitask.supcon(pooled, y) if contrast else 0)
    loss.backward()
    # the same batch, one group's activations at a time
    net = multitask._MultiNet(copy.deepcopy(encoder.model).train(), [head])
    torch.manual_seed(0)
    value = multitask._backward(net, rows, 0, y, target, contrast, 0.5, 24)
    assert value == pytest.approx(float(loss.detach()), rel=1e-5)
    assert torch.allclose(_grads(net), _grads(whole), atol=1e-6, rtol=1e-4)


def test_the_heap_is_trimmed_only_once_it_has_grown_past_the_slack(monkeypatch) -> None:
    sizes = iter([1000, 900, 950, 1000, 1100, 1030, 1000])  # RSS read after each step (and after each trim)
    trims: list[int] = []
    monkeypatch.setattr(memory, "rss_mb", lambda: next(sizes))
    monkeypatch.setattr(memory, "trim_heap", lambda: trims.append(1))
    trimmer = memory.Trimmer(slack_mb=100)
    for _ in range(5):
        trimmer()
    # the first step trims (floor 900); 950 and 1,000 stay within 100 MB of it; 1,100 trims (floor 1,030); 1,000 stays
    assert trimmer.trims == len(trims) == 2 and trimmer.floor == 1030


def test_the_fused_optimizer_takes_the_same_step_as_the_plain_one() -> None:
    import torch

    from agent.learn.trainer import adamw

    torch.manual_seed(0)
    start, grads = torch.randn(64, 32), [torch.randn(64, 32) for _ in range(3)]
    fused, plain = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    ours, reference = adamw([fused], lr=1e-2), torch.optim.AdamW([plain], lr=1e-2, weight_decay=0.01)
    assert ours.defaults["fused"]  # torch has a CPU kernel for it: the one-kernel path is the one taken
    for g in grads:
        fused.grad, plain.grad = g.clone(), g.clone()
        ours.step()
        reference.step()
    assert not torch.equal(fused, start) and torch.allclose(fused, plain, atol=1e-6)
