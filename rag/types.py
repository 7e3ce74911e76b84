"""Typed, frozen records that flow through the pipeline, from seed file to answer."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One readable seed file. ``text`` is what its reader extracted (the decoded file for plain text and
    Markdown); every offset points into it, and the index stores it (``rag.document_text``)."""

    source: str  # path relative to the seeds folder, with forward slashes
    text: str
    sha256: str  # of the raw bytes on disk (and of the recorded link, when the seed has one)
    title: str
    encoding: str = "utf-8"
    kind: str = "text"  # text | markdown | html | pdf | docx (rag/documents/formats.py)
    url: str = ""  # the page's address: the link it was fetched from, or its canonical URL; '' when none
    author: str = ""
    date: str = ""  # as the document gives it (ISO 8601 when the reader can tell)
    # PDFs: the offset in ``text`` where each page starts (the first is 0); empty for other kinds
    page_starts: tuple[int, ...] = ()
    # where a heading the reader saw starts a new part of the text: chunks do not run across it (readers
    # whose text has no boilerplate lines for clean.py to split at: web pages, Word files)
    breaks: tuple[int, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding ``text[offset]`` (PDFs); None for documents without pages."""
        return page_at(self.page_starts, offset)


def page_at(page_starts: tuple[int, ...] | list[int], offset: int) -> int | None:
    """The 1-based page of ``offset`` given where each page starts; None when there are no pages."""
    if not page_starts:
        return None
    return max(1, bisect.bisect_right(page_starts, offset))


@dataclass(frozen=True)
class Chunk:
    """A retrieval unit: ``document.text[start:end] == text`` (``rag.document_text(source)`` gives it)."""

    id: int
    source: str
    text: str
    start: int
    end: int
    title: str = ""  # the article (or post) title, shown in citations and embedded as context
    sentences: tuple[tuple[int, int], ...] = ()  # sentence spans, relative to ``text``


@dataclass(frozen=True)
class Hit:
    """A chunk returned by search, best first."""

    source: str
    text: str
    start: int
    end: int
    score: float
    title: str = ""
    chunk_id: int = -1
    page: int | None = None  # 1-based page of ``start`` (PDFs); None elsewhere
    url: str = ""  # the document's address (fetched link or canonical URL); '' when none


@dataclass(frozen=True)
class Citation:
    """A passage an answer relies on. ``quote`` is a substring of ``text``; ``start``/``end`` and
    ``quote_start``/``quote_end`` are offsets in the document's text: ``rag.document_text(source)``."""

    n: int
    source: str
    text: str
    start: int
    end: int
    quote: str
    score: float
    title: str = ""
    quote_start: int = 0
    quote_end: int = 0
    page: int | None = None  # 1-based page where the quote starts (PDFs); None elsewhere
    url: str = ""  # the document's address (fetched link or canonical URL); '' when none


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of an answer and the citations it rests on (their ``n``); ``supported_by`` is the
    one whose passage holds the closest sentence."""

    text: str  # without its [n] markers
    citations: tuple[int, ...]
    supported_by: int


# Words for a confidence a reader understands, from the highest level reached (rag/query/confidence.py
# says what the number means: the probability that the answer cites a passage that answers).
SUPPORT_LEVELS = ((0.9, "well supported"), (0.6, "partly supported"), (0.0, "weakly supported"))


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    # the probability, fitted on labelled questions, that the answer cites a passage that answers the question
    confidence: float = 0.0
    reason: str = ""
    nearest: list[Hit] = field(default_factory=list)  # shown as "not answering" when found is False
    sentences: tuple[AnswerSentence, ...] = ()
    generated: bool = False  # written by the configured language model (every sentence checked), not quoted
    note: str = ""  # sentences of the written answer removed, or why the quoted answer is shown instead

    @property
    def support(self) -> str:
        """The confidence in words: "well supported", "partly supported" or "weakly supported"."""
        return next(words for level, words in SUPPORT_LEVELS if self.confidence >= level)


@dataclass(frozen=True)
class SeedChange:
    source: str
    status: str  # added | changed | removed | unchanged | skipped
    chunks: int = 0
    reason: str = ""


@dataclass(frozen=True)
class IndexReport:
    added: int
    changed: int
    removed: int
    unchanged: int
    chunks_embedded: int
    total_chunks: int
    skipped: list[tuple[str, str]]
    seconds: float
    full_rebuild: bool = False
    rebuild_reason: str = ""
    files: list[SeedChange] = field(default_factory=list)
    index_path: str = ""
    by_format: dict[str, int] = field(default_factory=dict)  # documents in the index per kind (text, pdf, ...)


@dataclass(frozen=True)
class IndexStatus:
    """What the UI's side panel and ``rag status`` show."""

    exists: bool
    documents: int = 0
    chunks: int = 0
    model_id: str = ""
    built_at: str = ""
    stale: bool = False  # seeds on disk differ from what the index holds
    stale_detail: str = ""


@dataclass(frozen=True)
class TrashedSeed:
    """A seed kept in the index folder's trash after it was replaced or removed."""

    source: str  # its name in the seeds folder
    trashed_at: str  # UTC, e.g. 2026-11-23T10:48:32Z
    bytes: int
    path: str  # where the copy is now
    folder: str  # the dated trash folder it is in
