"""Reading one build: every file checked (checksums, layouts, cross-references) before it is parsed,
then chunks and vectors served to the query stage. Safe to share between threads."""

from __future__ import annotations

import json
import sqlite3
import threading
import tokenize
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..checksum import sha256_file
from ..errors import REBUILD_HINT, IndexCorruptError, IndexNotFoundError
from ..types import Chunk
from . import kinds
from .checks import LayoutError, check_ivf_file, check_vector_file
from .documents import DocumentInfo, has_documents, load_infos, load_text, require_document
from .manifest import CHUNKS_DB, SENTENCE_STRIDE, Manifest, current_version, read_manifest
from .tokens import TokenLayoutError, TokenStore
from .vectors import SENTENCE_VECTORS, VECTORS, LoadedVectors

# the chunker version from which a build stores its documents' texts (rag/documents/chunk.py)
DOCUMENTS_SINCE = 3


class IndexReader:
    """One loaded, immutable build. Safe to share between threads."""

    def __init__(
        self,
        version_dir: Path,
        manifest: Manifest,
        vectors: LoadedVectors,
        db: sqlite3.Connection,
        documents: dict[str, DocumentInfo] | None = None,
        token_store: TokenStore | None = None,
    ) -> None:
        self.version_dir = version_dir
        self.version = version_dir.name
        self.manifest = manifest
        self._vec = vectors  # of either kind; the exact kind is searched through the two indexes below
        self._vectors = vectors.index
        self._sentence_vectors = vectors.sentence_index  # None for the IVF kind
        self._exact = vectors.spec.kind == "flat"
        self._db = db
        self._db_lock = threading.Lock()
        self._tokens = token_store
        # None for a build written before the documents' texts were stored (rag index rebuilds it)
        self.documents = documents

    @classmethod
    def open(cls, index_dir: Path) -> IndexReader:
        version_dir = current_version(index_dir)
        if version_dir is None:
            raise IndexNotFoundError(f"no index in {index_dir}; run `rag index` to build one")
        return cls.open_version(version_dir)

    @classmethod
    def open_version(cls, version_dir: Path) -> IndexReader:
        """Load one build, or raise IndexCorruptError / IndexMismatchError naming what is wrong.

        Nothing reaches FAISS or SQLite before its sha256 matches the (self-checked) manifest and,
        for FAISS, its layout matches what a build writes; then the three stores are cross-checked
        id by id, so every vector a search returns has its chunk, in the seed the manifest says."""
        manifest = read_manifest(version_dir)
        spec = manifest.spec
        try:
            for name in manifest.data_files():
                path = version_dir / name
                if not path.is_file():
                    raise IndexCorruptError(f"the index file {path} is missing; {REBUILD_HINT}")
                # A checksum before parsing: FAISS must never read a damaged file.
                if manifest.files.get(name) != sha256_file(path):
                    raise IndexCorruptError(
                        f"the index file {path} is damaged (checksum mismatch); {REBUILD_HINT}"
                    )
            if spec.kind == "flat":
                for name in (VECTORS, SENTENCE_VECTORS):
                    check_vector_file(version_dir / name, manifest.dim)
            else:
                check_ivf_file(version_dir / VECTORS, manifest.dim, spec)
        except OSError as exc:  # e.g. the build was collected while we read it
            raise IndexCorruptError(f"cannot read the index at {version_dir}: {exc}; {REBUILD_HINT}") from exc
        try:
            candidates = manifest.index.get("candidates", kinds.CANDIDATES)
            vectors = LoadedVectors.read(version_dir, spec, manifest.dim, SENTENCE_STRIDE, candidates)
        except LayoutError as exc:
            raise IndexCorruptError(
                f"the vector files in {version_dir} do not have the layout a build writes ({exc}); {REBUILD_HINT}"
            ) from exc
        # ValueError, SyntaxError, tokenize.TokenError: what numpy's parser of a .npy header raises when it is damaged
        except (RuntimeError, MemoryError, OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:
            raise IndexCorruptError(f"cannot read the vectors in {version_dir}: {exc}; {REBUILD_HINT}") from exc
        token_store = None
        if manifest.token_states:
            try:
                token_store = TokenStore(version_dir, manifest.dim)
            except TokenLayoutError as exc:
                raise IndexCorruptError(
                    f"the token-state files in {version_dir} do not have the layout a build writes ({exc}); {REBUILD_HINT}"
                ) from exc
        db = None
        try:
            uri = f"file:{(version_dir / CHUNKS_DB).as_posix()}?mode=ro&immutable=1"
            db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            rows = db.execute("SELECT id, source, json_array_length(sentences) FROM chunks ORDER BY id").fetchall()
            _check_consistent(version_dir, manifest, vectors, rows, token_store)
            documents = _documents(version_dir, manifest, db)
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise IndexCorruptError(f"the chunk table {version_dir / CHUNKS_DB} is damaged: {exc}; {REBUILD_HINT}") from exc
        except BaseException:
            if db is not None:
                db.close()
            raise
        return cls(version_dir, manifest, vectors, db, documents, token_store)

    @property
    def ntotal(self) -> int:
        return int(self._vectors.ntotal)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine) pairs, best first; FAISS's -1 "no result" slots are dropped. Exact
        below kinds.EXACT_MAX chunks; above, the IVF's candidates re-scored exactly (float16)."""
        k = max(0, min(int(k), self.ntotal))
        if k == 0:
            return []
        with kinds.one_search_thread():
            if not self._exact:
                return self._vec.search(query, k)
            scores, ids = self._vectors.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def search_sentences(self, query: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        """(chunk id, sentence position, cosine) for the ``k`` closest sentences, best first. Above
        kinds.EXACT_MAX chunks: the closest among the sentences of the chunk search's candidates."""
        with kinds.one_search_thread():
            if not self._exact:
                k = max(0, min(int(k), self._vec.n_sentences))
                return self._vec.search_sentences(query, k) if k else []
            k = max(0, min(int(k), int(self._sentence_vectors.ntotal)))
            if k == 0:
                return []
            scores, ids = self._sentence_vectors.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)
        return [(int(i) // SENTENCE_STRIDE, int(i) % SENTENCE_STRIDE, float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def vectors_for(self, ids: Iterable[int]) -> np.ndarray:
        return self._reconstruct(self._vectors, ids, sentences=False)

    def sentence_vectors_for(self, ids: Iterable[int]) -> np.ndarray:
        return self._reconstruct(self._sentence_vectors, ids, sentences=True)

    def _reconstruct(self, index, ids: Iterable[int], sentences: bool) -> np.ndarray:
        ids = [int(i) for i in ids]
        if not ids:
            return np.zeros((0, self.manifest.dim), dtype=np.float32)
        try:
            if not self._exact:  # the IVF's float16 stores
                return self._vec.vectors(ids, sentences)
            return index.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        except (RuntimeError, KeyError) as exc:  # an id the index does not hold
            raise IndexCorruptError(f"vector ids {ids[:5]} are missing from {self.version_dir}; {REBUILD_HINT}") from exc

    def chunks(self, ids: list[int]) -> list[Chunk]:
        """Chunks by id, in the order asked for; unknown ids are an error."""
        if not ids:
            return []
        rows = []
        with self._db_lock:
            try:
                for i in range(0, len(ids), 500):  # SQLite limits the number of parameters
                    part = [int(x) for x in ids[i : i + 500]]
                    marks = ",".join("?" * len(part))
                    rows += self._db.execute(f"SELECT {_COLUMNS} FROM chunks WHERE id IN ({marks})", part).fetchall()
            except sqlite3.Error as exc:
                raise IndexCorruptError(f"cannot read chunks from {self.version_dir}: {exc}; {REBUILD_HINT}") from exc
        by_id = {r[0]: _chunk(r) for r in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise IndexCorruptError(f"chunk ids {missing[:5]} have no metadata in {self.version_dir}; {REBUILD_HINT}")
        return [by_id[i] for i in ids]

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._db_lock:
            try:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM chunks ORDER BY id").fetchall()
            except sqlite3.Error as exc:
                raise IndexCorruptError(f"cannot read chunks from {self.version_dir}: {exc}; {REBUILD_HINT}") from exc
        for r in rows:
            yield _chunk(r)

    def document_info(self, source: str) -> DocumentInfo | None:
        return self.documents.get(source) if self.documents is not None else None

    def document_text(self, source: str) -> str:
        """The text every offset of ``source``'s chunks points into."""
        require_document(self.documents, source, self.version_dir)
        with self._db_lock:
            try:
                text = load_text(self._db, source)
            except sqlite3.Error as exc:
                raise IndexCorruptError(f"cannot read documents from {self.version_dir}: {exc}; {REBUILD_HINT}") from exc
        if text is None:
            raise IndexCorruptError(f"the text of {source!r} is missing from {self.version_dir}; {REBUILD_HINT}")
        return text

    def raw_vectors(self):
        return self._vectors

    def raw_sentence_vectors(self):
        """The exact sentence index (None above kinds.EXACT_MAX chunks: there is none)."""
        return self._sentence_vectors

    def loaded_vectors(self) -> LoadedVectors:
        return self._vec

    @property
    def token_layer(self) -> int | None:
        """The encoder layer of the stored word-piece states; None when the build stores none."""
        return self.manifest.token_states.get("layer") if self._tokens is not None else None

    def token_states(self, chunk_ids: list[int]) -> list[np.ndarray | None]:
        """The stored float16 word-piece states of each chunk (None where the build stores none)."""
        if self._tokens is None:
            return [None] * len(chunk_ids)
        try:
            return self._tokens.get(chunk_ids)
        except OSError as exc:
            raise IndexCorruptError(f"cannot read token states from {self.version_dir}: {exc}; {REBUILD_HINT}") from exc

    def lexical_top(self, terms: list[str], n: int) -> None:
        """This store has no BM25 of its own: the query stage builds one from ``iter_chunks``."""
        return None

    def token_store(self) -> TokenStore | None:
        return self._tokens

    def close(self) -> None:
        with self._db_lock:
            self._db.close()


_COLUMNS = "id, source, text, start, end, title, sentences"


def _chunk(row) -> Chunk:
    spans = tuple((int(a), int(b)) for a, b in json.loads(row[6]))
    return Chunk(id=row[0], source=row[1], text=row[2], start=row[3], end=row[4], title=row[5], sentences=spans)


def sentence_ids(chunk: Chunk) -> list[int]:
    return [chunk.id * SENTENCE_STRIDE + j for j in range(len(chunk.sentences))]


def _documents(version_dir: Path, manifest: Manifest, db: sqlite3.Connection) -> dict[str, DocumentInfo] | None:
    """The documents table's infos (None in a build older than it), checked against the manifest."""
    if not has_documents(db):
        version = manifest.chunker.get("chunker_version", 0)
        if not isinstance(version, int) or version >= DOCUMENTS_SINCE:
            raise IndexCorruptError(f"the index at {version_dir} has no documents table; {REBUILD_HINT}")
        return None
    try:
        infos = load_infos(db)
    except ValueError as exc:
        raise IndexCorruptError(f"the documents table in {version_dir} is damaged ({exc}); {REBUILD_HINT}") from exc
    if set(infos) != set(manifest.seeds):
        raise IndexCorruptError(
            f"the index at {version_dir} is inconsistent: the documents table and the manifest list different "
            f"documents; {REBUILD_HINT}"
        )
    return infos


def _check_consistent(
    version_dir: Path, manifest: Manifest, vectors: LoadedVectors, rows: list, token_store: TokenStore | None = None
) -> None:
    """The manifest, the chunk table and the vector files describe exactly the same chunks."""

    def fail(detail: str):
        raise IndexCorruptError(f"the index at {version_dir} is inconsistent: {detail}; {REBUILD_HINT}")

    if any(d != manifest.dim for d in vectors.dims):
        fail(f"vectors of {'/'.join(map(str, vectors.dims))} dimensions, {manifest.dim} in the manifest")
    if not (len(rows) == vectors.ntotal == manifest.total_chunks):
        fail(
            f"{vectors.ntotal} vectors, {len(rows)} chunk rows, {manifest.total_chunks} chunks in the manifest"
        )
    sources = manifest.chunk_sources()
    if any(sources.get(cid) != source for cid, source, _ in rows):
        fail("the chunk table and the manifest disagree on which seed a chunk comes from")
    row_ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    counts = np.asarray([r[2] if isinstance(r[2], int) else -1 for r in rows], dtype=np.int64)
    if (counts < 0).any() or (counts > SENTENCE_STRIDE - 1).any():
        fail("a chunk row has no valid sentence list")
    for ids in vectors.chunk_ids():
        if not np.array_equal(np.sort(ids), row_ids):  # rows come sorted by id, and ids are unique
            fail("the chunk vectors and the chunk table hold different ids")
    sent = np.sort(vectors.sentence_ids())
    # chunk id * stride + position, for every sentence of every chunk, in increasing order
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    expected = np.repeat(row_ids * SENTENCE_STRIDE, counts) + (np.arange(int(counts.sum())) - starts)
    if not np.array_equal(sent, expected):
        fail("the sentence vectors do not match the chunks' sentences")

    if token_store is not None:
        if not np.array_equal(token_store.chunk_ids, row_ids):
            fail("the stored token states and the chunk table hold different chunks")
        if int(manifest.token_states.get("rows", -1)) != token_store.rows:
            fail("the token-state file holds another number of rows than the manifest says")
