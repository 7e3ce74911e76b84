"""The manifest of a build (what it holds, with which model, chunker and files, each with its
sha256, and its own checksum) and finding the live build of an index folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import REBUILD_HINT, IndexCorruptError, IndexMismatchError
from . import kinds, tokens
from .vectors import SENTENCE_VECTORS, VECTORS, vector_files

SCHEMA_VERSION = 3  # an approximate (IVF) index: the manifest's "index" says which, and its files
FLAT_SCHEMA_VERSION = 2  # an exact index, in the format written before the IVF existed
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
SENTENCE_STRIDE = 1024
CHUNKS_DB = "chunks.sqlite"
DATA_FILES = (VECTORS, SENTENCE_VECTORS, CHUNKS_DB)  # of an exact index; see data_files
MAX_MANIFEST_BYTES = 1 << 30


@dataclass(frozen=True)
class SeedEntry:
    sha256: str
    chunk_ids: list[int]
    title: str = ""
    encoding: str = "utf-8"
    chars: int = 0
    kind: str = "text"  # the reader that read it (rag/documents/formats.py)


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
    index: dict = field(default_factory=dict)  # kinds.spec_to_manifest: empty for the exact kind
    # the passages' stored word-piece states (rag/store/tokens.py): {"layer", "dim", "rows"}, or empty
    # when the build holds none (the token match then computes them when asked)
    token_states: dict = field(default_factory=dict)
    # sha256 of the manifest's own content (every other field): a damaged or hand-edited manifest
    # is refused instead of steering the reader or the next incremental build. Empty only in
    # manifests written before it existed.
    checksum: str = ""

    @property
    def total_chunks(self) -> int:
        return sum(len(e.chunk_ids) for e in self.seeds.values())

    @property
    def spec(self) -> kinds.IndexSpec:
        return kinds.spec_from_manifest(self.index)

    def to_json(self) -> str:
        data = asdict(self)
        if not data["index"]:  # the exact kind's manifest is the schema 2 one, unchanged
            del data["index"]
        if not data["token_states"]:  # a build without stored states writes the manifest it always wrote
            del data["token_states"]
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
        states = self.token_states
        _expect(
            isinstance(states, dict) and (not states or (
                set(states) == {"layer", "dim", "rows"} and all(_is_int(v) and v >= 0 for v in states.values())
            )),
            "token_states",
        )
        _expect(
            isinstance(self.files, dict) and all(_is_sha256(self.files.get(n)) for n in self.data_files()),
            "files",
        )
        seen: set[int] = set()
        for source, entry in self.seeds.items():
            _expect(source and "\x00" not in source, "a seed name")
            _expect(_is_sha256(entry.sha256), f"the sha256 of {source!r}")
            _expect(isinstance(entry.title, str) and isinstance(entry.encoding, str), f"the title of {source!r}")
            _expect(isinstance(entry.kind, str) and entry.kind, f"the kind of {source!r}")
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

    def data_files(self) -> tuple[str, ...]:
        """Every file of this build but the manifest."""
        return data_files(self.spec.kind, token_states=bool(self.token_states))


def data_files(kind: str, token_states: bool = False) -> tuple[str, ...]:
    """The data files (every file but the manifest) of a build whose vectors are of this kind."""
    return (*vector_files(kind), CHUNKS_DB, *(tokens.FILES if token_states else ()))


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
