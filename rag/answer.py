"""Compose a short extractive answer from the best passages, citing the sentences it quotes."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .embed import Embedder
from .types import Answer, Citation, Hit

NOT_FOUND = "I could not find an answer to this question in the documents."
# A sentence ends at . ! ? … (optionally closed by a quote or bracket) before white space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?…])(?:[\u00a0 ]?[»”\"')\]])?\s+|\n+")
MIN_SENTENCE_WORDS = 4


@dataclass(frozen=True)
class Sentence:
    hit_rank: int
    start: int  # offsets in the hit's text
    end: int
    text: str


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in ``text``, white space trimmed."""
    spans = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((pos, m.start() + len(m.group(0).rstrip())))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def candidate_sentences(hits: list[Hit], passages: int) -> list[Sentence]:
    out = []
    for rank, hit in enumerate(hits[:passages]):
        spans = split_sentences(hit.text)
        long_enough = [(a, b) for a, b in spans if len(hit.text[a:b].split()) >= MIN_SENTENCE_WORDS]
        for a, b in long_enough or spans:
            out.append(Sentence(rank, a, b, hit.text[a:b]))
    return out


def compose(
    question: str,
    query_vec: np.ndarray,
    hits: list[Hit],
    embedder: Embedder,
    *,
    found: bool,
    confidence: float,
    reason: str,
    passages: int = 3,
    max_quotes: int = 2,
) -> Answer:
    """Pick the sentences that answer best and cite each with an [n] marker."""
    if not found or not hits:
        return Answer(question, NOT_FOUND, False, [], confidence, reason, nearest=list(hits[:3]))
    sentences = candidate_sentences(hits, passages)
    sims = embedder.embed_documents([s.text for s in sentences]) @ query_vec
    # the passage's own rank still counts: a sentence is read in its context
    scores = [float(sim) + 0.25 * hits[s.hit_rank].score for s, sim in zip(sentences, sims)]
    order = sorted(range(len(sentences)), key=lambda i: -scores[i])
    chosen = [order[0]]
    for i in order[1:]:
        if len(chosen) >= max_quotes or scores[i] < scores[order[0]] - 0.03:
            break
        if sentences[i].hit_rank != sentences[chosen[0]].hit_rank or abs(i - chosen[0]) == 1:
            chosen.append(i)
    # keep reading order within a passage, and passage rank across them
    chosen.sort(key=lambda i: (sentences[i].hit_rank, sentences[i].start))
    citations: list[Citation] = []
    parts: list[str] = []
    for i in chosen:
        s = sentences[i]
        hit = hits[s.hit_rank]
        existing = next((c for c in citations if c.start == hit.start and c.source == hit.source), None)
        if existing is not None and existing.quote_end - hit.start <= s.start:
            # a second sentence of the same passage: widen that citation's quote
            quote_start = existing.quote_start - hit.start
            merged = Citation(
                n=existing.n, source=hit.source, text=hit.text, start=hit.start, end=hit.end,
                quote=hit.text[quote_start : s.end], score=existing.score, title=hit.title,
                quote_start=existing.quote_start, quote_end=hit.start + s.end,
            )
            citations[citations.index(existing)] = merged
            parts.append(f"{s.text} [{existing.n}]")
            continue
        n = len(citations) + 1
        citations.append(
            Citation(
                n=n, source=hit.source, text=hit.text, start=hit.start, end=hit.end, quote=s.text,
                score=round(hit.score, 4), title=hit.title,
                quote_start=hit.start + s.start, quote_end=hit.start + s.end,
            )
        )
        parts.append(f"{s.text} [{n}]")
    return Answer(question, " ".join(parts), True, citations, confidence, reason)
