"""A plugin's model versions: `vN/` folders, a `current` pointer switched atomically, history, rollback.

Versions live in the home, never in the plugin folder (which may be an installed package):
`HOME/models/NAME/` holds the classifier's versions, `HOME/models/NAME/FOLDER/` those of another
fine-tuner (a recommender's interest model). Layout of each:
  vN/                 a finished version (weights, config.json, report.json, report.md)
  .partial-vN-PID/    a version being written; renamed to vN/ only once complete
  current             a one-line text file naming the version in use (replaced by rename)
  history.json        the promoted versions, oldest first (rollback walks back through it)
  .lock               held (flock) by the one fine-tune allowed per plugin at a time
A `kill -9` at any moment leaves either the old or the new `current`, never half of one; partial
folders left behind are removed by the next run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from agent.errors import ModelError
from agent.models.retrieval import atomic_write, clean_stale, pid_alive

KEEP = 3  # finished versions kept besides the current one and the one before it
_VERSION = re.compile(r"^v(\d+)$")
_PARTIAL = re.compile(r"^\.partial-v(\d+)-(\d+)$")


def versions_for(models_root: Path, manifest: Any, folder: str = "") -> "Versions":
    """The versions of one plugin in the home. A model folder in the plugin's own folder (the old layout)
    is taken over on first use, `current` and history included: moved when the plugin folder lies in
    the home (a checkout is its own home), copied otherwise, so another home never takes it away."""
    target = Path(models_root) / manifest.name / folder if folder else Path(models_root) / manifest.name
    legacy = manifest.folder / (folder or "model")
    if not _has_versions(target) and _has_versions(legacy):
        adopt(legacy, target, move=legacy.resolve().is_relative_to(Path(models_root).resolve().parent))
    return Versions(target)


def _has_versions(root: Path) -> bool:
    """Whether a folder holds a `current` pointer or a finished version."""
    try:
        return (root / "current").is_file() or any(_VERSION.match(p.name) and p.is_dir() for p in root.iterdir())
    except OSError:
        return False


def adopt(legacy: Path, target: Path, move: bool) -> None:
    """Take an old-layout model folder into the home: one rename, or a copy renamed into place (also when
    the rename fails: a read-only folder, another file system). One process at a time; a lost race is fine."""
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".adopt-{target.name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if _has_versions(target) or not _has_versions(legacy):  # another process took it over meanwhile
            return
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # an empty folder left by a lock or a cancelled run
        if move and not target.exists():
            try:
                os.rename(legacy, target)
                return
            except OSError:
                pass
        for stale in target.parent.glob(f".adopt-{target.name}-*"):  # copies of runs killed half-way
            pid = stale.name.rsplit("-", 1)[1]
            if stale.is_dir() and not (pid.isdigit() and pid_alive(int(pid))):
                shutil.rmtree(stale, ignore_errors=True)
        partial = target.with_name(f".adopt-{target.name}-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(legacy, partial, ignore=shutil.ignore_patterns(".lock", ".partial-*"))
        if target.exists():  # a parent folder of other versions (a recommender's interest/ inside it): merge
            for p in partial.iterdir():
                os.replace(p, target / p.name)
            shutil.rmtree(partial, ignore_errors=True)
        else:
            os.rename(partial, target)


class Versions:
    """The model folder of one plugin (see `versions_for`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        """The `current` file."""
        return self.root / "current"

    def current(self) -> str | None:
        """The version in use, or None when the plugin has no fine-tuned model."""
        try:
            name = self.pointer.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def stamp(self) -> tuple[int, int] | None:
        """A cheap change marker for `current` (inode and mtime), for hot swapping."""
        try:
            st = self.pointer.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def finished(self) -> list[str]:
        """Finished versions, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p.name) for p in self.root.iterdir() if (m := _VERSION.match(p.name)) and p.is_dir()]
        return [name for _, name in sorted(found)]

    def history(self) -> list[str]:
        """Promoted versions, oldest first."""
        try:
            names = json.loads((self.root / "history.json").read_text())
        except (FileNotFoundError, ValueError):
            names = []
        names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        current = self.current()
        if current and current not in names:  # killed between the switch and the history write
            names.append(current)
        return names

    def current_labels(self) -> list[str]:
        """Labels of the version in use (read from its config, no model load); [] without one."""
        current = self.current()
        if not current:
            return []
        try:
            labels = json.loads((self.path(current) / "config.json").read_text())["labels"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        return [lab for lab in labels if isinstance(lab, str)] if isinstance(labels, list) else []

    def path(self, version: str) -> Path:
        """The folder of a version."""
        return self.root / version

    # ---- writing --------------------------------------------------------------------------
    def clean_partials(self, dead_only: bool = False) -> list[str]:
        """Remove folders and temporary files of runs that died before finishing; return their names.

        With the fine-tune lock held every partial folder is dead; without it (`dead_only`), only
        those whose process is gone are removed, so a run in progress elsewhere is left alone.
        """
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        for p in self.root.iterdir():
            if (m := _PARTIAL.match(p.name)) and not (dead_only and pid_alive(int(m.group(2)))):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        return removed + clean_stale(self.root)  # atomic_write leftovers

    def start(self) -> tuple[str, Path]:
        """Reserve the next version number and create its partial folder."""
        numbers = [int(_VERSION.match(v).group(1)) for v in self.finished()]  # type: ignore[union-attr]
        if self.root.is_dir():
            numbers += [int(m.group(1)) for p in self.root.iterdir() if (m := _PARTIAL.match(p.name))]
        version = f"v{max(numbers, default=0) + 1}"
        partial = self.root / f".partial-{version}-{os.getpid()}"
        partial.mkdir(parents=True)
        return version, partial

    def finish(self, version: str, partial: Path) -> Path:
        """Make a written version visible under its name (one rename)."""
        final = self.root / version
        _fsync_dir(partial)
        os.replace(partial, final)
        _fsync_dir(self.root)
        return final

    def promote(self, version: str) -> None:
        """Point `current` at a finished version and record it in the history."""
        if version not in self.finished():
            raise ModelError(f"{self.root}: no finished version {version}; choose one of {self.finished()}")
        history = [v for v in self.history() if v != version] + [version]
        atomic_write(self.pointer, f"{version}\n".encode())  # the switch itself; history follows
        atomic_write(self.root / "history.json", json.dumps(history).encode())
        _fsync_dir(self.root)

    def rollback(self) -> tuple[str | None, str]:
        """Go back to the version promoted before the current one; return (from, to)."""
        history = [v for v in self.history() if v in self.finished()]
        now = self.current()
        if now in history:
            history = history[: history.index(now)]
        if not history:
            raise ModelError(f"{self.root}: no earlier promoted version to roll back to (history: {', '.join(self.history()) or 'empty'})")
        target = history[-1]
        atomic_write(self.pointer, f"{target}\n".encode())
        atomic_write(self.root / "history.json", json.dumps(history).encode())
        _fsync_dir(self.root)
        return now, target

    def clear(self) -> None:
        """Use no version at all (a shared encoder rolled back to the packaged one)."""
        atomic_write(self.root / "history.json", b"[]")
        try:
            os.unlink(self.pointer)
        except FileNotFoundError:
            pass
        _fsync_dir(self.root)

    def prune(self, keep: int = KEEP, protect: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Delete old versions, keeping the current one, the one rolled back to, the newest `keep` and `protect`."""
        history = self.history()
        protected = set(history[-2:]) | {self.current()} | set(protect)
        versions = self.finished()
        removable = [v for v in versions[: max(len(versions) - keep, 0)] if v not in protected]
        for v in removable:
            shutil.rmtree(self.root / v, ignore_errors=True)
        return removable

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the plugin's fine-tune lock, or fail at once if another run holds it."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ModelError(f"{self.root}: another fine-tune of this plugin is running; wait for it to finish") from exc
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename survives a power cut."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
