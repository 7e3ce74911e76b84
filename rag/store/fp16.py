"""Exact vectors in float16 beside an approximate index, memory-mapped and read row by row."""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np


class Fp16Vectors:
    """Exact vectors beside an approximate index: ``<stem>.f16.npy`` (float16, one row per id, ids
    sorted) and ``<stem>.ids.npy``, memory-mapped: only the rows read are paged in."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids = ids
        self.vectors = vectors
        self._fd: int | None = None  # set by ``open``: rows are read with pread, see ``read_rows``

    @staticmethod
    def paths(stem: Path) -> tuple[Path, Path]:
        stem = Path(stem)
        return stem.with_name(stem.name + ".f16.npy"), stem.with_name(stem.name + ".ids.npy")

    @classmethod
    def save(cls, stem: Path, ids: np.ndarray, vectors: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        vec_path, ids_path = cls.paths(stem)
        np.save(ids_path, np.asarray(ids, dtype=np.int64)[order])
        out = np.lib.format.open_memmap(vec_path, mode="w+", dtype=np.float16, shape=(len(ids), vectors.shape[1]))
        for start in range(0, len(order), 65536):  # in blocks: no float16 copy of the whole matrix
            out[start : start + 65536] = vectors[order[start : start + 65536]]
        out.flush()
        del out

    @classmethod
    def open(cls, stem: Path) -> Fp16Vectors:
        vec_path, ids_path = cls.paths(stem)
        # open_memmap reads the .npy format only (never a pickle or a zip); ValueError when damaged
        ids, vectors = np.lib.format.open_memmap(ids_path, mode="r"), np.lib.format.open_memmap(vec_path, mode="r")
        store = cls(ids, vectors)
        store._fd = os.open(vec_path, os.O_RDONLY)
        weakref.finalize(store, os.close, store._fd)
        return store

    def get(self, ids) -> np.ndarray:
        """float32 rows for ``ids`` (any order); KeyError for an id not stored."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        bad = (pos >= len(self.ids)) | (self.ids[np.minimum(pos, len(self.ids) - 1)] != ids)
        if bad.any():
            raise KeyError(f"vector ids {ids[bad][:5].tolist()} are not stored")
        order = np.argsort(pos, kind="stable")
        out = np.empty((len(pos), self.vectors.shape[1]), dtype=np.float32)
        out[order] = self.read_rows(pos[order])
        return out

    def read_rows(self, pos: np.ndarray) -> np.ndarray:
        """float32 rows at the sorted positions ``pos``. A store from ``open`` reads them with one
        ``pread`` per run of consecutive rows (a chunk's sentences are one run): reading through
        the memory map would map the kernel's fault-around pages too, and the process's resident
        memory would grow by gigabytes at 1M chunks (measured: 4 GB after 300 questions)."""
        if self._fd is None or len(pos) == 0:
            return np.asarray(self.vectors[pos], dtype=np.float32)
        row = self.vectors.shape[1] * 2
        breaks = np.nonzero(np.diff(pos) != 1)[0] + 1
        starts, ends = np.r_[0, breaks], np.r_[breaks, len(pos)]
        buf = bytearray(len(pos) * row)
        for a, b in zip(starts.tolist(), ends.tolist()):
            data = os.pread(self._fd, (b - a) * row, self.vectors.offset + int(pos[a]) * row)
            if len(data) != (b - a) * row:
                raise OSError("the float16 store is shorter than its header says")
            buf[a * row : b * row] = data
        return np.frombuffer(buf, dtype="<f2").reshape(len(pos), -1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self) -> tuple[np.ndarray, object]:
        """(ids, getter): ``getter(positions)`` gives the rows at those positions."""
        return np.asarray(self.ids), lambda pos: self.vectors[pos]

    def positions_of_chunks(self, chunk_ids, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and ids of every stored row whose id lies in ``[c * stride, (c + 1) * stride)``
        for a chunk id ``c`` of ``chunk_ids``: the sentences of those chunks."""
        c = np.asarray(chunk_ids, dtype=np.int64)
        lo = np.searchsorted(self.ids, c * stride)
        hi = np.searchsorted(self.ids, (c + 1) * stride)
        counts = hi - lo
        pos = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        return pos, np.asarray(self.ids[pos])


def save_rows(stem: Path, dim: int, sources: list[tuple[np.ndarray, object]]) -> int:
    """Write an ``Fp16Vectors`` store from several sources of rows, ``(ids, getter)`` each (see
    ``Fp16Vectors.rows``), sorted by id, in blocks: a merge of a memory-mapped store with new rows
    never holds the whole matrix in memory. Returns the row count; ValueError on a repeated id."""
    ids = np.concatenate([np.asarray(s[0], dtype=np.int64) for s in sources] or [np.zeros(0, np.int64)])
    src = np.concatenate([np.full(len(s[0]), i, dtype=np.int32) for i, s in enumerate(sources)] or [np.zeros(0, np.int32)])
    local = np.concatenate([np.arange(len(s[0]), dtype=np.int64) for s in sources] or [np.zeros(0, np.int64)])
    order = np.argsort(ids, kind="stable")
    ids, src, local = ids[order], src[order], local[order]
    if len(ids) > 1 and (ids[1:] == ids[:-1]).any():
        raise ValueError("repeated vector ids")
    vec_path, ids_path = Fp16Vectors.paths(stem)
    np.save(ids_path, ids)
    out = np.lib.format.open_memmap(vec_path, mode="w+", dtype=np.float16, shape=(len(ids), dim))
    for start in range(0, len(ids), 65536):
        block = np.empty((min(65536, len(ids) - start), dim), dtype=np.float16)
        s, pos = src[start : start + 65536], local[start : start + 65536]
        for i, (_, get) in enumerate(sources):
            mask = s == i
            if mask.any():
                block[mask] = get(pos[mask])
        out[start : start + len(block)] = block
    out.flush()
    del out
    return len(ids)

