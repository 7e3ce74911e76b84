"""The public API: ``build_index``, ``search``, ``answer``, ``get_embedder``, ``index_status``.

These functions are the library's edge: they read ``RAG_*`` environment variables (through
``Settings.from_env``) and keep one loaded model and one loaded index per process."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from . import indexer
from .errors import IndexNotFoundError
from .model import registry
from .model.base import TOKEN_LAYER, Embedder
from .query import compose, reference
from .query.decide import BACKGROUND_POOL, decide
from .query.retrieve import clamp_k, fit_to_model, rank, validate_question
from .query.token_match import embed_question
from .settings import Settings
from .store import check_compatible
from .store.backend import StoreReader, open_store
from .types import Answer, Hit, IndexReport, IndexStatus

log = logging.getLogger("rag")

_readers: dict[object, StoreReader] = {}  # by store (Store.cache_key): the index folder, or the Milvus index
_readers_lock = threading.Lock()
_fake_embedders: dict[str, Embedder] = {}


def get_embedder(model: str | None = None) -> Embedder:
    """The embedder for ``model`` (default: the setting / ``RAG_EMBEDDING_MODEL``), loaded once."""
    settings = Settings.from_env(model=model)
    if settings.model in _fake_embedders:
        return _fake_embedders[settings.model]
    return registry.get_embedder(settings.model)


def register_embedder(embedder: Embedder) -> None:
    """Make ``embedder`` the one used for its ``model_id`` (tests use it for the fake)."""
    _fake_embedders[embedder.model_id] = embedder


def _settings(seeds_dir=None, index_dir=None, model=None, settings: Settings | None = None) -> Settings:
    if settings is not None:
        return settings.with_(seeds_dir=seeds_dir, index_dir=index_dir, model=model)
    return Settings.from_env(seeds_dir=seeds_dir, index_dir=index_dir, model=model)


def build_index(
    seeds_dir=None,
    index_dir=None,
    full: bool = False,
    *,
    model: str | None = None,
    wait: bool = True,
    show_progress: bool = False,
    settings: Settings | None = None,
    ray_address: str | None = None,
) -> IndexReport:
    """Index the seeds folder: embed added and changed seeds, drop removed ones. ``ray_address``:
    embed on that Ray cluster (the optional ``ray`` extra)."""
    s = _settings(seeds_dir, index_dir, model, settings)
    indexer.check_seeds_dir(s)  # before the model loads: a typo should fail fast
    report = indexer.build_index(s, get_embedder(s.model), full=full, wait=wait, show_progress=show_progress,
                                 ray_address=ray_address)
    return report


def _reader(s: Settings, embedder: Embedder) -> StoreReader:
    """The live index, reloaded when a newer build has been swapped in; built if there is none."""
    store = open_store(s)
    key = store.cache_key
    with _readers_lock:
        version = store.live_version()
        if version is None:
            if not s.seeds_dir.is_dir():
                raise IndexNotFoundError(
                    f"no index in {store.where} and no seeds folder {s.seeds_dir} to build one from"
                )
            log.warning("No index in %s yet: building it from %s", store.where, s.seeds_dir)
            indexer.build_index(s, embedder)
            version = store.live_version()
        cached = _readers.get(key)
        if cached is None or cached.version != version:
            # a build may be swapped in (and the old one collected) while this one opens: the store retries
            reader = store.open_reader()
            check_compatible(reader.manifest, embedder.model_id, embedder.fingerprint, embedder.dim, store.where)
            changed = s.chunker_changes(reader.manifest.chunker)
            if changed:
                # still usable (same model), so answer from it, but say why answers may differ
                log.warning("The index at %s was built with other chunking settings (%s); run `rag index` to rebuild it "
                            "with the current ones.", store.where, changed)
            _readers[key] = reader
        return _readers[key]


def _prepare(question, k, seeds_dir, index_dir, model, settings):
    """Validate the question (before any model loads), then load the model and the live index."""
    s = _settings(seeds_dir, index_dir, model, settings)
    text = validate_question(question)
    embedder = get_embedder(s.model)
    text = fit_to_model(text, embedder)
    reader = _reader(s, embedder)
    return text, embedder, reader, clamp_k(k, reader.ntotal)


def _stored_states(reader: StoreReader):
    """The build's stored word-piece states, when they are of the layer the token match compares."""
    return reader.token_states if reader.token_layer == TOKEN_LAYER else None


def search(question: str, k: int = 5, index_dir=None, *, seeds_dir=None, model=None, settings=None) -> list[Hit]:
    """The ``k`` passages closest to the question, best first."""
    text, embedder, reader, k = _prepare(question, k, seeds_dir, index_dir, model, settings)
    query_vec, token_scorer = embed_question(embedder, text, _stored_states(reader))
    return [scored.to_hit() for scored in rank(reader, text, query_vec, k, token_scorer)]


def answer(question: str, k: int = 5, index_dir=None, seeds_dir=None, *, model=None, settings=None) -> Answer:
    """A short answer quoting the passages that support it, or ``found=False`` when none does."""
    text, embedder, reader, k = _prepare(question, k, seeds_dir, index_dir, model, settings)
    query_vec, token_scorer = embed_question(embedder, text, _stored_states(reader))
    ranked = rank(reader, text, query_vec, max(k, BACKGROUND_POOL), token_scorer)
    # the answer is drafted first so that the decision can check what it would quote
    draft = compose.compose(question, ranked[:k], found=True, confidence=1.0, reason="")
    quotes = [c.quote for c in draft.citations]
    found, confidence, reason = decide(text, ranked, reference.closest(embedder, query_vec), quotes)
    if not found:
        return compose.compose(question, ranked[:k], found=False, confidence=confidence, reason=reason)
    return replace(draft, confidence=confidence, reason=reason if draft.found else draft.reason)


def index_status(index_dir=None, seeds_dir=None, *, settings=None) -> IndexStatus:
    """What the index holds, and whether the seeds on disk have changed since it was built."""
    s = _settings(seeds_dir, index_dir, None, settings)
    from .documents.discover import discover, read_seed

    m = open_store(s).live_manifest()
    if m is None:
        return IndexStatus(exists=False, stale=True, stale_detail="no index has been built yet")
    on_disk = {}
    if s.seeds_dir.is_dir():
        seeds, _ = discover(s.seeds_dir, s.extensions)
        # what an index run would read: skipped files (empty, binary, too large) do not count
        docs = (read_seed(f, s.max_file_bytes)[0] for f in seeds)
        on_disk = {d.source: d.sha256 for d in docs if d is not None}
    indexed = {src: e.sha256 for src, e in m.seeds.items()}
    added = [x for x in on_disk if x not in indexed]
    changed = [x for x in on_disk if x in indexed and on_disk[x] != indexed[x]]
    removed = [x for x in indexed if x not in on_disk]
    detail = ", ".join(
        f"{n} {label}" for n, label in ((len(added), "new"), (len(changed), "changed"), (len(removed), "removed")) if n
    )
    settings_changed = s.chunker_changes(m.chunker)
    if settings_changed:
        detail = ", ".join(filter(None, [detail, f"chunking settings changed ({settings_changed})"]))
    return IndexStatus(
        exists=True,
        documents=len(m.seeds),
        chunks=m.total_chunks,
        model_id=m.model_id,
        built_at=m.built_at,
        stale=bool(detail),
        stale_detail=detail,
    )


MAX_UPLOAD_BYTES = 2_000_000


def add_document(
    filename: str,
    content: bytes,
    seeds_dir=None,
    index_dir=None,
    *,
    overwrite: bool = False,
    max_bytes: int = MAX_UPLOAD_BYTES,
    settings: Settings | None = None,
) -> tuple[str, IndexReport]:
    """Save an uploaded ``.txt``/``.md`` document into the seeds folder and index it.

    Checks type, size and encoding before anything is written; returns (source, report)."""
    import os
    import re

    from .documents.text import parse_seed_bytes
    from .errors import InvalidDocumentError

    s = _settings(seeds_dir, index_dir, None, settings)
    name = os.path.basename(str(filename or "").replace("\\", "/")).strip()
    name = re.sub(r"[\x00-\x1f/]", "", name).lstrip(".-") or ""
    if not name.lower().endswith(s.extensions):
        raise InvalidDocumentError(f"only {' and '.join(s.extensions)} files can be added, not “{name or filename}”")
    if not isinstance(content, (bytes, bytearray)):
        raise InvalidDocumentError("the document content must be bytes")
    if len(content) > max_bytes:
        raise InvalidDocumentError(f"{name} is {len(content):,} bytes; the limit is {max_bytes:,}")
    doc, reason = parse_seed_bytes(name, bytes(content))
    if doc is None:
        raise InvalidDocumentError(f"{name} cannot be indexed: {reason}")
    s.seeds_dir.mkdir(parents=True, exist_ok=True)
    target = s.seeds_dir / name
    if target.exists() and not overwrite:
        raise InvalidDocumentError(f"a document named {name} already exists in the seeds folder")
    tmp = s.seeds_dir / f".upload-{os.getpid()}-{threading.get_ident()}.tmp"
    tmp.write_bytes(bytes(content))
    os.replace(tmp, target)
    report = build_index(settings=s)
    return name, report
