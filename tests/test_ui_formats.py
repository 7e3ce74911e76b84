"""The chat page and documents of every format (fake model, live server): the link field (a loopback link
refused unless the server allows private links; absent when read-only), uploads of PDFs and Word files,
and the cards' page and original-page link."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from gradio_client import Client, handle_file

import rag
from ui import render

from . import doc_factory as make
from .ui_helpers import free_port
from .web_server import ARTICLE_TITLE, web_site


@contextmanager
def running(settings: rag.Settings, **options) -> Iterator[Client]:
    from ui.server import start

    app, url = start(settings, host="127.0.0.1", port=free_port(), **options)
    try:
        yield Client(url, verbose=False)
    finally:
        app.close()


@pytest.fixture(scope="module")
def site():
    with web_site() as served:
        yield served


def test_the_link_field_refuses_this_machine_unless_allowed(fake_settings, site):
    rag.build_index(settings=fake_settings)
    with running(fake_settings) as client:
        notice, panel, kept = client.predict(f"{site.base}/article.html", api_name="/add_url")
        assert "rag-notice-error" in notice and "not a public internet address" in notice
        assert kept == f"{site.base}/article.html"  # left in the box to be corrected
        notice, _, _ = client.predict("file:///etc/passwd", api_name="/add_url")
        assert "Only http:// and https:// links" in notice
    assert not any(p.suffix == ".html" for p in fake_settings.seeds_dir.iterdir())
    with running(fake_settings, allow_private_urls=True) as client:
        notice, panel, cleared = client.predict(f"{site.base}/r1", api_name="/add_url")
        assert "rag-notice-success" in notice and render.escape(f"Added {ARTICLE_TITLE}.html") in notice and cleared == ""
        assert "<strong>6</strong> documents" in panel


def test_read_only_has_no_link_field(fake_settings):
    rag.build_index(settings=fake_settings)
    with running(fake_settings, read_only=True, allow_private_urls=True) as client:
        assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/chat"}


def test_pdf_and_word_uploads_are_indexed(fake_settings, tmp_path):
    rag.build_index(settings=fake_settings)
    pdf = tmp_path / "moulin.pdf"
    pdf.write_bytes(make.pdf_document(["Le moulin de Valmy fut reconstruit en 2005 par la commune."] * 40))
    word = tmp_path / "tatin.docx"
    word.write_bytes(make.word_document(["La tarte Tatin fut inventée par les sœurs Tatin à Lamotte-Beuvron."]))
    with running(fake_settings) as client:
        for upload in (pdf, word):
            notice, _, _ = client.predict(handle_file(str(upload)), False, api_name="/add_document")
            assert "rag-notice-success" in notice and f"Added {upload.name}" in notice
    assert rag.index_status(settings=fake_settings).documents == 7


# --- the cards


CITATION = rag.Citation(
    n=1, source="rapport.pdf", text="Le moulin fut reconstruit en 2005.", start=10, end=44,
    quote="Le moulin fut reconstruit en 2005.", score=0.9, title="Le moulin", quote_start=10, quote_end=44,
    page=3, url="https://www.example.fr/moulin?a=1&b=<2>",
)


def test_a_card_shows_the_page_and_links_to_the_original_without_leaking_the_page():
    card = render.render_citation_card(CITATION, 1)
    assert '<span class="rag-card-page">page 3</span>' in card
    assert ('<a class="rag-card-link" href="https://www.example.fr/moulin?a=1&amp;b=&lt;2&gt;" target="_blank" '
            'rel="noopener noreferrer" referrerpolicy="no-referrer"') in card
    text = render.answer_as_text(rag.Answer("q", "Le moulin fut reconstruit en 2005. [1]", True, [CITATION]))
    assert "[1] rapport.pdf, page 3, characters 10-44" in text and "    https://www.example.fr/moulin?a=1&b=<2>" in text


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "//evil.example/x", ""])
def test_only_http_addresses_become_links(url):
    from dataclasses import replace

    card = render.render_citation_card(replace(CITATION, url=url, page=None), 1)
    assert "<a " not in card and "rag-card-page" not in card
