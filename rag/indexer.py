"""Build or update the index from the seeds folder: only added and changed seeds are embedded."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from filelock import FileLock, Timeout

from .documents.chunk import MIN_CHUNK_TOKENS, chunk_document
from .documents.cost import check_cost
from .documents.discover import discover, load_seed, parse_seed
from .documents.formats import cleans_boilerplate
from .errors import UNUSABLE_INDEX, ConfigError, EmptyCorpusError, IndexBusyError
from .model.base import TOKEN_LAYER, Embedder
from .model.passages import embedded_batches, stores_token_states, token_items
from .query.lexical import tokens
from .settings import Settings
from .store import Manifest, SeedEntry, library_versions, sentence_ids
from .store.backend import Store, StoreReader, open_store
from .store.writer import TokenStates
from .types import Chunk, Document, IndexReport, SeedChange

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Plan:
    full: bool
    reason: str
    added: list[Document]
    changed: list[Document]
    removed: list[str]
    unchanged: list[str]


def build_index(
    settings: Settings,
    embedder: Embedder,
    *,
    full: bool = False,
    wait: bool = True,
    show_progress: bool = False,
    crash_hook=None,
    ray_address: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Bring the store (``settings.store``, else ``settings.index_dir``) up to date with ``settings.seeds_dir``.
    ``ray_address``: embed on that Ray cluster (rag/model/ray_embed.py) instead of in this process;
    ``on_progress(done, total)`` follows the texts embedded."""
    started = time.perf_counter()
    _check_chunk_size(settings, embedder)
    check_seeds_dir(settings)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    store.lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(store.lock_path))
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if not wait:
            raise IndexBusyError(
                f"another rebuild of {store.where} is running; try again when it ends "
                "(without --no-wait, `rag index` waits for it)"
            ) from None
        log.warning("Another rebuild of %s is running: waiting for it to end.", store.where)
        lock.acquire(timeout=-1)
    old_reader = None
    try:
        _hook(crash_hook, "locked")
        old_reader, old_manifest, reason = _previous(store, settings, embedder, full)
        known = {src: e.sha256 for src, e in old_manifest.seeds.items()} if old_manifest and not full and not reason else {}
        corpus = _read_corpus(settings, known)
        skipped = corpus.skipped
        if not corpus.documents and not corpus.unchanged:
            detail = f" ({len(skipped)} file(s) skipped)" if skipped else ""
            raise EmptyCorpusError(
                f"no readable document ({', '.join(settings.extensions)}) in {settings.seeds_dir}{detail}; "
                "nothing was indexed"
            )
        plan = _plan(corpus, old_manifest, full, reason)
        files = [SeedChange(s, "skipped", reason=r) for s, r in skipped]
        if old_manifest is not None and not plan.full and not plan.added and not plan.changed and not plan.removed:
            store.collect_garbage()  # what a killed rebuild left behind
            files += [SeedChange(s, "unchanged", len(old_manifest.seeds[s].chunk_ids)) for s in plan.unchanged]
            return IndexReport(
                added=0, changed=0, removed=0, unchanged=len(plan.unchanged), chunks_embedded=0,
                total_chunks=old_manifest.total_chunks, skipped=skipped,
                seconds=time.perf_counter() - started, files=files,
                index_path=store.location(old_reader) if old_reader else "", by_format=_by_format(old_manifest),
            )
        if plan.full and plan.reason:
            log.warning("Full rebuild: %s", plan.reason)
        next_id = old_manifest.next_id if old_manifest and not plan.full else 0
        new_chunks: list[Chunk] = []
        per_doc: dict[str, list[Chunk]] = {}
        for doc in plan.added + plan.changed:
            chunks = _chunks(doc, settings, embedder, first_id=next_id)
            next_id += len(chunks)
            per_doc[doc.source] = chunks
            new_chunks += chunks
        unchanged_count = sum(len(old_manifest.seeds[s].chunk_ids) for s in plan.unchanged) if old_manifest else 0
        incremental = not plan.full and old_reader is not None
        identity = {"model_id": embedder.model_id, "fingerprint": embedder.fingerprint,
                    "chunker": settings.chunker_settings()}
        writer = store.begin_build(full=not incremental, base=old_reader, dim=embedder.dim, identity=identity,
                                   n_expected=unchanged_count + len(new_chunks), crash_hook=crash_hook)
        try:
            keep_states = (writer.stores_token_states and not ray_address
                           and stores_token_states(settings, embedder, unchanged_count + len(new_chunks)))
            done = writer.resume(new_chunks)
            todo = [c for c in new_chunks if c.id not in done]
            if done:
                log.warning("Resuming an interrupted build: %d of %d chunks were already written.", len(done), len(new_chunks))
            new_states: list[np.ndarray] = []
            for batch, vectors, sentence_vectors, states in embedded_batches(
                todo, settings, embedder, writer.batch_chunks, show_progress, keep_states, ray_address, on_progress
            ):
                ids = np.asarray([i for c in batch for i in sentence_ids(c)], dtype=np.int64)
                lexical = [" ".join(tokens(f"{c.title}\n{c.text}")) for c in batch] if writer.wants_lexical_text else None
                writer.add(batch, vectors, ids, sentence_vectors, lexical)
                new_states += states
            _hook(crash_hook, "embedded")
            seeds = {s: e for s, e in old_manifest.seeds.items() if s in plan.unchanged} if incremental else {}
            gone = list(plan.removed) + [d.source for d in plan.changed]
            remove_ids = [i for s in gone for i in old_manifest.seeds[s].chunk_ids] if incremental else []
            for doc in plan.added + plan.changed:
                seeds[doc.source] = SeedEntry(
                    sha256=doc.sha256,
                    chunk_ids=[c.id for c in per_doc[doc.source]],
                    title=doc.title,
                    encoding=doc.encoding,
                    chars=len(doc.text),
                    kind=doc.kind,
                )
            manifest = Manifest(
                model_id=embedder.model_id,
                model_fingerprint=embedder.fingerprint,
                dim=embedder.dim,
                chunker=settings.chunker_settings(),
                seeds=dict(sorted(seeds.items())),
                next_id=next_id,
                built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                library_versions=library_versions(),
            )
            token_states = None
            if keep_states:
                kept = sorted(i for s in plan.unchanged for i in seeds[s].chunk_ids) if incremental else []
                token_states = TokenStates(TOKEN_LAYER, token_items(old_reader, kept, new_chunks, new_states, embedder))
            version = writer.commit(manifest, remove_ids, token_states, remove_sources=gone if incremental else [],
                                   add_documents=plan.added + plan.changed)
        finally:
            writer.close()
        files += [SeedChange(d.source, "added", len(per_doc[d.source])) for d in plan.added]
        files += [SeedChange(d.source, "changed", len(per_doc[d.source])) for d in plan.changed]
        # a seed that was indexed and now cannot be read is one line: removed, and why
        why = dict(skipped)
        files = [f for f in files if f.source not in plan.removed]
        files += [SeedChange(s, "removed", reason=why.get(s, "")) for s in plan.removed]
        files += [SeedChange(s, "unchanged", len(seeds[s].chunk_ids)) for s in plan.unchanged if s in seeds]
        return IndexReport(
            added=len(plan.added),
            changed=len(plan.changed),
            removed=len(plan.removed),
            unchanged=len(plan.unchanged),
            chunks_embedded=len(todo),
            total_chunks=manifest.total_chunks,
            skipped=skipped,
            seconds=time.perf_counter() - started,
            full_rebuild=plan.full,
            rebuild_reason=plan.reason,
            files=sorted(files, key=lambda f: f.source),
            index_path=version,
            by_format=_by_format(manifest),
        )
    finally:
        if old_reader is not None:
            old_reader.close()
        lock.release()


def _hook(crash_hook, point: str) -> None:
    if crash_hook is not None:
        crash_hook(point)


def check_seeds_dir(settings: Settings) -> None:
    if not settings.seeds_dir.is_dir():
        raise EmptyCorpusError(f"the seeds folder {settings.seeds_dir} does not exist")


def _check_chunk_size(settings: Settings, embedder: Embedder) -> None:
    limit = embedder.content_tokens - MIN_CHUNK_TOKENS  # a heading may join a full chunk
    if settings.chunk_tokens > limit:
        raise ConfigError(
            f"chunk_tokens is {settings.chunk_tokens} but the model reads at most {limit} tokens of text; "
            "choose a smaller size"
        )


@dataclass(frozen=True)
class Corpus:
    documents: list[Document]  # read: every seed for a full build, else the new and changed ones
    unchanged: list[str]  # seeds whose digest the previous build holds: not parsed again
    skipped: list[tuple[str, str]]  # (source, reason), sorted


def _read_corpus(settings: Settings, known: dict[str, str]) -> Corpus:
    """Read the seeds; one whose bytes (and link) have the digest ``known`` records is not parsed again."""
    seeds, skipped = discover(settings.seeds_dir, settings.extensions)
    documents, unchanged = [], []
    for seed in seeds:
        loaded, reason = load_seed(seed, settings.max_file_bytes)
        if loaded is not None and known.get(seed.source) == loaded.sha256:
            unchanged.append(seed.source)
            continue
        doc, reason = parse_seed(seed.source, loaded) if loaded is not None else (None, reason)
        if doc is None:
            skipped.append((seed.source, reason))
        else:
            documents.append(doc)
    for source, reason in skipped:
        log.warning("Skipped %s: %s", source, reason)
    return Corpus(documents, unchanged, sorted(skipped))


def _by_format(manifest: Manifest) -> dict[str, int]:
    counts = Counter(e.kind for e in manifest.seeds.values())
    return dict(sorted(counts.items()))


def _previous(
    store: Store, settings: Settings, embedder: Embedder, full: bool = False
) -> tuple[StoreReader | None, Manifest | None, str]:
    """The live build, if it can be updated in place; else why a full rebuild is needed.

    The build is checked (checksums, layout, consistency) before its manifest is believed: a
    damaged manifest must not pass for a model change, nor steer an incremental build."""
    try:
        manifest = store.live_manifest()
        if manifest is None:
            return None, None, ""
        reader = None if full else store.open_reader()
    except UNUSABLE_INDEX as exc:
        return None, None, f"the existing index cannot be reused ({exc})"
    old_model = (manifest.model_id, manifest.model_fingerprint, manifest.dim)
    new_model = (embedder.model_id, embedder.fingerprint, embedder.dim)
    why = ""
    if old_model != new_model:
        why = f"the model changed from {manifest.model_id} to {embedder.model_id}"
        if manifest.model_id == embedder.model_id:
            why += f" (weights {old_model[1]} to {new_model[1]}, {old_model[2]} to {new_model[2]} dimensions)"
    elif changes := settings.chunker_changes(manifest.chunker):
        why = f"the chunker settings changed ({changes})"
    if why:
        if reader is not None:
            reader.close()
        return None, None, why
    if full:
        return None, manifest, ""  # nothing of it is reused
    return reader, manifest, ""


def _plan(corpus: Corpus, old: Manifest | None, full: bool, reason: str) -> Plan:
    if old is None or full:
        why = reason or ("a full rebuild was asked for" if full and old is not None else "")
        return Plan(True, why, corpus.documents, [], [], [])
    read = {d.source: d for d in corpus.documents}
    added = [d for s, d in read.items() if s not in old.seeds]
    changed = [d for s, d in read.items() if s in old.seeds]  # read again: its digest differs
    present = set(read) | set(corpus.unchanged)
    removed = [s for s in old.seeds if s not in present]
    return Plan(False, "", added, changed, removed, list(corpus.unchanged))


def _chunks(doc: Document, settings: Settings, embedder: Embedder, first_id: int) -> list[Chunk]:
    return chunk_document(
        doc,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
        count_tokens=embedder.count_tokens,
        first_id=first_id,
        clean=settings.clean_boilerplate and cleans_boilerplate(doc.kind),
    )


def check_document_cost(doc: Document, size: int, settings: Settings, embedder: Embedder) -> int:
    """Refuse an added document that would cost the model more per MB than ordinary text does
    (``documents.cost``); returns its number of passages."""
    _check_chunk_size(settings, embedder)
    chunks = _chunks(doc, settings, embedder, first_id=0)
    check_cost(doc.source, size, chunks)
    return len(chunks)

