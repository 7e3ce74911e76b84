"""Which reader reads a seed: its kind is told from its content, not only from its name (a PDF renamed
``.txt`` is read as a PDF; a page saved as ``.pdf`` by a failed download is refused, not indexed as text).

A reader turns the bytes of one file into a ``Document`` (the text every offset points into, and what it
knows of title, author, date, address and pages) or says why it cannot: ``read(source, raw)``."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Protocol

from ..types import Document
from .docx import MAX_UNPACKED_BYTES, DocxReader
from .html import HtmlReader
from .pdf import PdfReader
from .text import TextReader

# the extensions a seed may have, and the kind each one names
KIND_OF_EXTENSION = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
EXTENSIONS = tuple(KIND_OF_EXTENSION)
EXTENSION_OF_KIND = {"text": ".txt", "markdown": ".md", "html": ".html", "pdf": ".pdf", "docx": ".docx"}
# what a link may serve, and the kind of each media type (anything else is refused before it is read)
KIND_OF_MEDIA_TYPE = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/octet-stream": "",  # a download of unknown type: its content decides
}
_BINARY_MAGIC = {
    b"\x89PNG": "binary file (a PNG image, not text)",
    b"\xff\xd8\xff": "binary file (a JPEG image, not text)",
    b"GIF8": "binary file (a GIF image, not text)",
    b"\x7fELF": "binary file (a program, not text)",
    b"\xd0\xcf\x11\xe0": "an old Office file (.doc, .xls); save it as .docx",
    b"{\\rtf": "an RTF file; save it as .docx",
    b"\x1f\x8b": "binary file (a gzip archive, not text)",
}
_HTML_STARTS = ("<!doctype html", "<html", "<head", "<body", "<meta", "<title")


class Reader(Protocol):
    kind: str
    clean_boilerplate: bool  # whether clean.py's line-by-line boilerplate filter applies to its text

    def read(self, source: str, raw: bytes) -> tuple[Document | None, str]: ...


def readers(max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> dict[str, Reader]:
    return {
        "text": TextReader("text"),
        "markdown": TextReader("markdown"),
        "html": HtmlReader(),
        "pdf": PdfReader(),
        "docx": DocxReader(max_unpacked_bytes),
    }


_READERS = readers()


def cleans_boilerplate(kind: str) -> bool:
    reader = _READERS.get(kind)
    return reader.clean_boilerplate if reader is not None else True


def sniff(raw: bytes) -> str:
    """What the bytes are: 'pdf', 'zip', 'html', 'text', or a description of a binary format."""
    if raw.startswith(b"%PDF-") or (b"%PDF-" in raw[:1024] and b"%%EOF" in raw[-2048:]):  # junk may come first
        return "pdf"
    if raw.startswith(b"PK\x03\x04"):
        return "zip"
    for magic, what in _BINARY_MAGIC.items():
        if raw.startswith(magic):
            return what
    head = raw[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").decode("utf-8", "ignore").lower()
    while head.startswith(("<!--", "<?xml")):  # a comment or an XML declaration before the markup
        end = head.find("-->" if head.startswith("<!--") else "?>")
        if end < 0:
            break
        head = head[end + 3 if head.startswith("<!--") else end + 2 :].lstrip()
    return "html" if head.startswith(_HTML_STARTS) else "text"


def kind_of(name: str, raw: bytes) -> tuple[str | None, str]:
    """(kind, '') for the reader that should read ``raw``, or (None, why none should)."""
    named = KIND_OF_EXTENSION.get(PurePosixPath(name).suffix.lower())
    found = sniff(raw)
    if found in ("pdf", "html") and named in (None, "text", "markdown", found):
        return found, ""
    if found == "pdf":
        return "pdf", ""
    if found == "zip":
        return ("docx", "") if named in (None, "docx", "text", "markdown") else (None, _not_a(named, "a ZIP archive"))
    if found not in ("html", "text"):
        return None, found if named in (None, "text", "markdown") else _not_a(named, found)
    if named in ("pdf", "docx"):
        return None, _not_a(named, "an HTML page" if found == "html" else "text")
    return named or "text", ""


def _not_a(named: str, what: str) -> str:
    label = {"pdf": "a PDF", "docx": "a Word document (.docx)", "html": "a web page"}.get(named, f"a {named} file")
    return f"named as {label} but it is {what}"


def seed_digest(raw: bytes, url: str = "") -> str:
    """A seed's sha256: of its bytes, and of its recorded link when it has one (a new link re-indexes it)."""
    digest = hashlib.sha256(raw)
    if url:
        digest.update(b"\x00link:" + url.encode("utf-8"))
    return digest.hexdigest()


def read_document(
    source: str, raw: bytes, *, url: str = "", max_unpacked_bytes: int = MAX_UNPACKED_BYTES
) -> tuple[Document | None, str]:
    """Read one seed with the reader of its kind: (document, '') or (None, why it is skipped).
    ``url`` is the seed's recorded link; it wins over the address the document gives itself."""
    kind, reason = kind_of(source, raw)
    if kind is None:
        return None, reason
    reader = _READERS[kind] if max_unpacked_bytes == MAX_UNPACKED_BYTES else readers(max_unpacked_bytes)[kind]
    doc, reason = reader.read(source, raw)
    if doc is None:
        return None, reason
    return _with_link(doc, raw, url), ""


def _with_link(doc: Document, raw: bytes, url: str) -> Document:
    return replace(doc, url=url or doc.url, sha256=seed_digest(raw, url))
