"""FAISS indexes with metadata beside them; a stale or mismatched index is rebuilt, never used."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agent.errors import ModelError

if TYPE_CHECKING:
    import numpy as np


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file and rename it over the target, so readers never see half a file.

    The temporary file is named `.NAME.PID.RANDOM.tmp`; one left by a killed process is removed by
    `clean_stale` once that process is gone.
    """
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.chmod(tmp, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (ours included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(folder: Path) -> list[str]:
    """Remove temporary files that killed processes left in `folder`; return their names."""
    removed = []
    for p in Path(folder).glob(".*.tmp") if Path(folder).is_dir() else []:
        match = _TMP.match(p.name)
        if match and not pid_alive(int(match.group(1))):
            try:
                p.unlink(missing_ok=True)
            except OSError:  # a read-only plugin folder: nothing to clean there
                continue
            removed.append(p.name)
    return removed


_TMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


@dataclass
class VectorIndex:
    """An inner-product FAISS index over unit vectors, plus per-row ids and labels."""

    index: Any
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, vectors: "np.ndarray", meta: dict[str, Any]) -> "VectorIndex":
        """Index vectors exactly (cosine similarity, since rows are unit length)."""
        import faiss

        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return cls(index, {**meta, "count": int(vectors.shape[0]), "dim": int(vectors.shape[1])})

    @property
    def ids(self) -> list[str]:
        """Row ids, in index order."""
        return self.meta["ids"]

    @property
    def labels(self) -> list[str | None]:
        """Row labels, in index order (None where the corpus has none)."""
        return self.meta.get("labels") or [None] * len(self.ids)

    def save(self, folder: Path, stem: str) -> None:
        """Write NAME.faiss then NAME.json; the JSON names the checksum of the index it describes."""
        import faiss

        blob = faiss.serialize_index(self.index).tobytes()
        meta = {**self.meta, "faiss_sha256": hashlib.sha256(blob).hexdigest(), "built_at": time.time()}
        atomic_write(folder / f"{stem}.faiss", blob)
        atomic_write(folder / f"{stem}.json", json.dumps(meta).encode())

    @classmethod
    def load(cls, folder: Path, stem: str, expect: dict[str, Any]) -> "VectorIndex | None":
        """The saved index when it matches `expect` (encoder, data hash) and its checksum; else None."""
        import faiss
        import numpy as np

        meta_path, index_path = folder / f"{stem}.json", folder / f"{stem}.faiss"
        if not (meta_path.is_file() and index_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None
        if any(meta.get(k) != v for k, v in expect.items()):
            return None
        blob = index_path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta.get("faiss_sha256"):
            return None
        index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        return cls(index, meta) if index.ntotal == meta.get("count") else None

    def search(self, vectors: "np.ndarray", k: int, rows: "np.ndarray | None" = None) -> tuple["np.ndarray", "np.ndarray"]:
        """Top-k (scores, row numbers) per query; `rows` restricts the search to those rows."""
        import faiss

        k = max(1, min(k, self.index.ntotal if rows is None else len(rows)))
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(rows)) if rows is not None else None
        return self.index.search(vectors, k, params=params)

    def vectors(self) -> "np.ndarray":
        """All stored vectors (an exact index keeps them), e.g. to fit a head without re-encoding."""
        return self.index.reconstruct_n(0, self.index.ntotal)


def ensure_index(
    folder: Path,
    stem: str,
    expect: dict[str, Any],
    build: Callable[[], tuple["np.ndarray", dict[str, Any]]],
    notify: Callable[[str], None] | None = None,
) -> VectorIndex:
    """Load a fresh index, or build and save a new one when missing or stale."""
    clean_stale(folder)
    found = VectorIndex.load(folder, stem, expect)
    if found is not None:
        return found
    if notify:
        notify(f"building index {folder.name}/{stem}")
    vectors, meta = build()
    if len(vectors) == 0:
        raise ModelError(f"nothing to index for {folder.name}/{stem}: the data file has no rows")
    built = VectorIndex.build(vectors, {**meta, **expect})
    built.save(folder, stem)
    return built
