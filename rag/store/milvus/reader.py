"""Reading the live Milvus build: searches filtered to its generation (rows an unfinished build is
writing are not seen), chunks and vectors fetched by id, the documents' infos (loaded when the reader
opens) and texts (fetched when asked for), and the engine's own BM25 where it has one."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import numpy as np

from ...errors import REBUILD_HINT, IndexCorruptError, IndexNotFoundError
from ...types import Chunk
from ..documents import DocumentInfo, require_document
from ..manifest import Manifest
from ..reader import DOCUMENTS_SINCE
from .connect import engine_errors
from .documents import load_infos, load_text
from .meta import expand
from .schema import BM25_K1, SENTENCE_STRIDE, BuildNames, search_params

TOPK_MAX = 16384  # the most results Milvus returns for one search
FETCH = 1000  # ids per query
CHUNK_FIELDS = ["id", "source", "text", "start_char", "end_char", "title", "sentences"]


class MilvusReader:
    """One live generation of a Milvus build. Safe to share between threads (the client is)."""

    def __init__(self, client, names: BuildNames, head: dict, manifest: Manifest, where: str) -> None:
        self.client, self.names, self.manifest, self.where = client, names, manifest, where
        self.gen = int(head["gen"])
        self.version = f"{names.chunks}@{self.gen}"
        # chunks this generation dropped whose rows may still be being deleted: skipped in every answer
        self._removed = np.asarray(sorted(expand(head.get("removed", []))), dtype=np.int64)
        self._filter = f"gen <= {self.gen}"
        index = manifest.index
        self._index_type, self._params, self._bm25 = index["index_type"], index["params"], index["bm25"]
        self._ntotal = manifest.total_chunks
        # {source: (info, generation of its rows)}; None for a build older than the stored documents
        self._documents: dict[str, tuple[DocumentInfo, int]] | None = None

    def check(self) -> MilvusReader:
        """Wait until the engine serves every row of this generation (one Strong read), and refuse a
        collection whose rows differ from the manifest's count (or that is gone)."""
        if not self.client.has_collection(self.names.chunks) or not self.client.has_collection(self.names.sentences):
            raise IndexNotFoundError(
                f"the live build {self.names.chunks} is gone from {self.where} (deleted by someone else?); {REBUILD_HINT}"
            )
        with engine_errors(self.where, self.names.chunks):
            rows = self.client.query(self.names.chunks, filter=self._filter, output_fields=["count(*)"],
                                     consistency_level="Strong")
        count = int(rows[0]["count(*)"]) if rows else 0
        if not self._ntotal <= count <= self._ntotal + len(self._removed):
            raise IndexCorruptError(
                f"{self.names.chunks} in {self.where} holds {count} chunks where its manifest lists "
                f"{self._ntotal} (changed by someone else?); {REBUILD_HINT}"
            )
        self._documents = self._load_documents()
        return self

    def _load_documents(self) -> dict[str, tuple[DocumentInfo, int]] | None:
        if not self.client.has_collection(self.names.documents):
            version = self.manifest.chunker.get("chunker_version", 0)
            if not isinstance(version, int) or version >= DOCUMENTS_SINCE:
                raise IndexCorruptError(f"the build {self.names.chunks} in {self.where} has no documents "
                                        f"collection; {REBUILD_HINT}")
            return None
        with engine_errors(self.where, self.names.documents):
            return load_infos(self.client, self.names.documents, self.gen, self.manifest.seeds)

    def document_info(self, source: str) -> DocumentInfo | None:
        found = self._documents.get(source) if self._documents is not None else None
        return found[0] if found else None

    def document_text(self, source: str) -> str:
        """The text every offset of ``source``'s chunks points into."""
        require_document(self._documents, source, self.where)
        info, gen = self._documents[source]
        with engine_errors(self.where, self.names.documents):
            return load_text(self.client, self.names.documents, source, info, gen)

    @property
    def ntotal(self) -> int:
        return self._ntotal

    def _live(self, ids: np.ndarray) -> np.ndarray:
        if not len(self._removed):
            return np.ones(len(ids), dtype=bool)
        return ~np.isin(ids, self._removed)

    def _search(self, collection: str, query: np.ndarray, k: int, extra: int) -> list[dict]:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if k <= 0 or not np.isfinite(q).all():
            return []
        limit = min(TOPK_MAX, k + extra)
        with engine_errors(self.where, collection):
            hits = self.client.search(collection, data=[q.tolist()], anns_field="vec", filter=self._filter,
                                      limit=limit, search_params=search_params(self._index_type, self._params, limit))
        return list(hits[0]) if hits else []

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine) pairs, best first."""
        k = max(0, min(int(k), self._ntotal))
        hits = self._search(self.names.chunks, query, k, len(self._removed))
        ids = np.asarray([h["id"] for h in hits], dtype=np.int64)
        keep = self._live(ids)
        return [(int(h["id"]), float(h["distance"])) for h, ok in zip(hits, keep) if ok][:k]

    def search_sentences(self, query: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        """(chunk id, sentence position, cosine) of the ``k`` closest sentences, best first."""
        hits = self._search(self.names.sentences, query, max(0, int(k)), 16 * len(self._removed))
        ids = np.asarray([h["id"] for h in hits], dtype=np.int64)
        keep = self._live(ids // SENTENCE_STRIDE)
        out = [(int(h["id"]) // SENTENCE_STRIDE, int(h["id"]) % SENTENCE_STRIDE, float(h["distance"]))
               for h, ok in zip(hits, keep) if ok]
        return out[: max(0, int(k))]

    def _fetch(self, collection: str, ids: list[int], fields: list[str]) -> dict[int, dict]:
        found: dict[int, dict] = {}
        with engine_errors(self.where, collection):
            for start in range(0, len(ids), FETCH):
                part = ids[start : start + FETCH]
                for row in self.client.query(collection, filter=f"id in {part}", output_fields=fields):
                    found[int(row["id"])] = row
        missing = [i for i in ids if i not in found]
        if missing:
            raise IndexCorruptError(f"ids {missing[:5]} are missing from {collection} in {self.where}; {REBUILD_HINT}")
        return found

    def _vectors(self, collection: str, ids: Iterable[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        if not ids:
            return np.zeros((0, self.manifest.dim), dtype=np.float32)
        rows = self._fetch(collection, ids, ["id", "vec"])
        return np.asarray([rows[i]["vec"] for i in ids], dtype=np.float32)

    def vectors_for(self, ids: Iterable[int]) -> np.ndarray:
        return self._vectors(self.names.chunks, ids)

    def sentence_vectors_for(self, ids: Iterable[int]) -> np.ndarray:
        return self._vectors(self.names.sentences, ids)

    def chunks(self, ids: list[int]) -> list[Chunk]:
        """Chunks by id, in the order asked for; unknown ids are an error."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        rows = self._fetch(self.names.chunks, ids, CHUNK_FIELDS)
        return [_chunk(rows[i]) for i in ids]

    def iter_chunks(self) -> Iterator[Chunk]:
        """Every chunk of this generation, by id (read in pages)."""
        rows = []
        with engine_errors(self.where, self.names.chunks):
            pages = self.client.query_iterator(self.names.chunks, batch_size=FETCH, filter=self._filter,
                                               output_fields=CHUNK_FIELDS)
            while page := pages.next():
                rows += page
            pages.close()
        keep = self._live(np.asarray([r["id"] for r in rows], dtype=np.int64))
        for row in sorted((r for r, ok in zip(rows, keep) if ok), key=lambda r: r["id"]):
            yield _chunk(row)

    @property
    def token_layer(self) -> int | None:
        return None  # not stored in the engine: the token match computes the candidates' states

    def token_states(self, chunk_ids: list[int]) -> list[np.ndarray | None]:
        return [None] * len(chunk_ids)

    def lexical_top(self, terms: list[str], n: int) -> list[tuple[int, float]] | None:
        """The engine's BM25 over the chunks' analysed words (None on an engine without full-text
        search), on bm25s's scale: the engine multiplies each term's weight by (k1 + 1), bm25s does not."""
        if not self._bm25:
            return None
        if not terms or n <= 0:
            return []
        limit = min(TOPK_MAX, n + len(self._removed) + 32)  # + 32: the ties at the cut are ordered by id below
        with engine_errors(self.where, self.names.chunks):
            hits = self.client.search(self.names.chunks, data=[" ".join(terms)], anns_field="sparse",
                                      filter=self._filter, limit=limit,
                                      search_params={"metric_type": "BM25", "params": {"drop_ratio_search": 0.0}})
        scored = [(int(h["id"]), float(h["distance"]) / (BM25_K1 + 1)) for h in (hits[0] if hits else [])]
        keep = self._live(np.asarray([i for i, _ in scored], dtype=np.int64))
        scored = sorted((s for s, ok in zip(scored, keep) if ok and s[1] > 0), key=lambda s: (-s[1], s[0]))
        return scored[:n]

    def close(self) -> None:
        """Nothing to release: the client is the process's, shared by every reader of this store."""


def _chunk(row: dict) -> Chunk:
    spans = tuple((int(a), int(b)) for a, b in json.loads(row["sentences"]))
    return Chunk(id=int(row["id"]), source=row["source"], text=row["text"], start=int(row["start_char"]),
                 end=int(row["end_char"]), title=row["title"], sentences=spans)
