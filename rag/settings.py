"""One validated settings object. Environment variables are read only by ``Settings.from_env``,
which the public API, the CLI and the UI call at their edges."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .documents.chunk import CHUNKER_VERSION
from .errors import ConfigError
from .model.build import DEFAULT_MODEL_ID

ENV_VARS = {
    "seeds_dir": "RAG_SEEDS_DIR",
    "index_dir": "RAG_INDEX_DIR",
    "model": "RAG_EMBEDDING_MODEL",
    "max_file_bytes": "RAG_MAX_FILE_BYTES",
    "trash_days": "RAG_TRASH_DAYS",
}
PATH_MAX = 4096  # bytes: Linux refuses longer paths


@dataclass(frozen=True)
class Settings:
    seeds_dir: Path = Path("seeds")
    index_dir: Path = Path("index")
    model: str = DEFAULT_MODEL_ID  # a sentence-transformers name or a local directory
    chunk_tokens: int = 256  # retrieval unit size, in the model's own tokens
    chunk_overlap_tokens: int = 48
    max_file_bytes: int = 10_000_000  # larger seeds are skipped with a reason, not read
    clean_boilerplate: bool = True
    # embed each chunk and sentence with its document title in front; off by default: the title
    # makes every sentence of an article look alike (recall@1 90 -> 95 of 114 questions without it)
    title_context: bool = False
    batch_size: int = 32
    extensions: tuple[str, ...] = (".txt", ".md")
    # a replaced or removed seed stays this many days in the index folder's trash (rag restore NAME)
    trash_days: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds_dir", _folder("seeds_dir", self.seeds_dir))
        object.__setattr__(self, "index_dir", _folder("index_dir", self.index_dir))
        if not isinstance(self.model, str) or not self.model.strip() or "\x00" in self.model:
            raise ConfigError(f"model must be a model name or a directory, got {self.model!r}")
        _require_int("chunk_tokens", self.chunk_tokens, 16, 8192)
        _require_int("chunk_overlap_tokens", self.chunk_overlap_tokens, 0, self.chunk_tokens - 1)
        _require_int("max_file_bytes", self.max_file_bytes, 1, 2**40)
        _require_int("batch_size", self.batch_size, 1, 4096)
        _require_int("trash_days", self.trash_days, 0, 36500)
        if not self.extensions or any(not e.startswith(".") for e in self.extensions):
            raise ConfigError(f"extensions must look like ('.txt', '.md'), got {self.extensions!r}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Defaults, then ``RAG_*`` environment variables, then explicit non-None overrides."""
        env = os.environ if environ is None else environ
        values: dict = {}
        for name, var in ENV_VARS.items():
            raw = env.get(var, "").strip()
            if raw:
                values[name] = _parse_env(name, var, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    def with_(self, **changes) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def chunker_settings(self) -> dict:
        """What the manifest records: a change here forces a full rebuild."""
        return {
            "chunker_version": CHUNKER_VERSION,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap_tokens": self.chunk_overlap_tokens,
            "clean_boilerplate": self.clean_boilerplate,
            "title_context": self.title_context,
        }

    def chunker_changes(self, built_with: dict) -> str:
        """'name: built -> now' for each chunking setting that differs from ``built_with`` (a manifest's
        record); '' when none does."""
        now = self.chunker_settings()
        keys = sorted(set(built_with) | set(now))
        return ", ".join(f"{k}: {built_with.get(k)!r} -> {now.get(k)!r}" for k in keys if built_with.get(k) != now.get(k))


def _require_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def _folder(name: str, value) -> Path:
    """``value`` as a Path, or a ConfigError when no file system could take it as a folder name."""
    if not isinstance(value, str | os.PathLike):
        raise ConfigError(f"{name} must be a folder path, not {type(value).__name__}")
    try:
        path = Path(value)
        raw = os.fsencode(path)
    except (TypeError, UnicodeEncodeError):
        raise ConfigError(f"{name} must be a folder path that can be written as a file name") from None
    if b"\x00" in raw:
        raise ConfigError(f"{name} contains a NUL character, which no file name can hold")
    if len(raw) > PATH_MAX:
        raise ConfigError(f"{name} is {len(raw):,} bytes long; paths end at {PATH_MAX:,}")
    return path


def _parse_env(name: str, var: str, raw: str):
    if name in ("max_file_bytes", "trash_days"):
        try:
            return int(raw)
        except ValueError:
            unit = "bytes" if name == "max_file_bytes" else "days"
            raise ConfigError(f"{var} must be a whole number of {unit}, got {raw!r}") from None
    return raw
