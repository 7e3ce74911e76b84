"""File layout checks: a vector file is refused unless its layout is exactly what a build writes,
before FAISS or NumPy parses a byte of it (a count or size field that disagrees with the file's
length could make the C++ reader allocate or read out of bounds)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError
from .fp16 import Fp16Vectors
from .kinds import IndexSpec

REBUILD_HINT = "run `rag index --full` to rebuild it"

_HEADER = struct.Struct("<4siqqqBi")  # fourcc, d, ntotal, two dummies, is_trained, metric
_DUMMY = 1 << 20


class LayoutError(ValueError):
    """A vector file that is not exactly what a build writes."""


def check_ivf_layout(path: Path, dim: int, spec: IndexSpec) -> None:
    """Refuse an IVF-SQ8 file whose layout is not exactly what ``faiss.write_index`` writes for
    ``spec`` over vectors of ``dim`` (FAISS 1.x), before FAISS parses it: every parameter is checked
    against the manifest's, every count and size against the others and the file's length, so the
    C++ reader can neither allocate nor read out of bounds. Raises LayoutError."""
    size = Path(path).stat().st_size
    with open(path, "rb") as f:

        def read(fmt: str):
            st = struct.Struct("<" + fmt)
            raw = f.read(st.size)
            if len(raw) != st.size:
                raise LayoutError("it is cut short")
            return st.unpack(raw)

        def expect(ok: bool, what: str) -> None:
            if not ok:
                raise LayoutError(what)

        head = read("4siqqqBi")
        ntotal = head[2]
        expect(head == (b"IwSq", dim, ntotal, _DUMMY, _DUMMY, 1, 0) and 0 <= ntotal < 1 << 40, "its header")
        expect(read("QQ") == (spec.nlist, spec.nprobe), "its list count")
        expect(read("4siqqqBi") == (b"IxFI", dim, spec.nlist, _DUMMY, _DUMMY, 1, 0), "its centroid header")
        expect(read("Q") == (spec.nlist * dim,), "its centroid count")
        f.seek(spec.nlist * dim * 4, 1)
        expect(read("BQ") == (0, 0), "its direct map")
        expect(read("iifQQQ") == (0, 0, 0.0, dim, dim, 2 * dim), "its quantiser")
        f.seek(2 * dim * 4, 1)
        expect(read("QB4sQQ") == (dim, 1, b"ilar", spec.nlist, dim), "its inverted lists")
        (list_type,) = read("4s")
        (n_sizes,) = read("Q")
        expect(list_type in (b"full", b"sprs") and n_sizes <= 2 * spec.nlist, "its list sizes")
        sizes = np.frombuffer(f.read(8 * n_sizes), dtype="<u8")
        expect(len(sizes) == n_sizes, "its list sizes")
        if list_type == b"full":
            expect(n_sizes == spec.nlist, "its list sizes")
        else:
            lists, sizes = sizes[0::2], sizes[1::2]
            expect(n_sizes % 2 == 0 and (lists < spec.nlist).all() and (np.diff(lists.astype(np.int64)) > 0).all()
                   and (sizes > 0).all(), "its sparse list sizes")
        expect((sizes <= ntotal).all() and int(sizes.sum()) == ntotal, "its list sizes")
        expect(f.tell() + ntotal * (dim + 8) == size, "its length")


def check_fp16_store(store: Fp16Vectors, dim: int) -> None:
    """The shapes and types a build writes, ids strictly increasing; raises LayoutError."""
    ids, vec = store.ids, store.vectors
    if not (ids.dtype == np.int64 and ids.ndim == 1 and vec.dtype == np.float16 and vec.ndim == 2
            and vec.shape == (len(ids), dim) and not np.isfortran(vec)):
        raise LayoutError("its shape or type")
    if len(ids) > 1 and not (np.diff(ids) > 0).all():
        raise LayoutError("its ids are not in increasing order")



# The layout faiss.write_index gives an IndexIDMap2 over an IndexFlatIP (FAISS 1.x):
#   "IxM2" d:i32 ntotal:i64 dummy:i64 dummy:i64 is_trained:u8 metric:i32        (37 bytes)
#   "IxFI" d:i32 ntotal:i64 dummy:i64 dummy:i64 is_trained:u8 metric:i32        (37 bytes)
#   codes: n_floats:u64 then ntotal*d float32; id map: n_ids:u64 then ntotal int64
_FAISS_HEADER = struct.Struct("<4siqqqBi")
_FAISS_FIXED = 2 * _FAISS_HEADER.size + 16


def check_vector_file(path: Path, dim: int) -> None:
    """Refuse a vector file whose layout is not exactly what a build writes, before FAISS parses it:
    a count or size field that disagrees with the file length could make the C++ reader allocate
    or read out of bounds."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_FAISS_FIXED - 8)
        if len(head) == _FAISS_FIXED - 8:
            outer = _FAISS_HEADER.unpack_from(head, 0)
            inner = _FAISS_HEADER.unpack_from(head, _FAISS_HEADER.size)
            (n_floats,) = struct.unpack_from("<Q", head, 2 * _FAISS_HEADER.size)
            n = outer[2]
            expected = _FAISS_FIXED + n * dim * 4 + n * 8 if 0 <= n < 2**40 else -1
            if (
                outer[0] == b"IxM2" and inner[0] == b"IxFI"
                and outer[1:] == inner[1:] == (dim, n, 1 << 20, 1 << 20, 1, 0)  # trained, inner product
                and n_floats == n * dim and size == expected
            ):
                f.seek(_FAISS_FIXED - 8 + n * dim * 4)
                (n_ids,) = struct.unpack("<Q", f.read(8))
                if n_ids == n:
                    return
    raise IndexCorruptError(
        f"the index file {path} does not have the layout of a {dim}-dimension vector index "
        f"(damaged, or written for another model or FAISS version); {REBUILD_HINT}"
    )


def check_ivf_file(path: Path, dim: int, spec: IndexSpec) -> None:
    """check_vector_file for the approximate kind (see check_ivf_layout)."""
    try:
        check_ivf_layout(path, dim, spec)
    except LayoutError as exc:
        raise IndexCorruptError(
            f"the index file {path} does not have the layout of a {dim}-dimension {spec.describe()} index "
            f"({exc} differs; damaged, or written for another model or FAISS version); {REBUILD_HINT}"
        ) from exc
