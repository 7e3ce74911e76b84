"""Build or update the index from the seeds folder: only added and changed seeds are embedded."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from .documents.chunk import MIN_CHUNK_TOKENS, chunk_document, embedding_text
from .documents.cost import check_cost
from .documents.discover import discover, load_seed, parse_seed
from .documents.formats import cleans_boilerplate
from .errors import ConfigError, EmptyCorpusError, IndexBusyError, IndexCorruptError, IndexMismatchError
from .model.base import TOKEN_LAYER, Embedder
from .settings import Settings
from .store import (
    IndexReader,
    Manifest,
    SeedEntry,
    collect_garbage,
    current_version,
    library_versions,
    read_manifest,
    sentence_ids,
    write_version,
)
from .store.vectors import VectorSet
from .store.writer import TokenStates
from .types import Chunk, Document, IndexReport, SeedChange

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"
EMBED_GROUP = 256  # chunks per call to the model: large enough to batch well, small enough for progress


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
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Bring ``settings.index_dir`` up to date with ``settings.seeds_dir``; ``on_progress(done, total)``
    follows the texts embedded."""
    started = time.perf_counter()
    _check_chunk_size(settings, embedder)
    check_seeds_dir(settings)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.index_dir / LOCK_FILE))
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if not wait:
            raise IndexBusyError(
                f"another rebuild of {settings.index_dir} is running; try again when it ends "
                "(without --no-wait, `rag index` waits for it)"
            ) from None
        log.warning("Another rebuild of %s is running: waiting for it to end.", settings.index_dir)
        lock.acquire(timeout=-1)
    old_reader = None
    try:
        _hook(crash_hook, "locked")
        old_reader, old_manifest, reason = _previous(settings, embedder, full)
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
            collect_garbage(settings.index_dir, keep=None)  # what a killed rebuild left behind
            files += [SeedChange(s, "unchanged", len(old_manifest.seeds[s].chunk_ids)) for s in plan.unchanged]
            return IndexReport(
                added=0, changed=0, removed=0, unchanged=len(plan.unchanged), chunks_embedded=0,
                total_chunks=old_manifest.total_chunks, skipped=skipped,
                seconds=time.perf_counter() - started, files=files,
                index_path=str(old_reader.version_dir if old_reader else ""), by_format=_by_format(old_manifest),
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
        keep_states = _stores_token_states(settings, embedder, unchanged_count + len(new_chunks))
        vectors, sentence_vectors, new_states = _embed_chunks(
            new_chunks, settings, embedder, show_progress, keep_states, on_progress
        )
        _hook(crash_hook, "embedded")

        # the vector index's kind follows the new chunk count (rag/store/kinds.py): the previous build's
        # index is edited by id, or re-created from its stored vectors when the kind must change
        if plan.full or old_reader is None:
            vector_set = VectorSet(embedder.dim)
            remove_ids: list[int] = []
            base_db = None
            seeds: dict[str, SeedEntry] = {}
        else:
            vector_set = VectorSet(embedder.dim, old_reader.loaded_vectors())
            gone = list(plan.removed) + [d.source for d in plan.changed]
            remove_ids = [i for s in gone for i in old_manifest.seeds[s].chunk_ids]
            if remove_ids:
                old_sentences = [i for c in old_reader.chunks(remove_ids) for i in sentence_ids(c)]
                vector_set.remove(remove_ids, old_sentences)
            base_db = old_reader.version_dir / "chunks.sqlite"
            seeds = {s: e for s, e in old_manifest.seeds.items() if s in plan.unchanged}
        if new_chunks:
            ids = np.asarray([i for c in new_chunks for i in sentence_ids(c)], dtype=np.int64)
            vector_set.add([c.id for c in new_chunks], vectors, ids, sentence_vectors)
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
            kept = [] if plan.full or old_reader is None else sorted(i for s in plan.unchanged for i in seeds[s].chunk_ids)
            token_states = TokenStates(TOKEN_LAYER, _token_items(old_reader, kept, new_chunks, new_states, embedder))
        version = write_version(
            settings.index_dir, manifest, vector_set, base_db, remove_ids, new_chunks, crash_hook=crash_hook,
            token_states=token_states,
            remove_sources=[] if base_db is None else [*plan.removed, *(d.source for d in plan.changed)],
            add_documents=plan.added + plan.changed,
        )
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
            chunks_embedded=len(new_chunks),
            total_chunks=manifest.total_chunks,
            skipped=skipped,
            seconds=time.perf_counter() - started,
            full_rebuild=plan.full,
            rebuild_reason=plan.reason,
            files=sorted(files, key=lambda f: f.source),
            index_path=str(version),
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
    settings: Settings, embedder: Embedder, full: bool = False
) -> tuple[IndexReader | None, Manifest | None, str]:
    """The live build, if it can be updated in place; else why a full rebuild is needed.

    The build is checked (checksums, layout, consistency) before its manifest is believed: a
    damaged manifest must not pass for a model change, nor steer an incremental build."""
    try:
        version = current_version(settings.index_dir)
        if version is None:
            return None, None, ""
        manifest = read_manifest(version)
        reader = None if full else IndexReader.open_version(version)
    except (IndexCorruptError, IndexMismatchError) as exc:
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


def _stores_token_states(settings: Settings, embedder: Embedder, total_chunks: int) -> bool:
    """Whether this build stores the passages' word-piece states: the embedder gives them, and the index
    stays within ``settings.token_states_max_chunks`` (about 180 KB of disk a chunk)."""
    gives_states = callable(getattr(embedder, "embed_documents_with_tokens", None))
    return gives_states and 0 < total_chunks <= settings.token_states_max_chunks


def _embed_chunks(
    chunks: list[Chunk], settings: Settings, embedder: Embedder, show_progress: bool, with_states: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Vectors for the chunks and for every sentence of them, in one pass over the model; with
    ``with_states``, the chunks' word-piece states too (float16), from the same pass when the text
    embedded is the chunk's own (it is not when the title goes in front)."""
    chunk_texts = [_model_text(c, c.text, settings, embedder) for c in chunks]
    sentence_texts = [_model_text(c, c.text[a:b], settings, embedder) for c in chunks for a, b in c.sentences]
    texts = chunk_texts + sentence_texts
    same_pass = with_states and all(t == c.text for t, c in zip(chunk_texts, chunks))
    states: list[np.ndarray | None] = [None] * len(chunks)
    # longest first across all groups, so each group's batches pad as little as one big call would
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    with tqdm(total=len(texts), unit="text", desc="Embedding", disable=not show_progress) as bar:
        for i in range(0, len(texts), EMBED_GROUP):
            group = order[i : i + EMBED_GROUP]
            of_chunks = [j for j in group if j < len(chunks)] if same_pass else []
            rest = [j for j in group if j not in set(of_chunks)]
            if of_chunks:
                vecs, token_states = embedder.embed_documents_with_tokens([texts[j] for j in of_chunks], layer=TOKEN_LAYER)
                vectors[of_chunks] = vecs
                for j, st in zip(of_chunks, token_states):
                    states[j] = st.vectors.astype(np.float16)
            if rest:
                vectors[rest] = embedder.embed_documents([texts[j] for j in rest])
            bar.update(len(group))
            if on_progress is not None:
                on_progress(min(i + EMBED_GROUP, len(texts)), len(texts))
    if with_states and not same_pass:
        for start in range(0, len(chunks), EMBED_GROUP):
            part = chunks[start : start + EMBED_GROUP]
            for j, st in enumerate(embedder.embed_tokens([c.text for c in part], query=False, layer=TOKEN_LAYER)):
                states[start + j] = st.vectors.astype(np.float16)
    return vectors[: len(chunk_texts)], vectors[len(chunk_texts) :], states if with_states else []


def _token_items(old_reader, kept: list[int], new_chunks: list[Chunk], new_states: list, embedder: Embedder):
    """``(chunk id, states)`` in increasing id order: the previous build's stored states of the chunks
    kept (computed now where it stored none, or of another layer), then the new chunks' (whose ids all
    come after the kept ones)."""
    store = old_reader.token_store() if old_reader is not None and old_reader.token_layer == TOKEN_LAYER else None
    for start in range(0, len(kept), EMBED_GROUP):
        ids = kept[start : start + EMBED_GROUP]
        found = store.get(ids) if store is not None else [None] * len(ids)
        missing = [i for i, f in zip(ids, found) if f is None]
        computed = {}
        if missing:
            texts = [c.text for c in old_reader.chunks(missing)]
            computed = {i: st.vectors for i, st in zip(missing, embedder.embed_tokens(texts, query=False, layer=TOKEN_LAYER))}
        for i, f in zip(ids, found):
            yield i, f if f is not None else computed[i]
    yield from zip((c.id for c in new_chunks), new_states)


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


def _model_text(chunk: Chunk, text: str, settings: Settings, embedder: Embedder) -> str:
    """The title goes in front as context, unless it is already there or would pass the model's limit."""
    with_title = embedding_text(chunk.title, text, settings.title_context)
    if with_title != text and embedder.count_tokens(with_title) > embedder.content_tokens:
        return text
    return with_title


def index_sources(index_dir: Path) -> dict[str, str]:
    """source -> sha256 for the live build (for staleness checks)."""
    version = current_version(index_dir)
    if version is None:
        return {}
    return {s: e.sha256 for s, e in read_manifest(version).seeds.items()}
