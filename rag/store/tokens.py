"""The passages' word-piece states, computed when they are indexed and stored with the build, so that
the token match (rag.query.token_match) costs a new process's first question no more than the next.

Two files in a build folder:

* ``tokens.f16.npy``: float16 rows, one per word piece of each chunk that holds a letter or a digit
  (unit vectors at the encoder layer the manifest names), chunk after chunk in increasing id order;
* ``tokens.idx.npy``: int64 rows ``(chunk id, first row, row count)``, sorted by chunk id.

Float16 is what the in-memory cache of states always kept, so the scores are the ones computed on
demand. About 180 KB a chunk of 256 tokens: a build stores them up to ``Settings.token_states_max_chunks``
chunks, and above that the token match computes the 20 best candidates' states when asked (as before).
Rows are read with ``pread`` (a memory map would map the kernel's fault-around pages too)."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable
from pathlib import Path

import numpy as np

ROWS_FILE = "tokens.f16.npy"
INDEX_FILE = "tokens.idx.npy"
FILES = (ROWS_FILE, INDEX_FILE)
BLOCK_ROWS = 65536


class TokenLayoutError(ValueError):
    """Token-state files that are not what a build writes."""


def save(folder: Path, dim: int, sources: Iterable[tuple[int, np.ndarray]]) -> int:
    """Write the two files from ``(chunk id, states)`` pairs given in increasing chunk id order (each
    ``states`` a float16 or float32 matrix of ``dim`` columns); returns the number of rows written.

    Rows are appended block by block: a merge of the previous build's states with the new chunks' never
    holds them all in memory."""
    index: list[tuple[int, int, int]] = []
    rows = 0
    tmp = folder / (ROWS_FILE + ".raw")
    last = -1
    with open(tmp, "wb") as raw:
        for chunk_id, states in sources:
            states = np.asarray(states, dtype=np.float16)
            if chunk_id <= last or states.ndim != 2 or states.shape[1] != dim:
                raise ValueError(f"token states of chunk {chunk_id} are out of order or not {dim} wide")
            last = chunk_id
            raw.write(np.ascontiguousarray(states).tobytes())
            index.append((chunk_id, rows, len(states)))
            rows += len(states)
    # the .npy header goes in front: written once the row count is known
    with open(folder / ROWS_FILE, "wb") as out, open(tmp, "rb") as raw:
        np.lib.format.write_array_header_1_0(
            out, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False, "shape": (rows, dim)}
        )
        while block := raw.read(BLOCK_ROWS * dim * 2):
            out.write(block)
    tmp.unlink()
    np.save(folder / INDEX_FILE, np.asarray(index, dtype=np.int64).reshape(-1, 3))
    return rows


class TokenStore:
    """The stored states of one build; read-only, safe to share between threads."""

    def __init__(self, folder: Path, dim: int) -> None:
        path = folder / ROWS_FILE
        try:
            self._index = np.load(folder / INDEX_FILE, allow_pickle=False)
            with open(path, "rb") as f:
                major, _ = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(f)
                self._offset = f.tell()
        except (OSError, ValueError) as exc:
            raise TokenLayoutError(f"unreadable ({exc})") from exc
        idx = self._index
        if not (idx.dtype == np.int64 and idx.ndim == 2 and idx.shape[1] == 3):
            raise TokenLayoutError("its index has the wrong shape or type")
        if not (dtype == np.float16 and not fortran and len(shape) == 2 and shape[1] == dim):
            raise TokenLayoutError("its rows have the wrong shape or type")
        counts = idx[:, 2]
        starts = np.cumsum(counts) - counts
        if (counts < 0).any() or not np.array_equal(idx[:, 1], starts) or int(counts.sum()) != shape[0]:
            raise TokenLayoutError("its index does not cover its rows")
        if len(idx) > 1 and not (np.diff(idx[:, 0]) > 0).all():
            raise TokenLayoutError("its chunk ids are not in increasing order")
        self.dim = dim
        self.rows = int(shape[0])
        self._row_bytes = dim * 2
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)
        if os.fstat(self._fd).st_size != self._offset + int(shape[0]) * self._row_bytes:
            raise TokenLayoutError("its length differs from its header")

    @property
    def chunk_ids(self) -> np.ndarray:
        return self._index[:, 0]

    def get(self, chunk_ids: Iterable[int]) -> list[np.ndarray | None]:
        """The float16 states of each chunk id (None for a chunk without stored states)."""
        ids = self._index[:, 0]
        out: list[np.ndarray | None] = []
        for cid in chunk_ids:
            pos = int(np.searchsorted(ids, cid))
            if pos >= len(ids) or ids[pos] != cid:
                out.append(None)
                continue
            _, start, count = (int(x) for x in self._index[pos])
            data = os.pread(self._fd, count * self._row_bytes, self._offset + start * self._row_bytes)
            if len(data) != count * self._row_bytes:
                raise OSError("the token-state file is shorter than its index says")
            out.append(np.frombuffer(data, dtype="<f2").reshape(count, self.dim))
        return out

    def items(self, keep: set[int] | None = None):
        """``(chunk id, states)`` in chunk id order, for a build that copies them (``keep``: these ids only)."""
        for cid in self._index[:, 0].tolist():
            if keep is None or cid in keep:
                yield cid, self.get([cid])[0]
