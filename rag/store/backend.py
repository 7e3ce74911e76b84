"""The store backend interface: what the indexer writes a build through, and what the query stage
reads one through. Two implementations:

* the FAISS + SQLite folder (``local.FaissStore``, the default): one immutable build per folder,
  made live by an atomic rename; a build is written whole at the end (``batch_chunks`` is None);
* Milvus (``milvus.MilvusStore``: a server or cluster at ``http://host:port``, or a Milvus Lite file
  ``*.db``): chunk and sentence rows in collections, written batch by batch as they are embedded, so
  that an interrupted build resumes; a full rebuild fills new collections, then switches an alias
  (or, on Milvus Lite, which has none, a one-row pointer collection).

What a build carries beyond vectors and chunk rows is kept narrow on purpose: the manifest (the same
``Manifest`` either way), the documents' extracted texts and infos (``commit``'s ``add_documents``, read
back by ``document_info`` / ``document_text``: kept by both stores), and per-build extras the store may
decline (``stores_token_states``: the passages' word-piece states are stored by the FAISS store only;
on Milvus the token match computes the 20 best candidates' states when a question needs them, as it
does above ``Settings.token_states_max_chunks``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..types import Chunk, Document
from .documents import DocumentInfo
from .manifest import Manifest

if TYPE_CHECKING:
    from ..settings import Settings
    from .writer import TokenStates


class StoreReader(Protocol):
    """One live build, read-only, safe to share between threads."""

    version: str  # changes whenever another build is made live: keys the per-build caches
    manifest: Manifest

    @property
    def ntotal(self) -> int: ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def search_sentences(self, query: np.ndarray, k: int) -> list[tuple[int, int, float]]: ...

    def vectors_for(self, ids: Iterable[int]) -> np.ndarray: ...

    def sentence_vectors_for(self, ids: Iterable[int]) -> np.ndarray: ...

    def chunks(self, ids: list[int]) -> list[Chunk]: ...

    def iter_chunks(self) -> Iterator[Chunk]: ...

    @property
    def token_layer(self) -> int | None: ...

    def token_states(self, chunk_ids: list[int]) -> list[np.ndarray | None]: ...

    def document_info(self, source: str) -> DocumentInfo | None:
        """What citations need of a document (kind, title, URL, page starts); None when the build has none."""
        ...

    def document_text(self, source: str) -> str:
        """The extracted text every offset of ``source``'s chunks points into."""
        ...

    def lexical_top(self, terms: list[str], n: int) -> list[tuple[int, float]] | None:
        """The engine's own BM25 over the analysed ``terms`` (best ``n``, scores on bm25s's scale),
        or None when the store has none (the query stage then runs bm25s over ``iter_chunks``)."""
        ...

    def close(self) -> None: ...


class BuildWriter(Protocol):
    """One build being written; ``commit`` makes it live, ``close`` releases what it holds."""

    batch_chunks: int | None  # chunks embedded between two writes; None: the whole build at once
    stores_token_states: bool  # whether ``commit`` keeps the passages' word-piece states
    wants_lexical_text: bool  # whether ``add`` needs each chunk's analysed text (an engine's BM25)

    def resume(self, planned: list[Chunk]) -> set[int]:
        """The ids of ``planned`` chunks an interrupted run of this same build already wrote."""
        ...

    def add(self, chunks: list[Chunk], vectors: np.ndarray, sentence_ids: np.ndarray,
            sentence_vectors: np.ndarray, lexical_texts: list[str] | None = None) -> None: ...

    def commit(self, manifest: Manifest, remove_ids: list[int], token_states: TokenStates | None = None, *,
               remove_sources: Iterable[str] = (), add_documents: Iterable[Document] = ()) -> str:
        """Make the build live, atomically for readers; returns where it lives. ``remove_sources`` lose
        their stored documents, ``add_documents`` are stored (their texts, kinds, titles, URLs, pages)."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    where: str  # for messages: the index folder, or the Milvus address and collection
    cache_key: object  # one per index: the key of the per-process reader cache
    lock_path: Path  # the build lock (a file lock: one build at a time from this machine)

    def live_version(self) -> str | None:
        """The live build's version, cheaply (None when nothing was built)."""
        ...

    def live_manifest(self) -> Manifest | None: ...

    def open_reader(self) -> StoreReader: ...

    def begin_build(self, *, full: bool, base: StoreReader | None, dim: int, identity: dict, n_expected: int,
                    crash_hook=None) -> BuildWriter:
        """A build on top of ``base`` (None, or ``full``: from nothing); ``identity`` (model and chunker
        settings) lets a store resume only an interrupted build of the same; ``n_expected`` chunks."""
        ...

    def built_by_us(self) -> None:
        """A build this process made live, or a child process made live for it (``rag.background``): the
        store makes sure this process's next questions see it."""
        ...

    def location(self, reader: StoreReader) -> str:
        """Where a build lives (the report's ``index_path``)."""
        ...

    def collect_garbage(self) -> None:
        """Remove what killed builds left behind (under the build lock)."""
        ...


def one_process_at_a_time(settings: Settings) -> bool:
    """Whether only one process may open the store: a Milvus Lite file (its engine runs inside the process
    that opens it), so a server on one indexes in its own process rather than in a child."""
    return bool(settings.store) and not settings.store.startswith(("http://", "https://"))


def open_store(settings: Settings) -> Store:
    """The store ``settings.store`` names: the FAISS folder ``index_dir`` when it is empty."""
    if not settings.store:
        from .local import FaissStore

        return FaissStore(settings.index_dir)
    from .milvus import MilvusStore

    return MilvusStore.for_settings(settings)
