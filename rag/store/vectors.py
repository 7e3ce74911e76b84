"""A build's vectors: the files of each index kind, the loaded (searchable) vectors of a build, and
the vector set a new build writes (the previous build's, edited by id, or re-created from its
stored vectors; never re-embedded)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .checks import LayoutError, check_fp16_store
from .fp16 import Fp16Vectors, save_rows
from .kinds import (
    CANDIDATES,
    RERANK_K,
    TRAIN_PER_LIST,
    IndexSpec,
    _dot,
    build_vector_index,
    choose,
    index_ids,
    needs_rebuild,
    spec_of,
)

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
