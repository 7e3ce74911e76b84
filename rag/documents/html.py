"""The web page reader: trafilatura finds the article's main text (menus, footers, comment forms, share
buttons and cookie banners left out) and its title, author, date and canonical URL. Markup is parsed,
never run: scripts and styles are dropped with their content, and nothing the page links to is fetched."""

from __future__ import annotations

import logging

from ..types import Document
from .assemble import join_parts, new_document, one_line
from .links import http_url

# trafilatura logs every page it finds too short or too noisy; the reason is reported to the user instead
logging.getLogger("trafilatura").setLevel(logging.ERROR)
MIN_ARTICLE_WORDS = 5


class HtmlReader:
    kind = "html"
    clean_boilerplate = False  # trafilatura has already kept only the article

    def read(self, source: str, raw: bytes) -> tuple[Document | None, str]:
        import trafilatura

        if not raw.strip():
            return None, "empty file"
        try:
            found = trafilatura.bare_extraction(
                raw,
                with_metadata=True,
                include_comments=False,
                include_tables=True,
                include_images=False,
                include_links=False,
                output_format="python",
            )
        except (ValueError, TypeError, RecursionError, MemoryError) as exc:
            return None, f"the page cannot be parsed ({type(exc).__name__})"
        body = (getattr(found, "text", None) or "").strip() if found is not None else ""
        # on a page without an article trafilatura falls back to what it finds (a menu's "Accueil")
        if len(body.split()) < MIN_ARTICLE_WORDS:
            return None, "no article text found in the page (only menus, scripts or markup)"
        title = " ".join((found.title or "").split())
        paragraphs = [" ".join(line.split()) for line in body.split("\n")]
        paragraphs = [p for p in paragraphs if p]
        # the page's title heads the text, as it does in a saved article, unless the article already starts with it
        if title and (not paragraphs or paragraphs[0].casefold() != title.casefold()):
            paragraphs.insert(0, title)
        text, breaks = join_parts(paragraphs, _headings(found))
        return new_document(
            source, raw, text, kind=self.kind, title=title, url=http_url(found.url), author=one_line(found.author),
            date=found.date or "", breaks=breaks,
        ), ""


def _headings(found) -> list[str]:
    """The text of each heading of the extracted article, in order (trafilatura marks them ``head``)."""
    body = getattr(found, "body", None)
    if body is None:
        return []
    return [" ".join("".join(head.itertext()).split()) for head in body.iter("head")]

