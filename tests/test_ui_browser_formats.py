"""Documents of other formats on the chat page in a real Chromium: a hostile web page (scripts, event
handlers, javascript: links, a Markdown image, an iframe) never runs or loads anything, its card links to
its address without the page fetching it, and a PDF's card names the page of the quote."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import rag

from . import doc_factory as make
from . import test_ui_browser as chat_page
from .ui_helpers import (
    HOSTILE_QUESTION,
    HOSTILE_SEED,
    HOSTILE_STRINGS,
    copy_corpus,
    live_server,
)

pytestmark = [pytest.mark.browser, pytest.mark.model]

# the chat page tests' Chromium and watched page, and how they open the page and ask
browser, watched = chat_page.browser, chat_page.watched
ask, open_app, ANSWER_TIMEOUT_MS = chat_page.ask, chat_page.open_app, chat_page.ANSWER_TIMEOUT_MS

PAGE_URL = "https://www.example.org/generiques-java.html"
# real markup around the article: none of it may run, and nothing it names may be fetched
HOSTILE_MARKUP = (
    '<script>alert("script")</script><img src="http://example.com/pixel.png" onerror="alert(1)">'
    '<a href="javascript:alert(2)">cliquez ici</a><iframe src="http://example.com/frame"></iframe>'
    '<svg onload="alert(3)"></svg><object data="http://example.com/x.swf"></object>'
    '<style>@import url("http://example.com/x.css");</style>'
)
VALMY_QUESTION = "Quand le moulin de Valmy a-t-il été reconstruit ?"


@pytest.fixture(scope="module")
def corpus(real_settings, tmp_path_factory) -> rag.Settings:
    settings = copy_corpus(real_settings, tmp_path_factory.mktemp("ui-formats"))
    (settings.seeds_dir / "generiques.html").write_bytes(
        make.article_page(HOSTILE_SEED, url=PAGE_URL, extra_body=HOSTILE_MARKUP).replace(
            b"</head>", HOSTILE_MARKUP.encode() + b'<meta http-equiv="refresh" content="0;url=http://example.com/"></head>'
        )
    )
    filler = [f"Le chapitre {n} raconte l'histoire de la commune de Valmy, de ses fermes et de ses chemins." for n in range(30)]
    answer = "Le moulin de Valmy fut reconstruit en 2005 par la commune, à l'identique du moulin de la bataille de 1792."
    (settings.seeds_dir / "valmy.pdf").write_bytes(make.pdf_document([*filler, answer, *filler[:5]], title="Histoire de Valmy"))
    rag.build_index(settings=settings)  # incremental: only the two new documents are embedded
    return settings


@pytest.fixture(scope="module")
def server_url(corpus) -> Iterator[str]:
    with live_server(corpus) as url:
        yield url


def test_a_hostile_web_page_shows_as_text_and_its_link_is_never_fetched(watched, server_url, corpus):
    text = rag.document_text("generiques.html", settings=corpus)
    assert "alert(\"script\")" not in text and "cliquez ici" in text  # the script was never indexed
    page = watched.page
    open_app(page, server_url)
    ask(page, HOSTILE_QUESTION)
    reply = page.locator("#rag-chat .rag-answer").last
    card = reply.locator(".rag-card").first
    assert "generiques.html" in card.inner_text()
    shown = reply.inner_text()
    for hostile in HOSTILE_STRINGS:
        assert hostile in shown, hostile
    assert reply.locator("script, img, iframe, object, embed, svg, style, meta").count() == 0
    link = card.locator("a.rag-card-link")
    assert link.get_attribute("href") == PAGE_URL
    assert set((link.get_attribute("rel") or "").split()) >= {"noopener", "noreferrer"}
    assert not reply.locator("a[href^='javascript']").count()
    page.wait_for_timeout(1500)  # give anything that might fire or load a moment to do so
    assert watched.dialogs == []
    assert watched.foreign_requests() == []
    assert not any("example." in u for u in watched.requests)


def test_a_pdf_card_names_the_page_of_the_quote(watched, server_url):
    page = watched.page
    open_app(page, server_url)
    ask(page, VALMY_QUESTION)
    card = page.locator("#rag-chat .rag-answer").last.locator(".rag-card").first
    card.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "valmy.pdf" in card.inner_text() and "2005" in card.inner_text()
    assert card.locator(".rag-card-page").inner_text() == "page 2"
