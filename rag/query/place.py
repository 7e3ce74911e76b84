"""Where a passage is in its document for the person reading it: the PDF page and the document's address,
added to hits and citations from the documents the build stores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..store.documents import DocumentInfo
from ..types import Answer, Hit, page_at

InfoOf = Callable[[str], DocumentInfo | None]


def place_hits(hits: list[Hit], info_of: InfoOf) -> list[Hit]:
    """Each hit with the page of its first character and its document's URL."""
    out = []
    for hit in hits:
        info = info_of(hit.source)
        out.append(replace(hit, page=page_at(info.page_starts, hit.start), url=info.url) if info else hit)
    return out


def place_answer(answer: Answer, info_of: InfoOf) -> Answer:
    """The answer with each citation's page (where its quote starts) and URL, and its nearest passages placed."""
    citations = []
    for c in answer.citations:
        info = info_of(c.source)
        citations.append(replace(c, page=page_at(info.page_starts, c.quote_start), url=info.url) if info else c)
    return replace(answer, citations=citations, nearest=place_hits(answer.nearest, info_of))
