"""Typed, frozen records that flow through the pipeline, from seed file to answer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One readable seed file. ``text`` is the decoded file; every offset points into it."""

    source: str  # path relative to the seeds folder, with forward slashes
    text: str
    sha256: str  # of the raw bytes on disk
    title: str
    encoding: str = "utf-8"


@dataclass(frozen=True)
class Chunk:
    """A retrieval unit: ``document.text[start:end] == text``."""

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


@dataclass(frozen=True)
class Citation:
    """A passage an answer relies on. ``quote`` is a substring of ``text``;
    ``quote_start``/``quote_end`` are its offsets in the source file."""

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


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    confidence: float = 0.0
    reason: str = ""
    nearest: list[Hit] = field(default_factory=list)  # shown as "not answering" when found is False


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
