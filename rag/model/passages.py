"""Embedding the chunks of a build for the indexer (rag/indexer.py): each chunk and each of its sentences
in one pass over the model (with the chunks' word-piece states when the build stores them), in batches
a store writes as they come, or spread over a Ray cluster (rag/model/ray_embed.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from ..documents.chunk import embedding_text
from ..settings import Settings
from ..types import Chunk
from .base import TOKEN_LAYER, Embedder

EMBED_GROUP = 256  # chunks per call to the model: large enough to batch well, small enough for progress


def stores_token_states(settings: Settings, embedder: Embedder, total_chunks: int) -> bool:
    """Whether this build stores the passages' word-piece states: the embedder gives them, and the index
    stays within ``settings.token_states_max_chunks`` (about 180 KB of disk a chunk)."""
    gives_states = callable(getattr(embedder, "embed_documents_with_tokens", None))
    return gives_states and 0 < total_chunks <= settings.token_states_max_chunks


def embed_chunks(
    chunks: list[Chunk], settings: Settings, embedder: Embedder, show_progress: bool, with_states: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Vectors for the chunks and for every sentence of them, in one pass over the model; with
    ``with_states``, the chunks' word-piece states too (float16), from the same pass when the text
    embedded is the chunk's own (it is not when the title goes in front)."""
    chunk_texts = [model_text(c, c.text, settings, embedder) for c in chunks]
    sentence_texts = [model_text(c, c.text[a:b], settings, embedder) for c in chunks for a, b in c.sentences]
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


def embedded_batches(
    chunks: list[Chunk], settings: Settings, embedder: Embedder, batch_chunks: int | None, show_progress: bool,
    with_states: bool = False, ray_address: str | None = None, on_progress: Callable[[int, int], None] | None = None,
):
    """``(chunks, vectors, sentence vectors, states)`` batch after batch (one batch of all when
    ``batch_chunks`` is None), embedded here or on the Ray cluster at ``ray_address``;
    ``on_progress(done, total)`` counts the texts (chunks and sentences) embedded."""
    if not chunks:
        return
    if batch_chunks is None and not ray_address:
        yield chunks, *embed_chunks(chunks, settings, embedder, show_progress, with_states, on_progress)
        return
    size = batch_chunks or EMBED_GROUP
    batches = [chunks[i : i + size] for i in range(0, len(chunks), size)]
    total, done = sum(1 + len(c.sentences) for c in chunks), 0

    def advance(batch: list[Chunk]) -> None:
        nonlocal done
        bar.update(len(batch))
        done += sum(1 + len(c.sentences) for c in batch)
        if on_progress is not None:
            on_progress(done, total)

    with tqdm(total=len(chunks), unit="chunk", desc="Embedding", disable=not show_progress) as bar:
        if ray_address:
            from .ray_embed import embed_on_ray

            # per batch, the texts embed_chunks would embed: the chunks', then every sentence of them
            jobs = ([model_text(c, c.text, settings, embedder) for c in batch]
                    + [model_text(c, c.text[a:b], settings, embedder) for c in batch for a, b in c.sentences]
                    for batch in batches)
            for batch, vectors in zip(batches, embed_on_ray(ray_address, jobs, settings.model, embedder)):
                yield batch, vectors[: len(batch)], vectors[len(batch) :], []
                advance(batch)
            return
        for batch in batches:
            yield batch, *embed_chunks(batch, settings, embedder, False, with_states)
            advance(batch)


def token_items(old_reader, kept: list[int], new_chunks: list[Chunk], new_states: list, embedder: Embedder):
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


def model_text(chunk: Chunk, text: str, settings: Settings, embedder: Embedder) -> str:
    """The title goes in front as context, unless it is already there or would pass the model's limit."""
    with_title = embedding_text(chunk.title, text, settings.title_context)
    if with_title != text and embedder.count_tokens(with_title) > embedder.content_tokens:
        return text
    return with_title
