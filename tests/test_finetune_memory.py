"""A fine-tune holds one model and one optimizer at a time: nothing of a fold outlives it, nothing of the run outlives
the run, and the report says what the run's memory peaked at."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from agent import memory, multitask
from agent.finetune import Options, finetune
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
