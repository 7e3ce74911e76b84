"""The index on disk: FAISS vectors, SQLite chunk metadata and a JSON manifest.

Layout of ``index_dir``::

    CURRENT            name of the live version (replaced atomically with os.replace)
    v-<time>-<rand>/   one complete, immutable build
        vectors.faiss  IndexIDMap2 over inner product (vectors are normalised), one per chunk
        sentences.faiss  the same, one vector per sentence (id = chunk id * 1024 + position)
                       (from ann.EXACT_MAX chunks on: vectors.faiss is an IVF-SQ8, beside float16
                       stores vectors.{f16,ids}.npy and sentences.{f16,ids}.npy; see rag/ann.py)
        chunks.sqlite  one row per chunk: id, source, start, end, title, text, sentence spans
        manifest.json  written last; lists every file's sha256, and its own
    .lock              held while a build runs (an flock: the kernel frees it if the build dies)
    .tmp-*/ .trash-*/  a build being written / an old build being deleted (swept by the next build)

A build never touches a live version: it writes a new one beside it and swaps
CURRENT, so readers see the old index or the new one, never a mix. Nothing is pickled.
A reader checks the manifest's own checksum, every data file's sha256 and the FAISS file layout
before any parser touches a byte, then cross-checks the three stores id by id."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import ann
from .ann import SENTENCE_VECTORS, VECTORS
from .checksum import sha256_file as sha256_path
from .errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from .types import Chunk

SCHEMA_VERSION = 3  # an approximate (IVF) index: the manifest's "index" says which, and its files
FLAT_SCHEMA_VERSION = 2  # an exact index, in the format written before the IVF existed
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
SENTENCE_STRIDE = 1024
CHUNKS_DB = "chunks.sqlite"
DATA_FILES = (VECTORS, SENTENCE_VECTORS, CHUNKS_DB)  # of an exact index; see data_files
REBUILD_HINT = "run `rag index --full` to rebuild it"
MAX_MANIFEST_BYTES = 1 << 30


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
    index: dict = field(default_factory=dict)  # ann.spec_to_manifest: empty for the exact kind
    # sha256 of the manifest's own content (every other field): a damaged or hand-edited manifest
    # is refused instead of steering the reader or the next incremental build. Empty only in
    # manifests written before it existed.
    checksum: str = ""

    @property
    def total_chunks(self) -> int:
        return sum(len(e.chunk_ids) for e in self.seeds.values())

    @property
    def spec(self) -> ann.IndexSpec:
        return ann.spec_from_manifest(self.index)

    def to_json(self) -> str:
        data = asdict(self)
        if not data["index"]:  # the exact kind's manifest is the schema 2 one, unchanged
            del data["index"]
        data["checksum"] = _content_digest(data)
        return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Manifest:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("it is not a JSON object")
        if data.get("schema_version") not in (FLAT_SCHEMA_VERSION, SCHEMA_VERSION):
            raise IndexMismatchError(
                f"the index uses schema version {data.get('schema_version')!r}, this program reads "
                f"version {SCHEMA_VERSION} (and {FLAT_SCHEMA_VERSION} for exact-search indexes); {REBUILD_HINT}"
            )
        if "checksum" in data and data["checksum"] != _content_digest(data):
            raise ValueError("its own checksum does not match its content")
        seeds = data.pop("seeds")
        if not isinstance(seeds, dict) or not all(isinstance(v, dict) for v in seeds.values()):
            raise ValueError("'seeds' is not a table of seed entries")
        manifest = cls(seeds={str(k): SeedEntry(**v) for k, v in seeds.items()}, **data)
        manifest.validate()
        return manifest

    def validate(self) -> None:
        """Every field has the type and range a build writes; raises ValueError naming the first that does not."""
        _expect(isinstance(self.model_id, str) and self.model_id, "model_id")
        _expect(isinstance(self.model_fingerprint, str), "model_fingerprint")
        _expect(_is_int(self.dim) and self.dim > 0, "dim")
        _expect(isinstance(self.chunker, dict), "chunker")
        _expect(_is_int(self.next_id) and self.next_id >= 0, "next_id")
        _expect(isinstance(self.built_at, str), "built_at")
        _expect(isinstance(self.library_versions, dict), "library_versions")
        _expect(isinstance(self.index, dict), "index")
        spec = self.spec  # ValueError when it is not a kind a build writes
        _expect((self.schema_version == FLAT_SCHEMA_VERSION) == (spec.kind == "flat"), "schema_version")
        _expect(
            isinstance(self.files, dict) and all(_is_sha256(self.files.get(n)) for n in data_files(spec.kind)),
            "files",
        )
        seen: set[int] = set()
        for source, entry in self.seeds.items():
            _expect(source and "\x00" not in source, "a seed name")
            _expect(_is_sha256(entry.sha256), f"the sha256 of {source!r}")
            _expect(isinstance(entry.title, str) and isinstance(entry.encoding, str), f"the title of {source!r}")
            _expect(_is_int(entry.chars) and entry.chars >= 0, f"the size of {source!r}")
            ids = entry.chunk_ids
            _expect(
                isinstance(ids, list) and all(_is_int(i) and 0 <= i < self.next_id for i in ids),
                f"the chunk ids of {source!r}",
            )
            _expect(seen.isdisjoint(ids) and len(set(ids)) == len(ids), f"the chunk ids of {source!r} (repeated)")
            seen.update(ids)

    def chunk_sources(self) -> dict[int, str]:
        return {i: source for source, e in self.seeds.items() for i in e.chunk_ids}


def data_files(kind: str) -> tuple[str, ...]:
    """The data files (every file but the manifest) of a build whose vectors are of this kind."""
    return (*ann.vector_files(kind), CHUNKS_DB)


def _content_digest(data: dict) -> str:
    content = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=True).encode("ascii")).hexdigest()


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sha256(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _expect(ok, what: str) -> None:
    if not ok:
        raise ValueError(f"{what} is not valid")


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("faiss-cpu", "sentence-transformers", "transformers", "torch", "langchain-text-splitters"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out



# ----------------------------------------------------------------------------- reading


def current_version(index_dir: Path) -> Path | None:
    try:
        raw = (index_dir / CURRENT).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexCorruptError(f"cannot read {index_dir / CURRENT}: {exc}; {REBUILD_HINT}") from exc
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        name = ""
    if not _is_version_name(name) or not (index_dir / name).is_dir():
        shown = raw[:80].decode("utf-8", "backslashreplace")
        raise IndexCorruptError(
            f"{index_dir / CURRENT} is damaged or names a build that does not exist ({shown!r}); {REBUILD_HINT}"
        )
    return index_dir / name


def _is_version_name(name: str) -> bool:
    return (
        name.startswith("v-")
        and len(name) <= 64
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    )


def read_manifest(version_dir: Path) -> Manifest:
    path = version_dir / MANIFEST
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ValueError(f"it is {size:,} bytes, far more than a manifest")
        return Manifest.from_json(path.read_bytes().decode("utf-8"))
    except IndexMismatchError:
        raise
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"the index at {version_dir} has no {MANIFEST}; {REBUILD_HINT}") from exc
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise IndexCorruptError(f"the manifest {path} is damaged ({str(exc)[:200]}); {REBUILD_HINT}") from exc


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

    def __init__(self, version_dir: Path, manifest: Manifest, vectors: ann.LoadedVectors, db: sqlite3.Connection) -> None:
        self.version_dir = version_dir
        self.version = version_dir.name
        self.manifest = manifest
        self._vec = vectors  # of either kind; the exact kind is searched through the two indexes below
        self._vectors = vectors.index
        self._sentence_vectors = vectors.sentence_index  # None for the IVF kind
        self._exact = vectors.spec.kind == "flat"
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
        """Load one build, or raise IndexCorruptError / IndexMismatchError naming what is wrong.

        Nothing reaches FAISS or SQLite before its sha256 matches the (self-checked) manifest and,
        for FAISS, its layout matches what a build writes; then the three stores are cross-checked
        id by id, so every vector a search returns has its chunk, in the seed the manifest says."""
        manifest = read_manifest(version_dir)
        spec = manifest.spec
        try:
            for name in data_files(spec.kind):
                path = version_dir / name
                if not path.is_file():
                    raise IndexCorruptError(f"the index file {path} is missing; {REBUILD_HINT}")
                # A checksum before parsing: FAISS must never read a damaged file.
                if manifest.files.get(name) != sha256_path(path):
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
            candidates = manifest.index.get("candidates", ann.CANDIDATES)
            vectors = ann.LoadedVectors.read(version_dir, spec, manifest.dim, SENTENCE_STRIDE, candidates)
        except ann.LayoutError as exc:
            raise IndexCorruptError(
                f"the vector files in {version_dir} do not have the layout a build writes ({exc}); {REBUILD_HINT}"
            ) from exc
        except (RuntimeError, MemoryError, OSError, ValueError, EOFError) as exc:  # ValueError: a bad .npy header
            raise IndexCorruptError(f"cannot read the vectors in {version_dir}: {exc}; {REBUILD_HINT}") from exc
        db = None
        try:
            uri = f"file:{(version_dir / CHUNKS_DB).as_posix()}?mode=ro&immutable=1"
            db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            rows = db.execute("SELECT id, source, json_array_length(sentences) FROM chunks ORDER BY id").fetchall()
            _check_consistent(version_dir, manifest, vectors, rows)
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise IndexCorruptError(f"the chunk table {version_dir / CHUNKS_DB} is damaged: {exc}; {REBUILD_HINT}") from exc
        except BaseException:
            if db is not None:
                db.close()
            raise
        return cls(version_dir, manifest, vectors, db)

    @property
    def ntotal(self) -> int:
        return int(self._vectors.ntotal)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine) pairs, best first; FAISS's -1 "no result" slots are dropped. Exact
        below ann.EXACT_MAX chunks; above, the IVF's candidates re-scored exactly (float16)."""
        k = max(0, min(int(k), self.ntotal))
        if k == 0:
            return []
        with ann.one_search_thread():
            if not self._exact:
                return self._vec.search(query, k)
            scores, ids = self._vectors.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def search_sentences(self, query: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        """(chunk id, sentence position, cosine) for the ``k`` closest sentences, best first. Above
        ann.EXACT_MAX chunks: the closest among the sentences of the chunk search's candidates."""
        with ann.one_search_thread():
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
            return np.stack([index.reconstruct(i) for i in ids])
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

    def raw_vectors(self):
        return self._vectors

    def raw_sentence_vectors(self):
        """The exact sentence index (None above ann.EXACT_MAX chunks: there is none)."""
        return self._sentence_vectors

    def loaded_vectors(self) -> ann.LoadedVectors:
        return self._vec

    def close(self) -> None:
        with self._db_lock:
            self._db.close()


_COLUMNS = "id, source, text, start, end, title, sentences"


def _chunk(row) -> Chunk:
    spans = tuple((int(a), int(b)) for a, b in json.loads(row[6]))
    return Chunk(id=row[0], source=row[1], text=row[2], start=row[3], end=row[4], title=row[5], sentences=spans)


def sentence_ids(chunk: Chunk) -> list[int]:
    return [chunk.id * SENTENCE_STRIDE + j for j in range(len(chunk.sentences))]


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


def check_ivf_file(path: Path, dim: int, spec: ann.IndexSpec) -> None:
    """check_vector_file for the approximate kind (see ann.check_ivf_file)."""
    try:
        ann.check_ivf_file(path, dim, spec)
    except ann.LayoutError as exc:
        raise IndexCorruptError(
            f"the index file {path} does not have the layout of a {dim}-dimension {spec.describe()} index "
            f"({exc} differs; damaged, or written for another model or FAISS version); {REBUILD_HINT}"
        ) from exc


def _check_consistent(version_dir: Path, manifest: Manifest, vectors: ann.LoadedVectors, rows: list) -> None:
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


# ----------------------------------------------------------------------------- writing


def write_version(
    index_dir: Path,
    manifest: Manifest,
    vectors: ann.VectorSet,
    base_db: Path | None,
    remove_ids: list[int],
    add_chunks: list[Chunk],
    crash_hook=None,
) -> Path:
    """Write a complete new build beside the live one and make it live. Returns its folder.

    ``base_db`` is the previous build's chunk table, copied then edited, so unchanged
    chunks are never re-read or re-written one by one. ``vectors`` chooses the index kind for the
    new chunk count (ann.choose) and writes its files; the manifest records it."""
    index_dir.mkdir(parents=True, exist_ok=True)
    tmp = index_dir / f".tmp-{secrets.token_hex(6)}"
    tmp.mkdir()
    _hook(crash_hook, "tmp-created")
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
        spec = vectors.write(tmp)
        _hook(crash_hook, "vectors-written")
        names = data_files(spec.kind)
        files = {name: sha256_path(tmp / name) for name in names}
        schema = FLAT_SCHEMA_VERSION if spec.kind == "flat" else SCHEMA_VERSION
        final = Manifest(**{
            **asdict(manifest), "seeds": manifest.seeds, "files": files,
            "index": ann.spec_to_manifest(spec), "schema_version": schema,
        })
        _write_synced(tmp / MANIFEST, final.to_json())
        _hook(crash_hook, "manifest-written")
        for name in names:
            _fsync_file(tmp / name)
        _fsync_dir(tmp)
        _hook(crash_hook, "version-complete")
        version = index_dir / f"v-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        os.replace(tmp, version)
        _fsync_dir(index_dir)
        _hook(crash_hook, "version-renamed")
        pointer = index_dir / f".{CURRENT}.{secrets.token_hex(4)}"
        _write_synced(pointer, version.name + "\n")
        _hook(crash_hook, "pointer-written")
        previous = live_version_name(index_dir)
        os.replace(pointer, index_dir / CURRENT)  # the atomic switch
        _fsync_dir(index_dir)
        _hook(crash_hook, "current-switched")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # the build that was live until now stays, for readers that are opening it at this moment
    collect_garbage(index_dir, keep={version.name} | ({previous} if previous else set()))
    _hook(crash_hook, "garbage-collected")
    return version


def live_version_name(index_dir: Path) -> str | None:
    """The name CURRENT holds, or None when there is none or it cannot be read."""
    try:
        version = current_version(index_dir)
    except IndexCorruptError:
        return None
    return version.name if version else None


def collect_garbage(index_dir: Path, keep: set[str] | None) -> None:
    """Delete every build not in ``keep`` (older ones, and complete ones a killed rebuild never made
    live; none when ``keep`` is None), unfinished temp folders and stray CURRENT pointers.
    Runs under the build lock. A build is renamed away before it is deleted, so a deletion cut
    short leaves no half build under a build's name."""
    if keep is not None:
        for p in index_dir.glob("v-*"):
            if p.name not in keep and p.is_dir() and not p.is_symlink():
                trash = index_dir / f".trash-{secrets.token_hex(6)}"
                with contextlib.suppress(OSError):
                    os.rename(p, trash)
                    shutil.rmtree(trash, ignore_errors=True)
    for p in [*index_dir.glob(".tmp-*"), *index_dir.glob(".trash-*")]:
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
