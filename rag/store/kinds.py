"""The FAISS index kind, chosen by corpus size, and how one is built, trained and searched.

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

In the index (rag/store/, rag/indexer.py): the kind is chosen on a build's chunk count
(``choose``; tests lower ``EXACT_MAX``) and recorded in the manifest (schema 3; an exact build keeps
the schema 2 manifest and files, unchanged). An approximate build holds ``vectors.faiss`` (the IVF),
``vectors.{f16,ids}.npy`` and ``sentences.{f16,ids}.npy``, and no sentence index: at 1M chunks the
~6.5M sentence vectors would take ~2.5 GB as SQ8 and another IVF scan per question. Instead
``LoadedVectors.search_sentences`` scores exactly the sentences of the IVF's ``CANDIDATES`` best
chunks, read from the memory-mapped store (one IVF scan serves both searches). ``VectorSet`` makes a
build's files: the previous index edited by id, or re-created from the stored vectors when the
kind changes or the IVF outgrew its lists (``needs_rebuild``), never re-embedding.
``checks.check_ivf_file`` / ``checks.check_fp16_store`` refuse a file that is not what a build writes.

Use::

    index = build_vector_index(dim, n_expected)
    train(index, vectors)                      # k-means for the IVF; no-op for the exact index
    index.add_with_ids(vectors, ids)
    Fp16Vectors.save(stem, ids, vectors)       # beside the index: re-scoring and rebuilds
    scores, ids = search(index, query, k, store=Fp16Vectors.open(stem))
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .fp16 import Fp16Vectors

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



SENTENCES_AT_SCALE = "float16 store, sentences of the candidate chunks scored exactly"


def spec_to_manifest(spec: IndexSpec) -> dict:
    """What the manifest records: nothing for the exact kind (its format is the original one)."""
    if spec.kind == "flat":
        return {}
    return {"kind": spec.kind, "nlist": spec.nlist, "nprobe": spec.nprobe, "candidates": CANDIDATES,
            "sentences": SENTENCES_AT_SCALE}


ENGINE = "milvus"  # a build held by a Milvus engine (rag/store/milvus/): no files, the engine's own index
ENGINE_KEYS = {"kind", "index_type", "params", "bm25"}


def spec_from_manifest(data: dict) -> IndexSpec:
    """The spec a manifest's ``index`` entry describes; ValueError when it is not one a build writes."""
    if not data:
        return IndexSpec("flat")
    if data.get("kind") == ENGINE:
        if not (set(data) == ENGINE_KEYS and isinstance(data["index_type"], str) and isinstance(data["params"], dict)
                and isinstance(data["bm25"], bool)):
            raise ValueError("the engine index description is not valid")
        return IndexSpec(ENGINE)
    nlist, nprobe, candidates = data.get("nlist"), data.get("nprobe"), data.get("candidates")
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (nlist, nprobe, candidates))
    if not (
        set(data) == {"kind", "nlist", "nprobe", "candidates", "sentences"} and data["kind"] == "ivf-sq8"
        and ints and 0 < nprobe <= nlist <= 1 << 16 and 0 < candidates <= 1 << 16
        and data["sentences"] == SENTENCES_AT_SCALE
    ):
        raise ValueError("the index description is not valid")
    return IndexSpec("ivf-sq8", nlist, nprobe)

