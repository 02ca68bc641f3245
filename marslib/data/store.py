"""An on-disk store of fixed-size rows: computed once, read lazily, memory bounded by a batch.

The features of a split (and the transformer's tokens) live in one folder::

    <cache>/<name>/                 a complete store, renamed into place when its last row is written
        rows.bin                    N rows of one dtype and shape, row i at byte i * row_bytes
        labels.bin                  N x len(LABELS) int64 (pitch, family, velocity)
        meta.json                   dtype, row shape, N, the notes kept and skipped
    <cache>/<name>.partial/         a build in progress: the same files growing, plus progress.json
    <cache>/<name>.lock             held while building, so two processes never build one store

Why rows read with ``os.pread`` and not ``np.memmap``: every page of a mapped file
that is touched counts towards the process's resident memory, so one epoch over a
memmap grows it to the file's size (about 280 GiB for NSynth's train split in the
paper profile).  ``pread`` copies just the rows a batch needs; the rest stays in the
kernel's page cache, which is shared, evictable and not counted against the process.

A build appends rows chunk by chunk and records after each chunk how far it got,
so an interrupted build resumes where it stopped instead of starting again.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..runtime import atomic_write

LABELS = ("pitch", "family", "velocity")
_PREADV = hasattr(os, "preadv")  # Linux, BSD; elsewhere rows are read with pread and copied once more
Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]
# One chunk of a build: rows (n, *row_shape), labels (n, len(LABELS)) int64, the names of the n
# notes, and the (note, reason) pairs skipped in this chunk.
Chunk = tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]


class RowStore:
    """A complete store opened for reading: a map-style dataset with a fast batch read.

    ``store.read(idx)`` returns ``(rows (B, *row_shape), {label: (B,)})`` for a 1-D
    index tensor; ``store[i]`` one row and its labels (what a ``DataLoader`` wants).
    The labels are small and held in memory; rows are read from disk on demand.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta = json.loads((self.path / "meta.json").read_text())
        self.dtype = np.dtype(self.meta["dtype"])
        self.row_shape = tuple(self.meta["row_shape"])
        self.row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        raw = np.fromfile(self.path / "labels.bin", dtype=np.int64).reshape(-1, len(LABELS))
        self.labels = {name: torch.from_numpy(raw[:, i].copy()) for i, name in enumerate(LABELS)}
        self._fd, self._pid = -1, -1

    def __len__(self) -> int:
        return int(self.meta["n"])

    @property
    def note_strs(self) -> list[str]:
        return self.meta["notes"]

    def _file(self) -> int:
        if self._pid != os.getpid():  # opened afresh in each DataLoader worker
            self._fd, self._pid = os.open(self.path / "rows.bin", os.O_RDONLY), os.getpid()
        return self._fd

    def read(self, idx: torch.Tensor | np.ndarray | list[int]) -> Batch:
        """Rows ``idx`` (any order, repeats allowed) and their labels."""
        idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
        out = np.empty((len(idx), *self.row_shape), dtype=self.dtype)
        raw = out.reshape(len(idx), self.row_bytes // self.dtype.itemsize).view(np.uint8)  # row j's bytes: raw[j]
        fd = self._file()
        for j, i in enumerate(idx.tolist()):
            if not 0 <= i < len(self):
                raise IndexError(f"row {i} out of range for a store of {len(self)} rows ({self.path})")
            if _PREADV:  # straight into the batch: one copy, from the page cache
                got = os.preadv(fd, [raw[j]], i * self.row_bytes)
            else:
                buf = os.pread(fd, self.row_bytes, i * self.row_bytes)
                got = len(buf)
                if got == self.row_bytes:
                    raw[j] = np.frombuffer(buf, dtype=np.uint8)
            if got != self.row_bytes:
                raise OSError(f"{self.path / 'rows.bin'} is shorter than its meta.json says; delete {self.path}")
        return torch.from_numpy(out), {name: t[idx] for name, t in self.labels.items()}

    def read_all(self) -> Batch:
        """Every row, in memory (for small splits: plots, evaluation)."""
        return self.read(torch.arange(len(self)))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, int]]:
        x, labels = self.read([i])
        return x[0], {name: int(t[0]) for name, t in labels.items()}

    def __getstate__(self) -> dict:  # a file descriptor does not travel to another process
        return {**self.__dict__, "_fd": -1, "_pid": -1}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_store(path: str | Path, n_items: int, row_shape: tuple[int, ...], dtype: str,
                chunks: Callable[[int], Iterator[tuple[int, Chunk]]]) -> RowStore:
    """Open the store at ``path``, building (or finishing) it first if needed.

    Args:
        n_items: how many notes the build goes through (rows may be fewer: skipped notes).
        chunks: ``chunks(start)`` yields ``(items done after this chunk, chunk)``
            from item ``start`` on; called with the item count recorded by an
            interrupted build, so the build resumes there.
    """
    path = Path(path)
    with _locked(path.with_name(path.name + ".lock")):
        if path.exists():
            problem = _damage(path)
            if problem is None:
                return RowStore(path)
            # A store is only ever a copy: a damaged one (a full disk, a half copy, a stray edit)
            # is rebuilt rather than stopping the run.
            warnings.warn(f"feature store {path} is damaged ({problem}); deleting it and computing it again",
                          stacklevel=3)
            shutil.rmtree(path)
        partial = path.with_name(path.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        progress = _read_progress(partial)
        row_bytes = int(np.prod(row_shape)) * np.dtype(dtype).itemsize
        with open(partial / "rows.bin", "ab") as rows, open(partial / "labels.bin", "ab") as labels:
            # A kill between appending and recording progress leaves bytes nobody counted: drop them.
            rows.truncate(progress["rows"] * row_bytes)
            labels.truncate(progress["rows"] * len(LABELS) * 8)
            for done, (x, y, notes, skipped) in chunks(progress["items"]):
                if x.shape[1:] != tuple(row_shape) or x.dtype != np.dtype(dtype):
                    raise ValueError(f"a chunk of {x.dtype} {x.shape[1:]} for a store of {dtype} {row_shape}")
                rows.write(np.ascontiguousarray(x).tobytes())
                labels.write(np.ascontiguousarray(y, dtype=np.int64).tobytes())
                rows.flush(), labels.flush()
                progress = {"items": done, "rows": progress["rows"] + len(x), "notes": progress["notes"] + notes,
                            "skipped": progress["skipped"] + [list(s) for s in skipped]}
                atomic_write(partial / "progress.json", lambda tmp: Path(tmp).write_text(json.dumps(progress)))
        if progress["items"] != n_items:
            raise RuntimeError(f"building {path} stopped at item {progress['items']} of {n_items}")
        meta = {"dtype": str(np.dtype(dtype)), "row_shape": list(row_shape), "n": progress["rows"],
                "notes": progress["notes"], "skipped": progress["skipped"]}
        (partial / "meta.json").write_text(json.dumps(meta))
        (partial / "progress.json").unlink()
        os.rename(partial, path)
        return RowStore(path)


def _damage(path: Path) -> str | None:
    """What is wrong with the complete store at ``path``, or None."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        row_bytes = int(np.prod(meta["row_shape"])) * np.dtype(meta["dtype"]).itemsize
        n = int(meta["n"])
    except (OSError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
        return f"unreadable meta.json: {err}"
    for name, size in (("rows.bin", n * row_bytes), ("labels.bin", n * len(LABELS) * 8)):
        file = path / name
        if not file.is_file() or file.stat().st_size != size:
            return f"{name} should hold {size} bytes, has {file.stat().st_size if file.is_file() else 'none'}"
    return None


def _read_progress(partial: Path) -> dict:
    try:
        return json.loads((partial / "progress.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"items": 0, "rows": 0, "notes": [], "skipped": []}


class TensorRows:
    """Rows already in memory, with :class:`RowStore`'s ``read`` interface (tests, small data)."""

    def __init__(self, x: torch.Tensor, labels: dict[str, torch.Tensor]) -> None:
        self.x, self.labels = x, labels

    def __len__(self) -> int:
        return len(self.x)

    def read(self, idx) -> Batch:
        idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
        return self.x[idx], {name: t[idx] for name, t in self.labels.items()}

    def read_all(self) -> Batch:
        return self.x, self.labels


class MappedRows:
    """Another source's rows with ``fn`` applied to every batch read (e.g. tokens -> model inputs)."""

    def __init__(self, source, fn: Callable[[Batch], Batch]) -> None:
        self.source, self.fn = source, fn

    def __len__(self) -> int:
        return len(self.source)

    @property
    def labels(self) -> dict[str, torch.Tensor]:
        return self.source.labels

    def read(self, idx) -> Batch:
        return self.fn(self.source.read(idx))

    def read_all(self) -> Batch:
        return self.fn(self.source.read_all())


def as_rows(data) -> RowStore | TensorRows | MappedRows:
    """Accept ``(X, labels)`` tensors as well as a store."""
    return TensorRows(*data) if isinstance(data, tuple) else data
