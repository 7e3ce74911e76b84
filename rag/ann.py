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

Use::

    index = build_vector_index(dim, n_expected)
    train(index, vectors)                      # k-means for the IVF; no-op for the exact index
    index.add_with_ids(vectors, ids)
    Fp16Vectors.save(stem, ids, vectors)       # beside the index: re-scoring and rebuilds
    scores, ids = search(index, query, k, store=Fp16Vectors.open(stem))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXACT_MAX = 30_000  # exact search below this many vectors
RERANK_K = 50  # IVF candidates re-scored exactly from the float16 store
TRAIN_PER_LIST = 40  # k-means points per list (FAISS warns below 39)
KMEANS_ITER = 10


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
    recall curves: a quarter of the lists up to a few hundred thousand vectors, an eighth from there."""
    nlist = 2 ** max(7, min(16, round(math.log2(2 * math.sqrt(max(n, 1))))))
    return nlist, nlist // 4 if n < 300_000 else nlist // 8


def choose(n_expected: int, exact_max: int = EXACT_MAX) -> IndexSpec:
    if n_expected < exact_max:
        return IndexSpec("flat")
    nlist, nprobe = ivf_params(n_expected)
    return IndexSpec("ivf-sq8", nlist, nprobe)


def build_vector_index(dim: int, n_expected: int, *, exact_max: int = EXACT_MAX, spec: IndexSpec | None = None):
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


def needs_rebuild(index, n_total: int, exact_max: int = EXACT_MAX) -> bool:
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
    s = store.get(ids) @ q[0]
    top = np.argsort(-s)[:k]
    return s[top], ids[top]


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
        return cls(np.load(ids_path, mmap_mode="r"), np.load(vec_path, mmap_mode="r"))

    def get(self, ids) -> np.ndarray:
        """float32 rows for ``ids`` (any order); KeyError for an id not stored."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        bad = (pos >= len(self.ids)) | (self.ids[np.minimum(pos, len(self.ids) - 1)] != ids)
        if bad.any():
            raise KeyError(f"vector ids {ids[bad][:5].tolist()} are not stored")
        return np.asarray(self.vectors[pos], dtype=np.float32)
