"""The public API: ``build_index``, ``search``, ``answer``, ``get_embedder``, ``index_status``.

These functions are the library's edge: they read ``RAG_*`` environment variables (through
``Settings.from_env``) and keep one loaded model and one loaded index per process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from . import background, indexer, trash
from .errors import ConfigError, IndexCorruptError, IndexNotFoundError
from .model import registry
from .model.base import Embedder
from .query import compose, reference
from .query.decide import BACKGROUND_POOL, decide
from .query.retrieve import clamp_k, fit_to_model, rank, validate_question, without_lone_surrogates
from .query.token_match import embed_question
from .settings import Settings
from .store import IndexReader, check_compatible, current_version
from .types import Answer, Hit, IndexReport, IndexStatus, TrashedSeed

log = logging.getLogger("rag")

_readers: dict[Path, IndexReader] = {}
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
        if not isinstance(settings, Settings):
            raise ConfigError(f"settings must be a rag.Settings, not {type(settings).__name__}")
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
    separate_process: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Index the seeds folder: embed added and changed seeds, drop removed ones. With ``separate_process``
    the work runs in a low-priority child process, so that answers in this one keep their speed."""
    s = _settings(seeds_dir, index_dir, model, settings)
    indexer.check_seeds_dir(s)  # before the model loads: a typo should fail fast
    if separate_process:
        return background.build_index(s, full=full, wait=wait, on_progress=on_progress)
    return indexer.build_index(
        s, get_embedder(s.model), full=full, wait=wait, show_progress=show_progress, on_progress=on_progress
    )


def _reader(s: Settings, embedder: Embedder) -> IndexReader:
    """The live index, reloaded when a newer build has been swapped in; built if there is none."""
    key = s.index_dir.resolve()
    with _readers_lock:
        version = current_version(s.index_dir)
        if version is None:
            if not s.seeds_dir.is_dir():
                raise IndexNotFoundError(
                    f"no index in {s.index_dir} and no seeds folder {s.seeds_dir} to build one from"
                )
            log.warning("No index in %s yet: building it from %s", s.index_dir, s.seeds_dir)
            indexer.build_index(s, embedder)
            version = current_version(s.index_dir)
        cached = _readers.get(key)
        if cached is None or cached.version != version.name:
            try:
                reader = IndexReader.open_version(version)
            except IndexCorruptError:
                # a build may have been swapped in (and the old one collected) since we looked
                version = current_version(s.index_dir)
                reader = IndexReader.open_version(version)
            check_compatible(reader.manifest, embedder.model_id, embedder.fingerprint, embedder.dim, s.index_dir)
            changed = s.chunker_changes(reader.manifest.chunker)
            if changed:
                # still usable (same model), so answer from it, but say why answers may differ
                log.warning("The index at %s was built with other chunking settings (%s); run `rag index` to rebuild it "
                            "with the current ones.", s.index_dir, changed)
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


def search(question: str, k: int = 5, index_dir=None, *, seeds_dir=None, model=None, settings=None) -> list[Hit]:
    """The ``k`` passages closest to the question, best first."""
    text, embedder, reader, k = _prepare(question, k, seeds_dir, index_dir, model, settings)
    query_vec, token_scorer = embed_question(embedder, text)
    return [scored.to_hit() for scored in rank(reader, text, query_vec, k, token_scorer)]


def answer(question: str, k: int = 5, index_dir=None, seeds_dir=None, *, model=None, settings=None) -> Answer:
    """A short answer quoting the passages that support it, or ``found=False`` when none does."""
    text, embedder, reader, k = _prepare(question, k, seeds_dir, index_dir, model, settings)
    question = without_lone_surrogates(question)  # the question as asked, but always printable
    query_vec, token_scorer = embed_question(embedder, text)
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
    from .store import read_manifest

    version = current_version(s.index_dir)
    if version is None:
        return IndexStatus(exists=False, stale=True, stale_detail="no index has been built yet")
    m = read_manifest(version)
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
MAX_NAME_BYTES = 255  # what Linux file systems take for one file name


def add_document(
    filename: str,
    content: bytes,
    seeds_dir=None,
    index_dir=None,
    *,
    overwrite: bool = False,
    max_bytes: int = MAX_UPLOAD_BYTES,
    settings: Settings | None = None,
    separate_process: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[str, IndexReport]:
    """Save an uploaded ``.txt``/``.md`` document into the seeds folder and index it.

    Checks name, type, size, encoding and what it would cost to index before anything is written; a
    document it replaces goes to the trash (``restore_document``). With ``separate_process`` the
    indexing runs in a low-priority child process (``rag.background``). Returns (source, report)."""
    import os
    import re

    from .documents.text import parse_seed_bytes
    from .errors import InvalidDocumentError

    s = _settings(seeds_dir, index_dir, None, settings)
    name = os.path.basename(str(filename or "").replace("\\", "/")).strip()
    name = re.sub(r"[\x00-\x1f/]", "", name).lstrip(".-") or ""
    shown = without_lone_surrogates(name or str(filename))
    if name != without_lone_surrogates(name) or len(name.encode("utf-8", "replace")) > MAX_NAME_BYTES:
        raise InvalidDocumentError(f"“{shown[:80]}” cannot be a file name here; rename the file")
    if not name.lower().endswith(s.extensions):
        raise InvalidDocumentError(f"only {' and '.join(s.extensions)} files can be added, not “{shown[:80]}”")
    if not isinstance(content, (bytes, bytearray)):
        raise InvalidDocumentError("the document content must be bytes")
    if len(content) > max_bytes:
        raise InvalidDocumentError(f"{name} is {len(content):,} bytes; the limit is {max_bytes:,}")
    doc, reason = parse_seed_bytes(name, bytes(content))
    if doc is None:
        raise InvalidDocumentError(f"{name} cannot be indexed: {reason}")
    target = s.seeds_dir / name
    if target.exists() and not overwrite:
        raise InvalidDocumentError(f"a document named {name} already exists in the seeds folder")
    try:
        s.seeds_dir.mkdir(parents=True, exist_ok=True)  # an upload may start the collection
    except OSError as exc:
        raise ConfigError(f"the seeds folder {s.seeds_dir} cannot be made: {exc.strerror or exc}") from None
    if separate_process:
        return background.add_document(name, bytes(content), s, overwrite=overwrite, on_progress=on_progress)
    indexer.check_document_cost(doc, len(content), s, get_embedder(s.model))
    tmp = s.seeds_dir / f".upload-{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        tmp.write_bytes(bytes(content))
        if target.exists():
            trash.move_to_trash(s, name, copy=True)  # the seed stays in place until the new one replaces it
        os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(f"{name} cannot be saved in the seeds folder: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return name, build_index(settings=s, on_progress=on_progress)


def remove_document(name: str, seeds_dir=None, index_dir=None, *, settings: Settings | None = None
                    ) -> tuple[TrashedSeed, IndexReport]:
    """Move seed ``name`` to the trash and update the index; ``restore_document`` brings it back."""
    s = _settings(seeds_dir, index_dir, None, settings)
    entry = trash.move_to_trash(s, name)
    return entry, build_index(settings=s)


def restore_document(name: str, seeds_dir=None, index_dir=None, *, settings: Settings | None = None
                     ) -> tuple[TrashedSeed, IndexReport]:
    """Put the newest trashed copy of seed ``name`` back and update the index (a seed of that name in its
    place goes to the trash)."""
    s = _settings(seeds_dir, index_dir, None, settings)
    entry = trash.take_from_trash(s, name)
    return entry, build_index(settings=s)


def list_trash(index_dir=None, *, settings: Settings | None = None) -> list[TrashedSeed]:
    """The replaced and removed seeds kept in the index folder's trash, newest first."""
    return trash.list_trash(_settings(None, index_dir, None, settings))
