"""The FAISS index type, chosen by corpus size, and a float16 side store of exact vectors.

* Below ``EXACT_MAX`` vectors: exact search, ``IndexIDMap2(IndexFlatIP)``, what the library has
  always written (answers do not change for small corpora).
* From ``EXACT_MAX`` on: ``IndexIVFScalarQuantizer`` (IVF, 8-bit scalar quantisation, inner
  product), ids stored natively (``add_with_ids``), ``nlist``/``nprobe`` from ``ivf_params``;
  ``search`` takes ``RERANK_K`` candidates and re-scores them exactly from the float16 store.

Parameters chosen by measurement (``python -m bench``, ``python -m bench.scale ann``; figures in
docs/benchmarks.md) on vectors of the real model, whose neighbours are very close to one another
(the 10th and 11th best cosines of a question differ by ~2e-4), so a large share of the lists must
be scanned: recall@10 >= 0.95 took nprobe = nlist/4 at 100k and nlist/8 at 1M (IVF2048: p95
~17 ms on the 2 cores). HNSW (M=32, efConstruction=40) built 6x slower at 1M and reached only
0.84 at efSearch 768 (see the benchmark). Flat search costs ~0.3 ms per 1,000 vectors per query
(p95 36 ms at 100k on the shared cores), hence the exact tier stops at 30k.

Incremental builds need ``remove_ids`` and ``reconstruct``:

* ``remove_ids``: both kinds have it (the IVF scans its lists with an id selector). Do **not** wrap
  the IVF in ``IndexIDMap2``: its ``remove_ids`` compacts the id map while the IVF keeps its own
  numbers, so ids and vectors drift apart. HNSW has no ``remove_ids`` at all.
* ``reconstruct``: the flat index has it. For the IVF, FAISS's ``DirectMap.Hashtable`` would
  give the SQ8-decoded vector at the cost of a C++ hash-map entry per vector in RAM; ``Fp16Vectors`` instead keeps the
  exact vectors (to 1e-3) in float16 on disk beside the index, memory-mapped (768 MB per 1M x 384,
  only the rows read are paged in). It also lets a build retrain the IVF (``needs_rebuild``)
  without re-embedding anything.

In the index (rag/store.py, rag/indexer.py): the kind is chosen on a build's chunk count
(``choose``; tests lower ``EXACT_MAX``) and recorded in the manifest (schema 3; an exact build keeps
the schema 2 manifest and files, unchanged). An approximate build holds ``vectors.faiss`` (the IVF),
``vectors.{f16,ids}.npy`` and ``sentences.{f16,ids}.npy``, and no sentence index: at 1M chunks the
~6.5M sentence vectors would take ~2.5 GB as SQ8 and another IVF scan per question. Instead
``LoadedVectors.search_sentences`` scores exactly the sentences of the IVF's ``CANDIDATES`` best
chunks, read from the memory-mapped store (one IVF scan serves both searches). ``VectorSet`` makes a
build's files: the previous index edited by id, or re-created from the stored vectors when the
kind changes or the IVF outgrew its lists (``needs_rebuild``), never re-embedding.
``check_ivf_file`` / ``check_fp16_store`` refuse a file that is not what a build writes.

Use::

    index = build_vector_index(dim, n_expected)
    train(index, vectors)                      # k-means for the IVF; no-op for the exact index
    index.add_with_ids(vectors, ids)
    Fp16Vectors.save(stem, ids, vectors)       # beside the index: re-scoring and rebuilds
    scores, ids = search(index, query, k, store=Fp16Vectors.open(stem))
"""

from __future__ import annotations

import math
import os
import struct
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXACT_MAX = 30_000  # exact search below this many vectors
RERANK_K = 50  # IVF candidates re-scored exactly from the float16 store
TRAIN_PER_LIST = 40  # k-means points per list (FAISS warns below 39)
KMEANS_ITER = 10
MIN_IVF = 16  # fewer vectors than this are always searched exactly, whatever EXACT_MAX says
CANDIDATES = 128  # the IVF's best chunks whose sentences search_sentences scores exactly


_omp_lock = threading.Lock()
_omp_users = 0
_omp_before = 1


@contextmanager
def one_search_thread():
    """Run FAISS single-query searches on one OpenMP thread. Its threads cost more than they save
    on one query: on the 2 busy cores here a flat search of 5k vectors took 8 ms with 2 threads and
    0.2 ms with one (30k: 32 vs 2.8 ms). The setting is process-wide and shared with torch, so the
    first searcher in lowers it and the last one out restores it."""
    import faiss

    global _omp_users, _omp_before
    with _omp_lock:
        if _omp_users == 0:
            _omp_before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
        _omp_users += 1
    try:
        yield
    finally:
        with _omp_lock:
            _omp_users -= 1
            if _omp_users == 0:
                faiss.omp_set_num_threads(_omp_before)


@dataclass(frozen=True)
class IndexSpec:
    kind: str  # "flat" or "ivf-sq8"
    nlist: int = 0
    nprobe: int = 0

    def describe(self) -> str:
        if self.kind == "flat":
            return "IDMap2,Flat (exact)"
        return f"IVF{self.nlist},SQ8 nprobe={self.nprobe} +rerank{RERANK_K}"


def ivf_params(n: int) -> tuple[int, int]:
    """(nlist, nprobe) for ``n`` vectors: nlist ~ 2 sqrt(n) (a power of two); nprobe from the measured
    recall curves: a quarter of the lists up to a few hundred thousand vectors, an eighth from there.
    Below the exact tier's 30k (only when tests lower ``EXACT_MAX``) nlist goes down to 4 lists, so a
    small corpus can still train it."""
    nlist = 2 ** max(2, min(16, round(math.log2(2 * math.sqrt(max(n, 1))))))
    return nlist, nlist // 2 if n < 10_000 else nlist // 4 if n < 300_000 else nlist // 8


def choose(n_expected: int, exact_max: int | None = None) -> IndexSpec:
    """The index for ``n_expected`` vectors. ``exact_max`` defaults to the module's ``EXACT_MAX``,
    read at call time (tests lower it to build the approximate kind from a small corpus)."""
    exact_max = EXACT_MAX if exact_max is None else exact_max
    if n_expected < max(exact_max, MIN_IVF):
        return IndexSpec("flat")
    nlist, nprobe = ivf_params(n_expected)
    return IndexSpec("ivf-sq8", nlist, nprobe)


def build_vector_index(dim: int, n_expected: int, *, exact_max: int | None = None, spec: IndexSpec | None = None):
    """An empty FAISS index over inner product for about ``n_expected`` normalised vectors of ``dim``:
    exact (``IndexIDMap2(IndexFlatIP)``) below ``exact_max``, else an untrained IVF-SQ8 (call
    ``train(index, vectors)`` before ``add_with_ids``)."""
    import faiss

    spec = spec or choose(n_expected, exact_max)
    if spec.kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(dim), dim, spec.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.nprobe = spec.nprobe  # written to the file by faiss.write_index
    index.cp.niter = KMEANS_ITER
    return index


def spec_of(index) -> IndexSpec:
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return IndexSpec("flat")
    return IndexSpec("ivf-sq8", int(ivf.nlist), int(ivf.nprobe))


def train(index, vectors: np.ndarray, seed: int = 1234) -> None:
    """k-means on a sample of ``vectors`` (``TRAIN_PER_LIST`` per list); no-op when trained or exact."""
    if index.is_trained:
        return
    import faiss

    ivf = faiss.extract_index_ivf(index)
    if len(vectors) < ivf.nlist:
        raise ValueError(f"{len(vectors)} vectors cannot train {ivf.nlist} lists; use the exact index")
    n_train = min(len(vectors), TRAIN_PER_LIST * ivf.nlist)
    rng = np.random.default_rng(seed)
    sample = vectors if n_train >= len(vectors) else vectors[np.sort(rng.choice(len(vectors), n_train, replace=False))]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))


def needs_rebuild(index, n_total: int, exact_max: int | None = None) -> bool:
    """True when a build should re-create the index (from the float16 store) instead of adding to it:
    the corpus crossed ``exact_max`` (either way), or the IVF has 4x too few or too many lists."""
    have, want = spec_of(index), choose(n_total, exact_max)
    if have.kind != want.kind:
        return True
    return have.kind == "ivf-sq8" and not (want.nlist / 4 <= have.nlist <= want.nlist * 4)


def search(index, query: np.ndarray, k: int, store: Fp16Vectors | None = None,
           rerank_k: int = RERANK_K) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the ``k`` best vectors for one query, best first. For the IVF, ``rerank_k``
    candidates re-scored exactly from ``store`` when it is given."""
    q = np.asarray(query, dtype=np.float32).reshape(1, -1)
    if spec_of(index).kind == "flat" or store is None:
        scores, ids = index.search(q, k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]
    _, ids = index.search(q, max(k, rerank_k))
    ids = np.sort(ids[0][ids[0] >= 0])
    s = _dot(store.get(ids), q[0])
    top = np.argsort(-s)[:k]
    return s[top], ids[top]


def _dot(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """rows @ q without BLAS: for a few thousand rows, BLAS threads waiting on busy cores cost
    5-12 ms where this loop takes 0.5 ms (measured on the shared 2 cores)."""
    return np.einsum("ij,j->i", rows, q)


def index_ids(index) -> np.ndarray:
    """Every id an index holds (for the store's consistency check): the id map of an
    ``IndexIDMap2``, or the ids of every inverted list of an IVF."""
    import faiss

    if hasattr(index, "id_map"):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = faiss.extract_index_ivf(index)
    parts = []
    for lst in range(ivf.nlist):
        size = ivf.invlists.list_size(lst)
        if size:
            parts.append(faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), size).copy())
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def vector_bytes(index) -> int:
    """Bytes of codes, ids and centroids the index keeps in memory."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return int(index.ntotal) * (index.d * 4 + 8)
    return int(ivf.ntotal) * (ivf.code_size + 8) + ivf.nlist * ivf.d * 4


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


# ----------------------------------------------------------------------------- file layout checks

_HEADER = struct.Struct("<4siqqqBi")  # fourcc, d, ntotal, two dummies, is_trained, metric
_DUMMY = 1 << 20


class LayoutError(ValueError):
    """A vector file that is not exactly what a build writes."""


def check_ivf_file(path: Path, dim: int, spec: IndexSpec) -> None:
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


# ----------------------------------------------------------------------------- a build's vectors

VECTORS = "vectors.faiss"
SENTENCE_VECTORS = "sentences.faiss"
CHUNK_STEM = "vectors"  # vectors.f16.npy, vectors.ids.npy
SENTENCE_STEM = "sentences"  # sentences.f16.npy, sentences.ids.npy


def vector_files(kind: str) -> tuple[str, ...]:
    """The vector files a build of this kind holds."""
    if kind == "flat":
        return (VECTORS, SENTENCE_VECTORS)
    stores = [p.name for stem in (CHUNK_STEM, SENTENCE_STEM) for p in Fp16Vectors.paths(Path(stem))]
    return (VECTORS, *stores)


SENTENCES_AT_SCALE = "float16 store, sentences of the candidate chunks scored exactly"


def spec_to_manifest(spec: IndexSpec) -> dict:
    """What the manifest records: nothing for the exact kind (its format is the original one)."""
    if spec.kind == "flat":
        return {}
    return {"kind": spec.kind, "nlist": spec.nlist, "nprobe": spec.nprobe, "candidates": CANDIDATES,
            "sentences": SENTENCES_AT_SCALE}


def spec_from_manifest(data: dict) -> IndexSpec:
    """The spec a manifest's ``index`` entry describes; ValueError when it is not one a build writes."""
    if not data:
        return IndexSpec("flat")
    nlist, nprobe, candidates = data.get("nlist"), data.get("nprobe"), data.get("candidates")
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (nlist, nprobe, candidates))
    if not (
        set(data) == {"kind", "nlist", "nprobe", "candidates", "sentences"} and data["kind"] == "ivf-sq8"
        and ints and 0 < nprobe <= nlist <= 1 << 16 and 0 < candidates <= 1 << 16
        and data["sentences"] == SENTENCES_AT_SCALE
    ):
        raise ValueError("the index description is not valid")
    return IndexSpec("ivf-sq8", nlist, nprobe)


class LoadedVectors:
    """The vectors of one loaded build, of either kind; read-only, safe to share between threads.

    * ``flat``: ``index`` and ``sentence_index`` are ``IndexIDMap2(IndexFlatIP)``, searched exactly.
    * ``ivf-sq8``: ``index`` is the IVF; ``store`` and ``sentence_store`` are the float16 stores.
      ``search`` re-scores the IVF's ``max(k, RERANK_K)`` best chunks exactly; there is no global sentence
      index (6-7 sentences a chunk would take ~2.4 GB as SQ8 at 1M chunks): ``search_sentences``
      scores exactly the sentences of the same candidate chunks, read from the memory-mapped store.
      The IVF is scanned once per query: the candidates of the last query are kept per thread."""

    def __init__(self, spec: IndexSpec, index, sentence_index=None, store: Fp16Vectors | None = None,
                 sentence_store: Fp16Vectors | None = None, stride: int = 1024, candidates: int = CANDIDATES) -> None:
        self.spec, self.index, self.sentence_index = spec, index, sentence_index
        self.store, self.sentence_store, self.stride = store, sentence_store, stride
        self.candidates = candidates
        self._last = threading.local()

    @classmethod
    def read(cls, folder: Path, spec: IndexSpec, dim: int, stride: int, candidates: int = CANDIDATES) -> LoadedVectors:
        """Read the files (already checksummed and layout-checked); ValueError/RuntimeError if unreadable."""
        import faiss

        index = faiss.read_index(str(folder / VECTORS))
        if spec.kind == "flat":
            return cls(spec, index, faiss.read_index(str(folder / SENTENCE_VECTORS)), stride=stride)
        if spec_of(index) != spec:
            raise LayoutError("its parameters differ from the manifest's")
        stores = [Fp16Vectors.open(folder / stem) for stem in (CHUNK_STEM, SENTENCE_STEM)]
        for store in stores:
            check_fp16_store(store, dim)
        return cls(spec, index, None, stores[0], stores[1], stride=stride, candidates=candidates)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def n_sentences(self) -> int:
        return len(self.sentence_store) if self.sentence_index is None else int(self.sentence_index.ntotal)

    @property
    def dims(self) -> tuple[int, ...]:
        if self.spec.kind == "flat":
            return (self.index.d, self.sentence_index.d)
        return (self.index.d, self.store.vectors.shape[1], self.sentence_store.vectors.shape[1])

    def chunk_ids(self) -> list[np.ndarray]:
        """Every id the chunk vectors hold, per file (each must match the chunk table)."""
        if self.spec.kind == "flat":
            return [index_ids(self.index)]
        return [index_ids(self.index), np.asarray(self.store.ids)]

    def sentence_ids(self) -> np.ndarray:
        if self.sentence_index is not None:
            return index_ids(self.sentence_index)
        return np.asarray(self.sentence_store.ids)

    # --- search

    def _candidates(self, q: np.ndarray, n: int) -> np.ndarray:
        """The IVF's best chunk ids for ``q``, at least ``n`` and ``self.candidates`` (fewer when
        the probed lists hold fewer). ``search`` then ``search_sentences`` of one question scan the
        IVF once: each thread keeps its last query's candidates."""
        n = max(n, self.candidates)
        key = q.tobytes()
        if getattr(self._last, "key", None) != key or self._last.n < n:
            _, ids = self.index.search(q.reshape(1, -1), n)
            self._last.key, self._last.n, self._last.ids = key, n, ids[0][ids[0] >= 0]
        return self._last.ids

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(id, cosine) of the ``k`` best chunks: the IVF's candidates re-scored from the float16
        store (the exact kind is searched by IndexReader itself)."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if not np.isfinite(q).all():
            return []
        # the IVF's best max(k, RERANK_K), in its (SQ8) order, re-scored exactly
        ids = np.sort(self._candidates(q, k)[: max(k, RERANK_K)])
        scores = _dot(self.store.get(ids), q)
        top = np.lexsort((ids, -scores))[:k]
        return [(int(ids[i]), float(scores[i])) for i in top]

    def search_sentences(self, query: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        """(chunk id, position, cosine) of the ``k`` best sentences of the candidate chunks."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if not np.isfinite(q).all():
            return []
        chunks = np.sort(self._candidates(q, 0)[: self.candidates])
        pos, ids = self.sentence_store.positions_of_chunks(chunks, self.stride)
        scores = _dot(self.sentence_store.read_rows(pos), q)
        top = np.lexsort((ids, -scores))[:k]
        return [(int(ids[i]) // self.stride, int(ids[i]) % self.stride, float(scores[i])) for i in top]

    def vectors(self, ids: list[int], sentences: bool = False) -> np.ndarray:
        """Rows for ``ids`` (KeyError/RuntimeError for an id not held)."""
        index, store = (self.sentence_index, self.sentence_store) if sentences else (self.index, self.store)
        if store is not None:
            return store.get(ids)
        return np.stack([index.reconstruct(i) for i in ids])

    def rows(self, sentences: bool = False) -> tuple[np.ndarray, object]:
        """(ids, getter) of every vector held, for a build that re-creates an index (see ``save_rows``)."""
        import faiss

        index, store = (self.sentence_index, self.sentence_store) if sentences else (self.index, self.store)
        if store is not None:
            return store.rows()
        flat = faiss.downcast_index(index.index)
        xb = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
        return index_ids(index), lambda pos: xb[pos]


class VectorSet:
    """The vectors of a build being made: the previous build's (``base``, or none for a full build)
    minus removed ids, plus new ones. ``write`` chooses the kind for the final count and writes it:

    * same kind as before, and (for the IVF) still within 4x of the lists it was trained for: the
      previous index cloned, ``remove_ids``, ``add_with_ids`` (the flat kind exactly as it always was);
    * otherwise the index is re-created from the stored vectors (no re-embedding): an IVF is trained
      on, and filled from, the merged float16 store, in blocks."""

    def __init__(self, dim: int, base: LoadedVectors | None = None) -> None:
        self.dim, self.base = dim, base
        self.removed = np.zeros(0, np.int64)
        self.removed_sentences = np.zeros(0, np.int64)
        self.added: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def remove(self, chunk_ids, sentence_ids) -> None:
        self.removed = np.asarray(chunk_ids, dtype=np.int64)
        self.removed_sentences = np.asarray(sentence_ids, dtype=np.int64)

    def add(self, chunk_ids, vectors, sentence_ids, sentence_vectors) -> None:
        self.added = (np.asarray(chunk_ids, dtype=np.int64), np.asarray(vectors, dtype=np.float32),
                      np.asarray(sentence_ids, dtype=np.int64), np.asarray(sentence_vectors, dtype=np.float32))

    @property
    def count(self) -> int:
        base = self.base.ntotal if self.base is not None else 0
        return base - len(self.removed) + (len(self.added[0]) if self.added is not None else 0)

    def _sources(self, sentences: bool) -> list[tuple[np.ndarray, object]]:
        out = []
        if self.base is not None:
            ids, get = self.base.rows(sentences)
            keep = np.nonzero(~np.isin(ids, self.removed_sentences if sentences else self.removed))[0]
            out.append((ids[keep], lambda pos, get=get, keep=keep: get(keep[pos])))
        if self.added is not None:
            ids, vec = (self.added[2], self.added[3]) if sentences else (self.added[0], self.added[1])
            out.append((ids, lambda pos, vec=vec: vec[pos]))
        return out

    def write(self, folder: Path) -> IndexSpec:
        """Write the vector files of the chosen kind into ``folder``; returns the kind's spec."""
        import faiss

        n = self.count
        base = self.base
        reuse = base is not None and not needs_rebuild(base.index, n)
        spec = spec_of(base.index) if reuse else choose(n)
        if spec.kind == "flat":
            if reuse:  # what the indexer always did
                index, sentence_index = faiss.clone_index(base.index), faiss.clone_index(base.sentence_index)
                if len(self.removed):
                    index.remove_ids(self.removed)
                    sentence_index.remove_ids(self.removed_sentences)
                if self.added is not None and len(self.added[0]):
                    index.add_with_ids(self.added[1], self.added[0])
                    sentence_index.add_with_ids(self.added[3], self.added[2])
            else:
                index, sentence_index = (self._flat_from(self._sources(s)) for s in (False, True))
            faiss.write_index(index, str(folder / VECTORS))
            faiss.write_index(sentence_index, str(folder / SENTENCE_VECTORS))
            return spec
        save_rows(folder / CHUNK_STEM, self.dim, self._sources(False))
        save_rows(folder / SENTENCE_STEM, self.dim, self._sources(True))
        if reuse:
            index = faiss.clone_index(base.index)
            want = choose(n)  # probe the share of the lists the measurements call for at this size
            index.nprobe = max(1, min(spec.nlist, round(spec.nlist * want.nprobe / want.nlist)))
            spec = spec_of(index)
            if len(self.removed):
                index.remove_ids(self.removed)
            if self.added is not None and len(self.added[0]):
                index.add_with_ids(self.added[1], self.added[0])
        else:
            index = ivf_from_store(Fp16Vectors.open(folder / CHUNK_STEM), self.dim, spec)
        faiss.write_index(index, str(folder / VECTORS))
        return spec

    def _flat_from(self, sources):
        ids = np.concatenate([s[0] for s in sources] or [np.zeros(0, np.int64)])
        vec = np.concatenate([np.asarray(get(np.arange(len(i))), dtype=np.float32) for i, get in sources]
                             or [np.zeros((0, self.dim), np.float32)])
        order = np.argsort(ids, kind="stable")
        index = build_vector_index(self.dim, 0, spec=IndexSpec("flat"))
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vec[order]), ids[order])
        return index


def ivf_from_store(store: Fp16Vectors, dim: int, spec: IndexSpec, seed: int = 1234):
    """An IVF-SQ8 of ``spec`` trained on a sample of ``store`` and filled from it, in blocks."""
    n = len(store)
    index = build_vector_index(dim, n, spec=spec)
    if n < spec.nlist:
        raise ValueError(f"{n} vectors cannot train {spec.nlist} lists; use the exact index")
    n_train = min(n, TRAIN_PER_LIST * spec.nlist)
    rng = np.random.default_rng(seed)
    sample = np.arange(n) if n_train >= n else np.sort(rng.choice(n, n_train, replace=False))
    index.train(np.asarray(store.vectors[sample], dtype=np.float32))
    for start in range(0, n, 65536):
        block = np.asarray(store.vectors[start : start + 65536], dtype=np.float32)
        index.add_with_ids(block, np.asarray(store.ids[start : start + 65536]))
    return index
