"""The reader of plain text and Markdown: decode bytes in any common encoding into a Document, or say why
they are not text. The text is the file as it is: every offset points into the decoded file."""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import replace
from pathlib import Path

from ..types import Document
from .clean import find_title

_WESTERN = {"cp1252", "latin_1", "iso8859_15", "iso8859_1", "windows-1252"}
_BINARY_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"\x7fELF")


class TextReader:
    """Plain text and Markdown (``kind`` tells which); saved web pages among them keep their chrome,
    which clean.py tells from prose line by line."""

    clean_boilerplate = True

    def __init__(self, kind: str = "text") -> None:
        self.kind = kind

    def read(self, source: str, raw: bytes) -> tuple[Document | None, str]:
        doc, reason = parse_seed_bytes(source, raw)
        return (replace(doc, kind=self.kind) if doc is not None else None), reason


def parse_seed_bytes(source: str, raw: bytes) -> tuple[Document | None, str]:
    if not raw.strip():
        return None, "empty file" if not raw else "only white space"
    decoded = decode_text(raw)
    if decoded is None:
        return None, "binary file (not text)"
    text, encoding = decoded
    if not text.strip():
        return None, "only white space"
    return Document(
        source=source,
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        title=find_title(text) or Path(source).stem,
        encoding=encoding,
    ), ""


def decode_text(raw: bytes) -> tuple[str, str] | None:
    """Decode bytes as text, or None for binary content. BOMs first, then UTF-8, then detection."""
    if raw.startswith(codecs.BOM_UTF8):
        return _strict(raw[len(codecs.BOM_UTF8) :], "utf-8")
    # UTF-32's BOMs begin with UTF-16's: test them first
    for bom, enc in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if raw.startswith(bom):
            result = _strict(raw[len(bom) :], enc)
            if result is not None or enc.startswith("utf-16"):
                return result
    if raw.startswith(_BINARY_MAGIC) or b"\x00" in raw[:8192]:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return (text, "utf-8") if _looks_like_text(text) else None
    mostly_utf8 = _mostly_utf8(raw)
    if mostly_utf8 is not None:
        return mostly_utf8
    from charset_normalizer import from_bytes

    # Short legacy files are ambiguous between code pages; the articles are French, so a
    # Western code page wins whenever the detector finds it plausible at all.
    matches = list(from_bytes(raw[:200_000]))
    names = [m.encoding for m in matches]
    candidates = [e for e in names if e in _WESTERN] and ["cp1252"]
    candidates += names + ["cp1252", "latin-1"]
    for enc in candidates:
        result = _strict(raw, enc)
        if result is not None:
            return result
    return None


def _mostly_utf8(raw: bytes) -> tuple[str, str] | None:
    """UTF-8 text with a few invalid bytes (a bad copy, a truncated character) is read as UTF-8 with
    the bad bytes replaced by U+FFFD, rather than as mojibake in some code page: it applies when
    valid multi-byte characters outnumber the invalid sequences."""
    text = raw.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - raw.count("\ufffd".encode())
    good = sum(1 for ch in text if ord(ch) > 127 and ch != "\ufffd")
    if bad <= 0 or good < bad or not _looks_like_text(text):
        return None
    return text, f"utf-8 ({bad} invalid byte sequence{'s' if bad > 1 else ''} replaced)"


def _strict(raw: bytes, encoding: str) -> tuple[str, str] | None:
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    return (text, encoding) if _looks_like_text(text) else None


def _looks_like_text(text: str) -> bool:
    if "\x00" in text:
        return False
    sample = text[:20_000]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f\v")
    return control <= max(2, len(sample) // 200)
