"""The readers on real files made by real libraries: web pages (trafilatura), PDFs (fpdf2 -> pypdf), Word
files (python-docx), and their damaged, encrypted, scanned and oversized variants; the kind told from the
content, not the name."""

from __future__ import annotations

import pytest

from rag.documents.chunk import chunk_document
from rag.documents.docx import check_archive
from rag.documents.formats import kind_of, read_document, sniff
from tests import doc_factory as make
from tests.conftest import SEEDS

SEED = (SEEDS / "000_7e6f9a2e3c46846f.txt").read_text(encoding="utf-8")
TITLE = "Les leçons d'Amazon pour la culture made in France"
PARAGRAPHS = make.paragraphs_of(SEED)
URL = "https://www.journal-du-commerce.example/articles/lecons.html"


@pytest.fixture(scope="module")
def printed_pdf() -> bytes:
    return make.pdf_document(PARAGRAPHS, title=TITLE, author="Abeline Majorel", url=URL)


def _words(text: str) -> str:
    return " ".join(text.split())


# --- web pages


def test_web_page_keeps_the_article_and_drops_the_chrome_scripts_and_styles():
    doc, reason = read_document("lecons.html", make.article_page(SEED, url=URL, author="Abeline Majorel",
                                                                 date="2015-03-02T10:00:00+01:00"))
    assert reason == "" and doc.kind == "html"
    assert (doc.title, doc.url, doc.author, doc.date) == (TITLE, URL, "Abeline Majorel", "2015-03-02")
    assert doc.text.startswith(TITLE + "\n\n")
    assert "Brad Stone s’attardait sur l’ambition" in doc.text
    for chrome in ("Accueil", "En poursuivant votre navigation", "Laisser un commentaire", "Mentions légales",
                   "Tous droits réservés", "Twitter Facebook"):
        assert chrome not in doc.text, chrome
    for code in (make.SCRIPT_MARKER, make.STYLE_MARKER, "dataLayer", "injected", "position: fixed"):
        assert code not in doc.text, code


def test_markup_written_as_text_in_a_page_stays_text():
    hostile = "<p>Un article sur la sécurité des pages : &lt;script&gt;alert(1)&lt;/script&gt; reste du texte, " \
              "comme ![x](http://example.com/x.png) et &lt;img src=x onerror=alert(1)&gt;.</p>"
    doc, _ = read_document("p.html", make.article_page(SEED, extra_body=hostile))
    assert "<script>alert(1)</script> reste du texte" in doc.text
    assert "![x](http://example.com/x.png)" in doc.text and "<img src=x onerror=alert(1)>" in doc.text


@pytest.mark.parametrize("canonical", ["javascript:alert(1)", "data:text/html,<script>x</script>", "/relative/path",
                                       "ftp://example.com/a"])
def test_only_an_http_address_becomes_the_document_url(canonical):
    page = make.article_page(SEED).replace(b"<meta charset", f'<link rel="canonical" href="{canonical}"><meta charset'.encode())
    doc, _ = read_document("p.html", page)
    assert doc.url == ""


def test_a_page_without_an_article_is_skipped_with_a_reason():
    doc, reason = read_document("menu.html", b"<html><body><nav><a href=/>Accueil</a></nav><script>go()</script></body></html>")
    assert doc is None and reason == "no article text found in the page (only menus, scripts or markup)"


# --- PDFs


def test_pdf_pages_paragraphs_header_footer_and_metadata(printed_pdf):
    doc, reason = read_document("lecons.pdf", printed_pdf)
    assert reason == "" and doc.kind == "pdf"
    pages = make.pdf_pages_of(printed_pdf)
    assert len(pages) >= 3 and len(doc.page_starts) == len(pages) and doc.page_starts[0] == 0
    assert (doc.title, doc.author, doc.url) == (TITLE, "Abeline Majorel", URL)  # the address from the printed footer
    assert "02/03/2015 10:14" not in doc.text and URL not in doc.text  # header and footer left out
    # lines are joined back into paragraphs: a sentence that wraps in the PDF is one line of the text
    sentence = "Dans sa biographie, Amazon, la boutique à tout vendre, Brad Stone s’attardait sur l’ambition"
    assert sentence in doc.text
    # every paragraph of the seed is in the text, in order, and each page's text starts on that page
    cursor = 0
    for paragraph in PARAGRAPHS[3:]:
        found = doc.text.find(paragraph[:40], cursor)
        assert found >= 0, paragraph
        cursor = found
    for number, start in enumerate(doc.page_starts, 1):
        assert _words(doc.text[start : start + 40])[:25].replace(" ", "") in "".join(pages[number - 1].split())
        assert doc.page_at(start) == number


def test_pdf_renamed_txt_is_read_as_a_pdf(printed_pdf):
    doc, _ = read_document("lecons.txt", printed_pdf)
    assert doc.kind == "pdf" and "%PDF" not in doc.text


def test_encrypted_pdf_with_a_password_is_skipped_and_one_locked_only_for_editing_is_read():
    doc, reason = read_document("p.pdf", make.encrypted_pdf(PARAGRAPHS[4:10], user_password="secret"))
    assert doc is None and reason == "encrypted PDF that needs a password (save an unprotected copy)"
    doc, reason = read_document("p.pdf", make.encrypted_pdf(PARAGRAPHS[4:10], user_password=""))
    assert reason == "" and "Amazon" in doc.text


def test_damaged_and_scanned_pdfs_are_skipped_with_what_is_wrong(printed_pdf):
    doc, reason = read_document("cut.pdf", make.damaged(printed_pdf))
    assert doc is None and reason.startswith("damaged PDF, its text cannot be read (")
    doc, reason = read_document("scan.pdf", make.scanned_pdf())
    assert doc is None and reason == "PDF without a text layer (a scanned document? run OCR on it first)"
    noise = printed_pdf[:2000] + bytes(range(256)) * 40 + printed_pdf[-500:]
    doc, reason = read_document("noise.pdf", noise)
    assert doc is None and reason.startswith(("damaged PDF", "PDF without any text (empty or damaged pages)"))


def test_every_chunk_of_a_pdf_points_into_its_text_and_knows_its_page(printed_pdf, fake):
    doc, _ = read_document("lecons.pdf", printed_pdf)
    chunks = chunk_document(doc, chunk_tokens=128, overlap_tokens=16, count_tokens=fake.count_tokens, first_id=0)
    pages = make.pdf_pages_of(printed_pdf)
    assert {doc.page_at(c.start) for c in chunks} == set(range(1, len(pages) + 1))
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        first_words = "".join(c.text.split())[:20]
        assert first_words in "".join(pages[doc.page_at(c.start) - 1].split()), c.text[:60]


# --- Word files


def test_word_paragraphs_and_tables_in_reading_order_with_metadata():
    raw = make.word_document(
        ["# Le moulin de Valmy", "Le moulin fut reconstruit en 2005 par la commune.",
         [["année", "événement"], ["1792", "la bataille de Valmy"], ["2005", "la reconstruction"]],
         "Il se visite tout l'été."],
        title="Le moulin", author="Office de tourisme",
    )
    doc, reason = read_document("moulin.docx", raw)
    assert reason == "" and doc.kind == "docx"
    assert (doc.title, doc.author) == ("Le moulin", "Office de tourisme") and len(doc.date) == 10
    assert doc.text == (
        "Le moulin de Valmy\n\nLe moulin fut reconstruit en 2005 par la commune.\n\n"
        "année | événement\n\n1792 | la bataille de Valmy\n\n2005 | la reconstruction\n\nIl se visite tout l'été."
    )


def test_word_files_that_are_not_what_they_say_are_skipped():
    good = make.word_document(PARAGRAPHS[:10], title=TITLE)
    assert read_document("cut.docx", make.damaged(good))[1].startswith("damaged Word document")
    assert read_document("a.docx", make.plain_zip())[1] == "a ZIP archive, not a Word document (.docx)"
    assert read_document("old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))[1] == (
        "named as a Word document (.docx) but it is an old Office file (.doc, .xls); save it as .docx"
    )
    assert read_document("empty.docx", make.word_document([""]))[1] == "Word document without text"


def test_a_word_file_that_unpacks_beyond_the_limit_is_refused_before_it_is_opened():
    bomb = make.word_bomb(make.word_document(PARAGRAPHS[:5]), 80 << 20)
    assert len(bomb) < 1_000_000
    doc, reason = read_document("bomb.docx", bomb)
    assert doc is None and reason.startswith("Word document that unpacks to 8") and "the limit is 64,000,000" in reason
    # headers that understate the size do not help: every member is unpacked and counted
    assert check_archive(bomb, 10_000_000).startswith("Word document that unpacks to")


# --- the kind from the content


@pytest.mark.parametrize("name, raw, expected", [
    ("a.txt", b"%PDF-1.7\n...", ("pdf", "")),
    ("a.html", b"Just some text, no markup at all.", ("html", "")),
    ("a.txt", b"\xef\xbb\xbf  <!-- saved -->\n<!DOCTYPE html><html>", ("html", "")),
    ("a.md", b"# Titre\n\nDu <b>Markdown</b> avec un peu de HTML.", ("markdown", "")),
    ("a.pdf", b"Du texte dans un fichier nomm\xc3\xa9 .pdf", (None, "named as a PDF but it is text")),
    ("a.docx", b"<html><body>404</body></html>", (None, "named as a Word document (.docx) but it is an HTML page")),
    ("a.txt", b"\x89PNG\r\n\x1a\n\x00\x00", (None, "binary file (a PNG image, not text)")),
])
def test_kind_of(name, raw, expected):
    assert kind_of(name, raw) == expected


def test_sniff_does_not_take_an_article_about_pdf_for_a_pdf():
    assert sniff(b"Le format %PDF-1.7 est une norme ISO.\n" * 3) == "text"
