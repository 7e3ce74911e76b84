"""The default store backend: the FAISS + SQLite folder (reader.IndexReader, writer.write_version),
behind the interface of rag/store/backend.py, unchanged underneath."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError, IndexNotFoundError
from ..types import Chunk, Document
from .manifest import CHUNKS_DB, Manifest, current_version, read_manifest
from .reader import IndexReader, sentence_ids
from .vectors import VectorSet
from .writer import TokenStates, collect_garbage, write_version


class FaissStore:
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.where = str(self.index_dir)
        self.cache_key = self.index_dir.resolve()
        self.lock_path = self.index_dir / ".lock"

    def live_version(self) -> str | None:
        version = current_version(self.index_dir)
        return version.name if version else None

    def live_manifest(self) -> Manifest | None:
        version = current_version(self.index_dir)
        return read_manifest(version) if version else None

    def open_reader(self) -> IndexReader:
        """The live build; if it was collected while being opened (a build swapped in meanwhile), the new one."""
        version = current_version(self.index_dir)
        if version is None:
            raise IndexNotFoundError(f"no index in {self.index_dir}; run `rag index` to build one")
        try:
            return IndexReader.open_version(version)
        except IndexCorruptError:
            again = current_version(self.index_dir)
            if again is None or again == version:
                raise
            return IndexReader.open_version(again)

    def begin_build(self, *, full: bool, base: IndexReader | None, dim: int, identity: dict | None = None,
                    n_expected: int = 0, crash_hook=None) -> FaissBuild:
        return FaissBuild(self.index_dir, dim, None if full else base, crash_hook)

    def built_by_us(self) -> None:
        """Nothing to do: the next question reads ``CURRENT``, which the build has just renamed in."""

    def location(self, reader: IndexReader) -> str:
        return str(reader.version_dir)

    def collect_garbage(self) -> None:
        collect_garbage(self.index_dir, keep=None)


class FaissBuild:
    """A build of the folder store: vectors gathered in memory, then a new version written whole
    beside the live one (the previous build's index edited by id, or re-created; see vectors.VectorSet)."""

    batch_chunks = None
    stores_token_states = True
    wants_lexical_text = False

    def __init__(self, index_dir: Path, dim: int, base: IndexReader | None, crash_hook=None) -> None:
        self.index_dir, self.dim, self.base, self.crash_hook = index_dir, dim, base, crash_hook
        self._chunks: list[Chunk] = []
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def resume(self, planned: list[Chunk]) -> set[int]:
        return set()  # a killed build of the folder store leaves nothing to reuse: it starts again

    def add(self, chunks, vectors, sentence_ids, sentence_vectors, lexical_texts=None) -> None:
        self._chunks += chunks
        self._parts.append((np.asarray(vectors, np.float32), np.asarray(sentence_ids, np.int64),
                            np.asarray(sentence_vectors, np.float32)))

    def commit(self, manifest: Manifest, remove_ids: list[int], token_states: TokenStates | None = None, *,
               remove_sources: Iterable[str] = (), add_documents: Iterable[Document] = ()) -> str:
        base = self.base
        vector_set = VectorSet(self.dim, base.loaded_vectors() if base is not None else None)
        if base is not None and remove_ids:
            old_sentences = [i for c in base.chunks(remove_ids) for i in sentence_ids(c)]
            vector_set.remove(remove_ids, old_sentences)
        if self._chunks:
            vector_set.add([c.id for c in self._chunks], *_stack(self._parts, self.dim))
        version = write_version(
            self.index_dir, manifest, vector_set, base.version_dir / CHUNKS_DB if base is not None else None,
            remove_ids if base is not None else [], self._chunks, crash_hook=self.crash_hook, token_states=token_states,
            remove_sources=remove_sources if base is not None else [], add_documents=add_documents,
        )
        return str(version)

    def close(self) -> None:
        self._parts.clear()


def _stack(parts, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    empty = (np.zeros((0, dim), np.float32), np.zeros(0, np.int64), np.zeros((0, dim), np.float32))
    return tuple(np.concatenate([p[i] for p in parts] or [empty[i]]) for i in range(3))
