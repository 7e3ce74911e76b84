"""What the readers of structured formats share: joining paragraphs into the text every offset points
into, marking where headings start a new part, and making the Document."""

from __future__ import annotations

import hashlib

from ..types import Document
from .clean import find_title


def one_line(value: object, limit: int = 200) -> str:
    """A metadata value (title, author) on one line, white space folded, at most ``limit`` characters."""
    return " ".join(str(value or "").split())[:limit]


def join_parts(paragraphs: list[str], headings: list[str]) -> tuple[str, tuple[int, ...]]:
    """The paragraphs joined by blank lines, and the offset of each heading that follows a paragraph
    (a heading right under another one belongs to the same part). ``headings`` come in text order."""
    text = ""
    breaks: list[int] = []
    pending = list(headings)
    after_heading = True
    for paragraph in paragraphs:
        if text:
            text += "\n\n"
        is_heading = bool(pending) and paragraph == pending[0]
        if is_heading:
            pending.pop(0)
            if not after_heading:
                breaks.append(len(text))
        after_heading = is_heading
        text += paragraph
    return text, tuple(breaks)


def new_document(source: str, raw: bytes, text: str, *, kind: str, title: str = "", **fields) -> Document:
    """A Document read by the reader of ``kind``; without a title of its own, the text's first line of prose."""
    return Document(
        source=source,
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        title=one_line(title) or find_title(text) or source,
        encoding=kind,
        kind=kind,
        **fields,
    )
