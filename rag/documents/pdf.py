"""The PDF reader: pypdf reads the text layer page by page. Lines are joined back into paragraphs (a
PDF stores lines, not paragraphs; a quote must not stop at every line end), the header and footer
printed on every page are left out, and the offset where each page starts is kept for citations.

An encrypted PDF that needs a password, a damaged one, or one without a text layer (a scan) is refused
with a reason that says so."""

from __future__ import annotations

import io
import logging
import re

from ..types import Document
from .assemble import new_document, one_line
from .links import http_url

logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files are reported as a reason instead
MAX_PAGES = 5000
PAGE_BREAK = "\n\n"
_SENTENCE_END = ('.', '!', '?', '…', ':', '»', '"', '”', ')', ']')
_DIGITS = re.compile(r"\d+")
_URL = re.compile(r"https?://\S+")
_UNTITLED = re.compile(r"^(untitled|sans titre|microsoft word - .*|document\d*)$", re.IGNORECASE)


class PdfReader:
    kind = "pdf"
    # printed web pages keep their chrome (share bars, cookie banners): clean.py tells it from prose
    clean_boilerplate = True

    def read(self, source: str, raw: bytes) -> tuple[Document | None, str]:
        from pypdf import PdfReader as Pypdf
        from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

        try:
            pdf = Pypdf(io.BytesIO(raw), strict=False)
            if pdf.is_encrypted:
                try:
                    opened = pdf.decrypt("")  # many PDFs are encrypted only against editing: no password to open
                except DependencyError:
                    return None, "encrypted PDF whose cipher needs the 'cryptography' package to read"
                if not opened:
                    return None, "encrypted PDF that needs a password (save an unprotected copy)"
            if len(pdf.pages) > MAX_PAGES:
                return None, f"PDF of {len(pdf.pages):,} pages; at most {MAX_PAGES:,} are read"
            pages = [_page_text(page) for page in pdf.pages]
            pictures = not any(p.strip() for p in pages) and any(_has_images(page) for page in pdf.pages)
            metadata = pdf.metadata
        except FileNotDecryptedError:
            return None, "encrypted PDF that needs a password (save an unprotected copy)"
        except PdfReadError as exc:
            return None, f"damaged PDF, its text cannot be read ({_short(exc)})"
        except Exception as exc:  # a damaged file can break pypdf anywhere; it must not stop the build
            return None, f"damaged PDF, its text cannot be read ({type(exc).__name__})"
        paragraphs = [_paragraphs(text) for text in pages]
        furniture = _repeated_edges(paragraphs)
        # a page printed from a browser carries its address in the header or footer of every page
        printed = [paragraphs[i][j] for i, j in sorted(furniture)]
        url = next((m.group(0).rstrip(".,;)") for p in printed if (m := _URL.search(p))), "")
        paragraphs = [[p for j, p in enumerate(page) if (i, j) not in furniture] for i, page in enumerate(paragraphs)]
        text, page_starts = _join_pages(paragraphs)
        if not text.strip():
            if pictures:
                return None, "PDF without a text layer (a scanned document? run OCR on it first)"
            return None, "PDF without any text (empty or damaged pages)"
        title = _meta(metadata, "title")
        return new_document(
            source, raw, text, kind=self.kind, title="" if _UNTITLED.match(title) else title, url=http_url(url),
            author=_meta(metadata, "author"), date=_creation_date(metadata), page_starts=tuple(page_starts),
        ), ""


def _page_text(page) -> str:
    try:
        # layout mode keeps the blank line between paragraphs that the plain mode loses
        return page.extract_text(extraction_mode="layout")
    except Exception:  # pypdf's layout mode is young; the plain mode reads what it cannot
        return page.extract_text()


def _has_images(page) -> bool:
    try:
        return len(page.images) > 0
    except Exception:  # a damaged resource dictionary: no picture to speak of
        return False


def _paragraphs(page_text: str) -> list[str]:
    """The page's paragraphs, each on one line: lines separated by a blank line belong to different paragraphs."""
    out: list[str] = []
    current: list[str] = []
    for line in page_text.splitlines() + [""]:
        line = " ".join(line.split())  # layout padding and justified spacing
        if line:
            current.append(line)
        elif current:
            out.append(_join_lines(current))
            current = []
    return out


def _join_lines(lines: list[str]) -> str:
    text = lines[0]
    for line in lines[1:]:
        # a word cut at the line end ("pure-" / "players") is joined without a space, its hyphen kept
        glued = text.endswith("-") and len(text) > 1 and text[-2].isalpha() and line[:1].islower()
        text += line if glued else " " + line
    return text


def _repeated_edges(pages: list[list[str]]) -> set[tuple[int, int]]:
    """(page, paragraph) of the headers and footers: a first or last paragraph whose text, numbers aside,
    starts or ends at least half the pages (and two of them)."""
    if len(pages) < 2:
        return set()
    need = max(2, (len(pages) + 1) // 2)
    out: set[tuple[int, int]] = set()
    for edge in (0, -1):
        keys: dict[str, list[tuple[int, int]]] = {}
        for i, page in enumerate(pages):
            if page:
                j = edge % len(page)
                keys.setdefault(_DIGITS.sub("#", page[j].casefold()), []).append((i, j))
        for places in keys.values():
            if len(places) >= need:
                out.update(places)
    return out


def _join_pages(pages: list[list[str]]) -> tuple[str, list[int]]:
    """The text of all pages and the offset where each page starts. A paragraph cut by a page break (no
    sentence end, the next page going on in lower case) is joined back with a space."""
    text = ""
    starts: list[int] = []
    for page in pages:
        if page and text and not text.endswith(_SENTENCE_END) and page[0][:1].islower():
            text += " "
        elif page and text:
            text += PAGE_BREAK
        starts.append(len(text))
        text += PAGE_BREAK.join(page)
    return text, starts


def _meta(metadata, name: str) -> str:
    try:
        value = getattr(metadata, name, None) if metadata is not None else None
    except Exception:  # a damaged info dictionary only costs the title
        return ""
    return one_line(value)


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__


def _creation_date(metadata) -> str:
    try:
        when = metadata.creation_date if metadata is not None else None
    except Exception:  # a malformed date string
        return ""
    return when.date().isoformat() if when else ""
