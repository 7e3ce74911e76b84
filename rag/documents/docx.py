"""The Word reader: python-docx reads the paragraphs and tables of a ``.docx`` in reading order, and its
title, author and date. A ``.docx`` is a ZIP archive: before python-docx opens it, every member is
unpacked once as a stream and counted, so an archive that unpacks far beyond its size is refused
whatever its headers claim."""

from __future__ import annotations

import io
import zipfile
import zlib

from ..types import Document
from .assemble import join_parts, new_document, one_line

MAX_UNPACKED_BYTES = 64_000_000  # a long Word document with pictures unpacks to a few MB
MAX_MEMBERS = 10_000
_MAIN_PART = "word/document.xml"


class DocxReader:
    kind = "docx"
    clean_boilerplate = False  # a Word file is written, not saved from a web page: a list is not a menu

    def __init__(self, max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> None:
        self.max_unpacked_bytes = max_unpacked_bytes

    def read(self, source: str, raw: bytes) -> tuple[Document | None, str]:
        problem = check_archive(raw, self.max_unpacked_bytes)
        if problem:
            return None, problem
        import docx
        from docx.table import Table

        try:
            word = docx.Document(io.BytesIO(raw))
            blocks: list[str] = []
            headings: list[str] = []
            for item in word.iter_inner_content():
                if isinstance(item, Table):
                    blocks += _table_lines(item)
                    continue
                blocks.append(item.text)
                style = item.style.name if item.style is not None else ""
                if style.startswith(("Heading", "Title")):
                    headings.append(" ".join(item.text.split()))
            core = word.core_properties
            title, author, created = core.title, core.author, core.created
        except Exception as exc:  # a damaged part can break python-docx anywhere; it must not stop the build
            return None, f"damaged Word document, its text cannot be read ({type(exc).__name__})"
        paragraphs = [" ".join(b.split()) for block in blocks for b in block.split("\n")]
        text, breaks = join_parts([p for p in paragraphs if p], headings)
        if not text:
            return None, "Word document without text"
        return new_document(
            source, raw, text, kind=self.kind, title=title, author=one_line(author),
            date=created.date().isoformat() if created else "", breaks=breaks,
        ), ""


def _table_lines(table) -> list[str]:
    """One line per row, cells separated by ' | ' (a merged cell, repeated by python-docx, once)."""
    lines = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return lines


def check_archive(raw: bytes, max_unpacked_bytes: int) -> str:
    """'' for a ZIP archive holding a Word document that unpacks within the limit, else why not."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        return f"damaged Word document, not a readable ZIP archive ({exc})"
    with archive:
        if len(members) > MAX_MEMBERS:
            return f"Word document of {len(members):,} parts; at most {MAX_MEMBERS:,} are read"
        if _MAIN_PART not in {m.filename for m in members}:
            return "a ZIP archive, not a Word document (.docx)"
        declared = sum(m.file_size for m in members)
        if declared > max_unpacked_bytes:
            return f"Word document that unpacks to {declared:,} bytes; the limit is {max_unpacked_bytes:,}"
        unpacked = 0
        try:
            for member in members:
                with archive.open(member) as stream:
                    while block := stream.read(1 << 16):
                        unpacked += len(block)
                        if unpacked > max_unpacked_bytes:
                            return f"Word document that unpacks to more than {max_unpacked_bytes:,} bytes (the limit)"
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
            return f"damaged Word document, a part cannot be unpacked ({exc})"
    return ""
