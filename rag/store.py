"""The index on disk: FAISS vectors, SQLite chunk metadata and a JSON manifest.

Layout of ``index_dir``::

    CURRENT            name of the live version (replaced atomically with os.replace)
    v-<time>-<rand>/   one complete, immutable build
        vectors.faiss  IndexIDMap2 over inner product (vectors are normalised), one per chunk
        sentences.faiss  the same, one vector per sentence (id = chunk id * 1024 + position)
        chunks.sqlite  one row per chunk: id, source, start, end, title, text, sentence spans
        manifest.json  written last; lists every file's sha256
    .lock              held while a build runs

A build never touches a live version: it writes a new one beside it and swaps
CURRENT, so readers see the old index or the new one, never a mix. Nothing is pickled."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from .types import Chunk

SCHEMA_VERSION = 2
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
SENTENCE_VECTORS = "sentences.faiss"
SENTENCE_STRIDE = 1024
CHUNKS_DB = "chunks.sqlite"
DATA_FILES = (VECTORS, SENTENCE_VECTORS, CHUNKS_DB)
REBUILD_HINT = "run `rag index --full` to rebuild it"


@dataclass(frozen=True)
class SeedEntry:
    sha256: str
    chunk_ids: list[int]
    title: str = ""
    encoding: str = "utf-8"
    chars: int = 0


@dataclass(frozen=True)
class Manifest:
    model_id: str
    model_fingerprint: str
    dim: int
    chunker: dict
    seeds: dict[str, SeedEntry]
    next_id: int
    built_at: str = ""
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    library_versions: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def total_chunks(self) -> int:
        return sum(len(e.chunk_ids) for e in self.seeds.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Manifest:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("manifest is not an object")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise IndexMismatchError(
                f"the index uses schema version {data.get('schema_version')!r}, this program reads "
                f"version {SCHEMA_VERSION}; {REBUILD_HINT}"
            )
        seeds = {str(k): SeedEntry(**v) for k, v in data.pop("seeds").items()}
        return cls(seeds=seeds, **data)


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("faiss-cpu", "sentence-transformers", "transformers", "torch", "langchain-text-splitters"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- reading


def current_version(index_dir: Path) -> Path | None:
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"cannot read {index_dir / CURRENT}: {exc}; {REBUILD_HINT}") from exc
    if not name.startswith("v-") or "/" in name or not (index_dir / name).is_dir():
        raise IndexCorruptError(f"{index_dir / CURRENT} points to a missing build {name[:80]!r}; {REBUILD_HINT}")
    return index_dir / name


def read_manifest(version_dir: Path) -> Manifest:
    try:
        return Manifest.from_json((version_dir / MANIFEST).read_text(encoding="utf-8"))
    except IndexMismatchError:
        raise
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"the index at {version_dir} has no manifest; {REBUILD_HINT}") from exc
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"the manifest in {version_dir} is damaged ({exc}); {REBUILD_HINT}") from exc


def check_compatible(manifest: Manifest, model_id: str, fingerprint: str, dim: int, where: Path) -> None:
    if (manifest.model_id, manifest.model_fingerprint, manifest.dim) != (model_id, fingerprint, dim):
        raise IndexMismatchError(
            f"the index at {where} was built with the model {manifest.model_id!r} "
            f"({manifest.model_fingerprint}, {manifest.dim} dimensions), not with {model_id!r} "
            f"({fingerprint}, {dim} dimensions); {REBUILD_HINT} with this model, or choose the "
            f"index's model with --model"
        )


class IndexReader:
    """One loaded, immutable build. Safe to share between threads."""

    def __init__(self, version_dir: Path, manifest: Manifest, vectors, sentence_vectors, db: sqlite3.Connection) -> None:
        self.version_dir = version_dir
        self.version = version_dir.name
        self.manifest = manifest
        self._vectors = vectors
        self._sentence_vectors = sentence_vectors
        self._db = db
        self._db_lock = threading.Lock()

    @classmethod
    def open(cls, index_dir: Path) -> IndexReader:
        version_dir = current_version(index_dir)
        if version_dir is None:
            raise IndexNotFoundError(f"no index in {index_dir}; run `rag index` to build one")
        return cls.open_version(version_dir)

    @classmethod
    def open_version(cls, version_dir: Path) -> IndexReader:
        import faiss

        manifest = read_manifest(version_dir)
        for name in DATA_FILES:
            path = version_dir / name
            if not path.is_file():
                raise IndexCorruptError(f"the index file {path} is missing; {REBUILD_HINT}")
            # A checksum before parsing: FAISS must never read a damaged file.
            if manifest.files.get(name) != sha256_path(path):
                raise IndexCorruptError(f"the index file {path} is damaged (checksum mismatch); {REBUILD_HINT}")
        try:
            vectors = faiss.read_index(str(version_dir / VECTORS))
            sentence_vectors = faiss.read_index(str(version_dir / SENTENCE_VECTORS))
        except RuntimeError as exc:
            raise IndexCorruptError(f"cannot read the vectors in {version_dir}: {exc}; {REBUILD_HINT}") from exc
        uri = f"file:{(version_dir / CHUNKS_DB).as_posix()}?mode=ro&immutable=1"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            (rows,) = db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise IndexCorruptError(f"the chunk table in {version_dir} is damaged: {exc}; {REBUILD_HINT}") from exc
        if (
            not (rows == vectors.ntotal == manifest.total_chunks)
            or vectors.d != manifest.dim
            or sentence_vectors.d != manifest.dim
        ):
            db.close()
            raise IndexCorruptError(
                f"the index at {version_dir} is inconsistent: {vectors.ntotal} vectors, {rows} chunk rows, "
                f"{manifest.total_chunks} chunks in the manifest; {REBUILD_HINT}"
            )
        return cls(version_dir, manifest, vectors, sentence_vectors, db)

    @property
    def ntotal(self) -> int:
        return int(self._vectors.ntotal)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine) pairs, best first; FAISS's -1 "no result" slots are dropped."""
        k = max(0, min(int(k), self.ntotal))
        if k == 0:
            return []
        scores, ids = self._vectors.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def search_sentences(self, query: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        """(chunk id, sentence position, cosine) for the ``k`` closest sentences, best first."""
        k = max(0, min(int(k), int(self._sentence_vectors.ntotal)))
        if k == 0:
            return []
        scores, ids = self._sentence_vectors.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)
        return [(int(i) // SENTENCE_STRIDE, int(i) % SENTENCE_STRIDE, float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def vectors_for(self, ids: Iterable[int]) -> np.ndarray:
        return np.stack([self._vectors.reconstruct(int(i)) for i in ids])

    def sentence_vectors_for(self, ids: Iterable[int]) -> np.ndarray:
        return np.stack([self._sentence_vectors.reconstruct(int(i)) for i in ids])

    def chunks(self, ids: list[int]) -> list[Chunk]:
        """Chunks by id, in the order asked for; unknown ids are an error."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self._db_lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM chunks WHERE id IN ({marks})", list(ids)
            ).fetchall()
        by_id = {r[0]: _chunk(r) for r in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise IndexCorruptError(f"chunk ids {missing[:5]} have no metadata in {self.version_dir}; {REBUILD_HINT}")
        return [by_id[i] for i in ids]

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._db_lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM chunks ORDER BY id").fetchall()
        for r in rows:
            yield _chunk(r)

    def raw_vectors(self):
        return self._vectors

    def raw_sentence_vectors(self):
        return self._sentence_vectors

    def close(self) -> None:
        with self._db_lock:
            self._db.close()


_COLUMNS = "id, source, text, start, end, title, sentences"


def _chunk(row) -> Chunk:
    spans = tuple((int(a), int(b)) for a, b in json.loads(row[6]))
    return Chunk(id=row[0], source=row[1], text=row[2], start=row[3], end=row[4], title=row[5], sentences=spans)


def sentence_ids(chunk: Chunk) -> list[int]:
    return [chunk.id * SENTENCE_STRIDE + j for j in range(len(chunk.sentences))]


# ----------------------------------------------------------------------------- writing


def new_vector_index(dim: int):
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def copy_vector_indexes(reader: IndexReader):
    """Editable copies of a build's chunk and sentence vectors."""
    import faiss

    return faiss.clone_index(reader.raw_vectors()), faiss.clone_index(reader.raw_sentence_vectors())


def write_version(
    index_dir: Path,
    manifest: Manifest,
    vectors,
    sentence_vectors,
    base_db: Path | None,
    remove_ids: list[int],
    add_chunks: list[Chunk],
    crash_hook=None,
) -> Path:
    """Write a complete new build beside the live one and make it live. Returns its folder.

    ``base_db`` is the previous build's chunk table, copied then edited, so unchanged
    chunks are never re-read or re-written one by one."""
    import faiss

    index_dir.mkdir(parents=True, exist_ok=True)
    tmp = index_dir / f".tmp-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        db_path = tmp / CHUNKS_DB
        if base_db is not None:
            shutil.copyfile(base_db, db_path)
        db = sqlite3.connect(db_path)
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, source TEXT NOT NULL, "
                "start INTEGER NOT NULL, end INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, "
                "sentences TEXT NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source)")
            db.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in remove_ids])
            db.executemany(
                "INSERT INTO chunks (id, source, start, end, title, text, sentences) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(c.id, c.source, c.start, c.end, c.title, c.text, json.dumps(c.sentences)) for c in add_chunks],
            )
            db.commit()
            if remove_ids:
                db.execute("VACUUM")  # deleted rows would otherwise keep their space
        finally:
            db.close()
        _hook(crash_hook, "chunks-written")
        faiss.write_index(vectors, str(tmp / VECTORS))
        faiss.write_index(sentence_vectors, str(tmp / SENTENCE_VECTORS))
        _hook(crash_hook, "vectors-written")
        files = {name: sha256_path(tmp / name) for name in DATA_FILES}
        final = Manifest(**{**asdict(manifest), "seeds": manifest.seeds, "files": files})
        _write_synced(tmp / MANIFEST, final.to_json())
        for name in DATA_FILES:
            _fsync_file(tmp / name)
        _fsync_dir(tmp)
        _hook(crash_hook, "version-complete")
        version = index_dir / f"v-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        os.replace(tmp, version)
        _fsync_dir(index_dir)
        _hook(crash_hook, "version-renamed")
        pointer = index_dir / f".{CURRENT}.{secrets.token_hex(4)}"
        _write_synced(pointer, version.name + "\n")
        os.replace(pointer, index_dir / CURRENT)  # the atomic switch
        _fsync_dir(index_dir)
        _hook(crash_hook, "current-switched")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    collect_garbage(index_dir, keep={version.name})
    return version


def collect_garbage(index_dir: Path, keep: set[str], keep_previous: int = 1) -> None:
    """Delete unfinished temp folders and old builds, keeping the newest few for readers in flight."""
    builds = sorted((p for p in index_dir.glob("v-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    old = [p for p in builds if p.name not in keep]
    for p in old[: max(0, len(old) - keep_previous)]:
        shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob(f".{CURRENT}.*"):
        p.unlink(missing_ok=True)


def _hook(crash_hook, point: str) -> None:
    if crash_hook is not None:
        crash_hook(point)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
