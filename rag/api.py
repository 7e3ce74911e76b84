"""The public API: ``build_index``, ``search``, ``answer`` (and ``answer_stream``), ``get_embedder``,
``index_status``.

These functions are the library's edge: they read ``RAG_*`` environment variables (through
``Settings.from_env``) and keep one loaded model and one loaded index per process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from . import background, indexer, trash
from .errors import ConfigError, IndexNotFoundError
from .llm import LLMClient
from .model import registry
from .model.base import TOKEN_LAYER, Embedder
from .query import compose, reference
from .query import generate as writer
from .query.decide import BACKGROUND_POOL, decide
from .query.place import place_answer, place_hits
from .query.retrieve import clamp_k, fit_to_model, rank, validate_question, without_lone_surrogates
from .query.token_match import embed_question
from .settings import Settings
from .store import check_compatible
from .store.backend import StoreReader, one_process_at_a_time, open_store
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
    ray_address: str | None = None,
    separate_process: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Index the seeds folder: embed added and changed seeds, drop removed ones. ``ray_address``: embed on
    that Ray cluster (the optional ``ray`` extra). With ``separate_process`` the work runs in a low-priority
    child process, so that answers in this one keep their speed (not on a Milvus Lite file, which one process
    at a time may open: there the work runs in this process)."""
    s = _settings(seeds_dir, index_dir, model, settings)
    indexer.check_seeds_dir(s)  # before the model loads: a typo should fail fast
    if separate_process and not one_process_at_a_time(s):
        report = background.build_index(s, full=full, wait=wait, on_progress=on_progress, ray_address=ray_address)
        open_store(s).built_by_us()
        return report
    return indexer.build_index(
        s, get_embedder(s.model), full=full, wait=wait, show_progress=show_progress, on_progress=on_progress,
        ray_address=ray_address,
    )


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


def _prepare(question, k, s: Settings):
    """Validate the question (before any model loads), then load the model and the live index."""
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
    s = _settings(seeds_dir, index_dir, model, settings)
    text, embedder, reader, k = _prepare(question, k, s)
    query_vec, token_scorer = embed_question(embedder, text, _stored_states(reader))
    return place_hits([scored.to_hit() for scored in rank(reader, text, query_vec, k, token_scorer)], reader.document_info)


def answer(
    question: str, k: int = 5, index_dir=None, seeds_dir=None, *, model=None, settings=None,
    generate: bool | None = None, llm: LLMClient | None = None,
) -> Answer:
    """A short answer citing the passages that support it, or ``found=False`` when none does.

    ``generate``: True has the configured language model (``RAG_LLM_URL``, or ``llm``) write it from the
    passages, every sentence checked against its citation; False quotes the passages; None (default)
    writes when a language model is configured."""
    *_, final = _answer_events(question, k, _settings(seeds_dir, index_dir, model, settings), generate, llm, False)
    return final


def answer_stream(
    question: str, k: int = 5, index_dir=None, seeds_dir=None, *, model=None, settings=None,
    generate: bool | None = None, llm: LLMClient | None = None,
) -> Iterator[str | Answer]:
    """Like ``answer``, for a page that shows the language model's text as it comes: yields pieces of
    text (not yet checked) while the model writes, then the final ``Answer``, which is always last."""
    yield from _answer_events(question, k, _settings(seeds_dir, index_dir, model, settings), generate, llm, True)


def _answer_events(question, k, s: Settings, generate, llm, stream: bool) -> Iterator[str | Answer]:
    text, embedder, reader, k = _prepare(question, k, s)
    question = without_lone_surrogates(question)  # the question as asked, but always printable
    query_vec, token_scorer = embed_question(embedder, text, _stored_states(reader))
    ranked = rank(reader, text, query_vec, max(k, BACKGROUND_POOL), token_scorer)
    # the answer is drafted first so that the decision can check what it would quote
    draft = compose.compose(question, ranked[:k], found=True, confidence=1.0, reason="")
    quotes = [c.quote for c in draft.citations]
    found, confidence, reason = decide(text, ranked, reference.closest(embedder, query_vec), quotes)
    if not found:
        yield place_answer(
            compose.compose(question, ranked[:k], found=False, confidence=confidence, reason=reason), reader.document_info
        )
        return
    quoted = place_answer(replace(draft, confidence=confidence, reason=reason if draft.found else draft.reason),
                          reader.document_info)
    client = _language_model(s, generate, llm)
    if client is None or not quoted.found:
        yield quoted  # a declined question never reaches the language model
        return
    try:
        passages = writer.passages_for(quoted.citations, ranked, reader)
        for event in writer.write(question, quoted, passages, client, embedder, stream=stream):
            yield place_answer(event, reader.document_info) if isinstance(event, Answer) else event
    finally:
        if llm is None:
            client.close()


def _language_model(s: Settings, generate: bool | None, llm: LLMClient | None):
    """The client that writes answers, or None to quote the passages."""
    if generate is False:
        return None
    if llm is not None:
        return llm
    if s.llm_configured:
        from .llm.openai_compatible import OpenAICompatibleClient  # imported only when a model is configured

        return OpenAICompatibleClient(s.llm_url, s.llm_model, s.llm_api_key, s.llm_timeout)
    if generate:
        raise ConfigError(
            "no language model is configured to write the answer: set RAG_LLM_URL and RAG_LLM_MODEL "
            "(or --llm-url and --llm-model)"
        )
    return None


def index_status(index_dir=None, seeds_dir=None, *, settings=None) -> IndexStatus:
    """What the index holds, and whether the seeds on disk have changed since it was built."""
    s = _settings(seeds_dir, index_dir, None, settings)
    from .documents.discover import discover, load_seed, parse_seed

    m = open_store(s).live_manifest()
    if m is None:
        return IndexStatus(exists=False, stale=True, stale_detail="no index has been built yet")
    indexed = {src: e.sha256 for src, e in m.seeds.items()}
    on_disk = {}
    if s.seeds_dir.is_dir():
        seeds, _ = discover(s.seeds_dir, s.extensions)
        for seed in seeds:
            loaded, _ = load_seed(seed, s.max_file_bytes)
            # what an index run would read: skipped files (empty, binary, damaged, too large) do not count;
            # a seed whose digest the index holds is not parsed again
            if loaded is not None and (indexed.get(seed.source) == loaded.sha256 or parse_seed(seed.source, loaded)[0]):
                on_disk[seed.source] = loaded.sha256
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
    url: str = "",
    settings: Settings | None = None,
    separate_process: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[str, IndexReport]:
    """Save a document (.txt, .md, .html, .pdf, .docx) into the seeds folder and index it.

    Checks name, type, size, content and what it would cost to index before anything is written; ``url``
    records where it was found (a link file beside it); a document it replaces goes to the trash
    (``restore_document``). With ``separate_process`` the checks that need the model and the indexing run
    in a low-priority child process (``rag.background``). Returns (source, report); the source may be a
    shortened name."""
    import os

    from .documents import links, names
    from .documents.formats import read_document
    from .errors import InvalidDocumentError

    s = _settings(seeds_dir, index_dir, None, settings)
    name = names.upload_name(filename, s.extensions)
    if name != without_lone_surrogates(name):  # no file system takes a lone surrogate
        raise InvalidDocumentError(f"“{without_lone_surrogates(name)}” cannot be a file name; rename the file")
    if not isinstance(content, (bytes, bytearray)):
        raise InvalidDocumentError("the document content must be bytes")
    if len(content) > max_bytes:
        raise InvalidDocumentError(f"{name} is {len(content):,} bytes; the limit is {max_bytes:,}")
    url = links.http_url(url)
    doc, reason = read_document(name, bytes(content), url=url)
    if doc is None:
        raise InvalidDocumentError(f"{name} cannot be indexed: {reason}")
    target = s.seeds_dir / name
    if target.exists() and not overwrite:
        raise InvalidDocumentError(f"a document named {name} already exists in the seeds folder")
    try:
        s.seeds_dir.mkdir(parents=True, exist_ok=True)  # an upload may start the collection
    except OSError as exc:
        raise ConfigError(f"the seeds folder {s.seeds_dir} cannot be made: {exc.strerror or exc}") from None
    if separate_process and not one_process_at_a_time(s):
        added = background.add_document(name, bytes(content), s, overwrite=overwrite, url=url, on_progress=on_progress)
        open_store(s).built_by_us()
        return added
    indexer.check_document_cost(doc, len(content), s, get_embedder(s.model))
    if target.exists():
        trash.move_to_trash(s, name, copy=True)  # the seed stays in place until the new one replaces it
    tmp = s.seeds_dir / f".upload-{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        # the link first: the document never stands without the address it came from
        if url:
            tmp.write_text(links.link_file_text(url), encoding="utf-8")
            os.replace(tmp, links.link_file(target))
        else:
            links.link_file(target).unlink(missing_ok=True)  # a replaced document's old address is not its own
        tmp.write_bytes(bytes(content))
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidDocumentError(f"{name} cannot be saved in {s.seeds_dir}: {exc.strerror or exc}") from None
    return name, build_index(settings=s, on_progress=on_progress)


def add_url(
    url: str,
    seeds_dir=None,
    index_dir=None,
    *,
    allow_private: bool = True,
    max_bytes: int | None = None,
    timeout: float = 20.0,
    settings: Settings | None = None,
    separate_process: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[str, IndexReport]:
    """Fetch a page, PDF, Word or text document by its http(s) link, save it into the seeds folder under
    a readable name with its link recorded, and index it (``separate_process``: as ``add_document``). The
    same link added again replaces its file (the previous one goes to the trash).

    ``allow_private=False`` (the chat page's default) refuses hosts on this machine or its private network."""
    from .documents import fetch, names
    from .documents.formats import EXTENSION_OF_KIND, kind_of, read_document
    from .errors import InvalidDocumentError

    s = _settings(seeds_dir, index_dir, None, settings)
    limit = max_bytes or s.max_file_bytes
    got = fetch.fetch(url, fetch.FetchPolicy(allow_private=allow_private, timeout=timeout, max_bytes=limit))
    # the server's media type names the kind when the content does not tell (a page of plain text)
    kind, reason = kind_of(f"link{EXTENSION_OF_KIND.get(got.kind, '')}", got.body)
    placeholder = f"link{EXTENSION_OF_KIND.get(kind or '', '')}"
    doc, reason = read_document(placeholder, got.body) if kind else (None, reason)
    if doc is None:
        raise InvalidDocumentError(f"the document at {got.url} cannot be indexed: {reason}")
    title = "" if doc.title == placeholder else doc.title  # a reader falls back to the file name for a title
    name, replaces = names.link_name(title, got.url, EXTENSION_OF_KIND[kind], s.seeds_dir, hint=got.name_hint)
    return add_document(name, got.body, overwrite=replaces, max_bytes=limit, url=got.url, settings=s,
                        separate_process=separate_process, on_progress=on_progress)


def document_text(source: str, *, seeds_dir=None, index_dir=None, settings: Settings | None = None) -> str:
    """The text of ``source`` as the index holds it: ``document_text(c.source)[c.start:c.end] == c.text``
    for every chunk, hit and citation, whatever the document's format. Loads no model."""
    s = _settings(seeds_dir, index_dir, None, settings)
    store = open_store(s)
    version = store.live_version()
    if version is None:
        raise IndexNotFoundError(f"no index in {store.where}; run `rag index` to build one")
    with _readers_lock:
        cached = _readers.get(store.cache_key)
    if cached is not None and cached.version == version:
        return cached.document_text(source)
    reader = store.open_reader()
    try:
        return reader.document_text(source)
    finally:
        reader.close()
