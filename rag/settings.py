"""One validated settings object. Environment variables are read only by ``Settings.from_env``,
which the public API, the CLI and the UI call at their edges."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from .documents.chunk import CHUNKER_VERSION
from .documents.formats import EXTENSIONS
from .errors import ConfigError
from .model.build import DEFAULT_MODEL_ID

ENV_VARS = {
    "seeds_dir": "RAG_SEEDS_DIR",
    "index_dir": "RAG_INDEX_DIR",
    "model": "RAG_EMBEDDING_MODEL",
    "max_file_bytes": "RAG_MAX_FILE_BYTES",
    "store": "RAG_STORE",
    "store_token": "RAG_STORE_TOKEN",
    "store_collection": "RAG_STORE_COLLECTION",
    "llm_url": "RAG_LLM_URL",
    "llm_model": "RAG_LLM_MODEL",
    "llm_api_key": "RAG_LLM_API_KEY",
    "llm_timeout": "RAG_LLM_TIMEOUT",
    "trash_days": "RAG_TRASH_DAYS",
}
MAX_LLM_TIMEOUT = 3600.0
# Milvus Lite's own limits on its database file name
_LITE_NAME = re.compile(r"^[A-Za-z0-9.\-_]{1,36}$")
_COLLECTION = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
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
    # a build stores the passages' word-piece states (for the token match) up to this many chunks, about
    # 180 KB of disk a chunk; above it the 20 best candidates' states are computed when a question needs them
    token_states_max_chunks: int = 2000
    extensions: tuple[str, ...] = EXTENSIONS  # the files read (a file's kind is then told from its content)
    # where the vectors live: "" for the FAISS + SQLite store in index_dir (the default); a Milvus
    # server or cluster as "http://host:19530"; a Milvus Lite file as "path/to/name.db"
    store: str = ""
    store_token: str = field(default="", repr=False)  # "user:password" or an API key; never shown
    store_collection: str = "rag"  # the name every Milvus collection of this index starts with
    # The user's own language model, which writes answers from the passages (rag.query.generate): an
    # OpenAI-compatible base URL such as http://127.0.0.1:11434/v1 (Ollama); "" quotes the passages only.
    llm_url: str = ""  # without a user name or password: those are refused (the HTTP library logs URLs)
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)  # a secret: never in repr, messages, logs or the UI
    llm_timeout: float = 60.0  # seconds for the whole reply; past it the quoted answer is shown
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
        _require_int("token_states_max_chunks", self.token_states_max_chunks, 0, 10**9)
        _check_store(self.store, self.store_collection)
        if not isinstance(self.store_token, str):
            raise ConfigError("store_token must be text")
        _require_int("trash_days", self.trash_days, 0, 36500)
        if not self.extensions or any(not e.startswith(".") for e in self.extensions):
            raise ConfigError(f"extensions must look like ('.txt', '.md'), got {self.extensions!r}")
        self._check_llm()

    def _check_llm(self) -> None:
        if not isinstance(self.llm_api_key, str):
            raise ConfigError("the language model's API key must be text")
        timeout = self.llm_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
            math.isfinite(timeout) and 0 < timeout <= MAX_LLM_TIMEOUT
        ):
            raise ConfigError(f"llm_timeout must be a number of seconds above 0 and at most {MAX_LLM_TIMEOUT:g}, "
                              f"got {timeout!r}")
        if not isinstance(self.llm_url, str) or not isinstance(self.llm_model, str):
            raise ConfigError("the language model's URL and name must be text")
        if not self.llm_url:
            return
        parts = urlsplit(self.llm_url)
        # the message shows the scheme and host only: a URL may carry a user name and password
        shown = f"{parts.scheme}://{parts.hostname}" if parts.hostname else "the URL given"
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in self.llm_url):
            raise ConfigError(f"the language model URL must be an http(s) address such as "
                              f"http://127.0.0.1:11434/v1, not {shown}")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ConfigError(f"the language model URL at {shown} has an invalid port") from None
        if parts.username is not None or parts.password is not None:
            # the HTTP library would log them with every request, and send them instead of the key
            raise ConfigError(f"the language model URL must not carry a user name or password ({shown}); "
                              "put the key in RAG_LLM_API_KEY instead")
        if not self.llm_model.strip():
            raise ConfigError(f"the language model URL is set ({shown}) but not the model to ask: set "
                              "RAG_LLM_MODEL or --llm-model (e.g. the name `ollama list` shows)")

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_url)

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


def _check_store(store, collection) -> None:
    if not isinstance(store, str):
        raise ConfigError(f"store must be a Milvus URL or a Milvus Lite .db path, got {type(store).__name__}")
    if store and not store.startswith(("http://", "https://")):
        name = Path(store).name
        if not name.endswith(".db"):
            raise ConfigError(
                f"store must be http://host:port (a Milvus server) or a path ending in .db (Milvus Lite), got {store!r}"
            )
        if not _LITE_NAME.match(name):
            raise ConfigError(
                f"a Milvus Lite file name must be at most 36 letters, digits, '.', '-' or '_', got {name!r}"
            )
    if not isinstance(collection, str) or not _COLLECTION.match(collection):
        raise ConfigError(
            f"store_collection must be a letter then up to 31 letters, digits or '_', got {collection!r}"
        )


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
    if name == "llm_timeout":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{var} must be a number of seconds, got {raw!r}") from None
    if name in ("max_file_bytes", "trash_days"):
        try:
            return int(raw)
        except ValueError:
            unit = "bytes" if name == "max_file_bytes" else "days"
            raise ConfigError(f"{var} must be a whole number of {unit}, got {raw!r}") from None
    return raw
