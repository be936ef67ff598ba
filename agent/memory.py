"""What a fine-tune holds in memory: its peaks (resident and GPU), and handing back what a finished run left."""

from __future__ import annotations

import gc
import resource
import sys
from functools import cache
from pathlib import Path
from typing import Any

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: since reset_peaks() where Linux allows, else since start."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc (macOS): the kernel's figure since start
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def rss_mb() -> float:
    """Resident memory of this process now, in MB (0.0 where /proc is missing)."""
    return _status_mb("VmRSS") or 0.0


def _status_mb(field: str) -> float | None:
    """A size line of /proc/self/status (VmRSS, VmHWM) in MB; None without /proc."""
    try:
        lines = STATUS.read_text().splitlines()
    except OSError:
        return None
    return next((round(int(line.split()[1]) / 1024, 1) for line in lines if line.startswith(field + ":")), None)


def reset_peaks() -> None:
    """Start the peaks afresh, so a long-lived process (the chat app) reports this run's, not its own since start."""
    try:
        CLEAR_REFS.write_text("5")  # Linux: "5" resets VmHWM to the current RSS and touches nothing else
    except OSError:
        pass  # not Linux, or not allowed: the peak since the process started is still an upper bound
    if _cuda_started():
        sys.modules["torch"].cuda.reset_peak_memory_stats()


def peaks(device: str) -> dict[str, float]:
    """The run's peak RSS (MB) and, on CUDA, the peak GPU memory torch allocated (MB), JSON-ready."""
    out = {"peak_rss_mb": peak_rss_mb()}
    if device.startswith("cuda"):
        import torch

        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def release() -> None:
    """Hand back what a finished training left: objects only a cycle keeps, torch's CUDA cache, free heap pages.
    Between folds this keeps one model and one optimizer alive at a time; glibc keeps freed activations otherwise."""
    gc.collect()
    if _cuda_started():
        sys.modules["torch"].cuda.empty_cache()
    trim_heap()


def _cuda_started() -> bool:
    """Whether this process has used CUDA (torch imported and its CUDA context made); never imports torch itself."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()


TRIM_SLACK_MB = 128  # growth since the last trim a training loop lets the heap keep before handing pages back


class Trimmer:
    """Hands freed heap back during a training loop, once the process has grown TRIM_SLACK_MB past where the last
    trim left it. glibc otherwise keeps the pages of freed activations of every shape a run has seen, and the peak
    creeps up step by step; trimming after every step instead re-faults (and zeroes) each step's activations, which
    cost 6% of a full BANKING77 training step (16% when a batch is taken in one pass)."""

    def __init__(self, slack_mb: float = TRIM_SLACK_MB) -> None:
        self.slack_mb, self.floor, self.trims = slack_mb, None, 0

    def __call__(self) -> None:
        """After a step: trim when the process is more than the slack above the last trim's floor."""
        now = rss_mb()
        if self.floor is not None and now <= self.floor + self.slack_mb:
            return
        trim_heap()
        self.floor, self.trims = rss_mb(), self.trims + 1


def trim_heap() -> None:
    """glibc's malloc_trim(0): return the free pages of every arena to the system (nothing elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Any:
    """libc's malloc_trim, or None where there is none (not Linux, musl)."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # the process's own symbols include libc's
    except (OSError, AttributeError):
        return None
