"""The documents table of a build's chunks.sqlite: each document's extracted text (what every chunk's
offsets point into) and what its reader knew of it. Being in chunks.sqlite, it is checksummed with the
build, copied and edited by an incremental build like the chunks table, and swapped in with it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from ..types import Document

TABLE = "documents"
_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (source TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL, "
    "url TEXT NOT NULL, author TEXT NOT NULL, date TEXT NOT NULL, page_starts TEXT NOT NULL, text TEXT NOT NULL)"
)


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document without its text: what citations and cards need."""

    source: str
    kind: str
    title: str
    url: str
    author: str
    date: str
    page_starts: tuple[int, ...]
    chars: int


def write_documents(db: sqlite3.Connection, remove_sources: Iterable[str], add: Iterable[Document]) -> None:
    """Drop the documents of ``remove_sources`` and store ``add`` (inside the caller's transaction)."""
    db.execute(_CREATE)
    db.executemany(f"DELETE FROM {TABLE} WHERE source = ?", [(s,) for s in remove_sources])
    db.executemany(
        f"INSERT INTO {TABLE} (source, kind, title, url, author, date, page_starts, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(d.source, d.kind, d.title, d.url, d.author, d.date, json.dumps(list(d.page_starts)), d.text) for d in add],
    )


def has_documents(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone() is not None


def load_infos(db: sqlite3.Connection) -> dict[str, DocumentInfo]:
    """Every stored document's info, by source (the table must exist: see ``has_documents``)."""
    rows = db.execute(
        f"SELECT source, kind, title, url, author, date, page_starts, length(text) FROM {TABLE}"
    ).fetchall()
    out = {}
    for source, kind, title, url, author, date, starts, chars in rows:
        pages = json.loads(starts)
        if not (isinstance(pages, list) and all(isinstance(p, int) and 0 <= p <= chars for p in pages)):
            raise ValueError(f"the page offsets of {source!r} are not valid")
        out[source] = DocumentInfo(source, kind, title, url, author, date, tuple(pages), chars)
    return out


def load_text(db: sqlite3.Connection, source: str) -> str | None:
    row = db.execute(f"SELECT text FROM {TABLE} WHERE source = ?", (source,)).fetchone()
    return row[0] if row else None
