"""Documents of every format through the index (fake model): the offsets contract for every chunk and hit,
pages and addresses on hits, the documents table kept by incremental builds, an older build rebuilt, the
per-format report, uploads of every format and adding by link (against a local web server)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import pytest

import rag
from rag.checksum import sha256_file
from rag.cli import main as cli_main
from rag.documents.links import link_file, read_link
from rag.documents.names import MAX_NAME_BYTES
from rag.store import CHUNKS_DB, MANIFEST, IndexReader, current_version, read_manifest
from tests import doc_factory as make
from tests.web_server import ARTICLE_TITLE, web_site

PDF_URL = "https://www.journal-du-commerce.example/articles/000_7e6f9a2e3c46846f.html"


@pytest.fixture
def mixed(fake, seeds_copy, tmp_path) -> rag.Settings:
    """The five seeds as text, plus seed 0 as a page, seed 1 as a PDF, seed 2 as a Word file, and one damaged PDF."""
    texts = sorted(seeds_copy.glob("*.txt"))
    for seed, kind in zip(texts, ("html", "pdf", "docx")):
        name, raw = make.convert_seed(seed.read_text(encoding="utf-8"), "copie-" + seed.stem, kind)
        (seeds_copy / name).write_bytes(raw)
    (seeds_copy / "coupe.pdf").write_bytes(make.damaged((seeds_copy / f"copie-{texts[1].stem}.pdf").read_bytes()))
    return rag.Settings(seeds_dir=seeds_copy, index_dir=tmp_path / "index", model=fake.model_id)


def _chunks(settings) -> list[rag.Chunk]:
    reader = IndexReader.open(settings.index_dir)
    try:
        return list(reader.iter_chunks())
    finally:
        reader.close()


def test_every_chunk_of_every_format_points_into_its_stored_text(mixed):
    report = rag.build_index(settings=mixed)
    assert report.by_format == {"docx": 1, "html": 1, "pdf": 1, "text": 5}
    assert [s for s, _ in report.skipped] == ["coupe.pdf"] and report.skipped[0][1].startswith("damaged PDF")
    chunks = _chunks(mixed)
    assert {c.source.rsplit(".", 1)[1] for c in chunks} == {"txt", "html", "pdf", "docx"}
    texts = {}
    for c in chunks:
        text = texts.setdefault(c.source, rag.document_text(c.source, settings=mixed))
        assert text[c.start : c.end] == c.text
        assert all(0 <= a < b <= len(c.text) for a, b in c.sentences)
    # a text seed's stored text is the file itself
    seed = sorted(mixed.seeds_dir.glob("0*.txt"))[3]
    assert rag.document_text(seed.name, settings=mixed) == seed.read_text(encoding="utf-8")
    with pytest.raises(rag.DocumentNotFoundError, match="holds no document named 'coupe.pdf'"):
        rag.document_text("coupe.pdf", settings=mixed)


def test_hits_carry_the_pdf_page_and_the_page_address(mixed):
    rag.build_index(settings=mixed)
    pdf_name = next(p.name for p in mixed.seeds_dir.glob("copie-*.pdf"))
    html_name = next(p.name for p in mixed.seeds_dir.glob("copie-*.html"))
    pdf_text = rag.document_text(pdf_name, settings=mixed)
    printed = make.pdf_pages_of((mixed.seeds_dir / pdf_name).read_bytes())
    seen_pages = set()
    for question in ("Malraux siècle du client", "conseiller client personnel", "Le client est roi", "magasin"):
        for hit in rag.search(question, k=20, settings=mixed):
            assert rag.document_text(hit.source, settings=mixed)[hit.start : hit.end] == hit.text
            if hit.source == pdf_name:
                assert hit.url.endswith("001_75e3d22749f12467.html") and hit.page is not None
                # the page's printed text holds the hit's first words
                assert "".join(hit.text.split())[:15] in "".join(printed[hit.page - 1].split())
                seen_pages.add(hit.page)
            elif hit.source == html_name:
                assert hit.url.endswith("000_7e6f9a2e3c46846f.html") and hit.page is None
            else:
                assert (hit.page, hit.url) == (None, "")
    assert seen_pages and len(pdf_text) > 0


def test_incremental_builds_keep_the_documents_table_and_do_not_parse_unchanged_seeds(mixed, monkeypatch):
    rag.build_index(settings=mixed)
    import rag.documents.discover as discover
    import rag.indexer as indexer

    parsed: list[str] = []
    real_parse = discover.parse_seed

    def counted(source, loaded):
        parsed.append(source)
        return real_parse(source, loaded)

    monkeypatch.setattr(indexer, "parse_seed", counted)  # the build's
    monkeypatch.setattr(discover, "parse_seed", counted)  # rag.index_status's
    docx_name = next(p.name for p in mixed.seeds_dir.glob("*.docx"))
    (mixed.seeds_dir / docx_name).write_bytes(make.word_document(["Le moulin de Valmy fut reconstruit en 2005 par la commune."]))
    (mixed.seeds_dir / next(p.name for p in mixed.seeds_dir.glob("copie-*.html"))).unlink()
    report = rag.build_index(settings=mixed)
    assert (report.added, report.changed, report.removed, report.unchanged) == (0, 1, 1, 6)
    assert sorted(parsed) == sorted([docx_name, "coupe.pdf"])  # the changed seed, and the one still unreadable
    assert rag.document_text(docx_name, settings=mixed) == "Le moulin de Valmy fut reconstruit en 2005 par la commune."
    reader = IndexReader.open(mixed.index_dir)
    assert set(reader.documents) == set(reader.manifest.seeds) and len(reader.documents) == 7
    reader.close()
    parsed.clear()
    assert rag.index_status(settings=mixed).stale is False and parsed == ["coupe.pdf"]


def test_a_build_from_before_the_documents_table_is_rebuilt_and_says_why(mixed):
    rag.build_index(settings=mixed)
    version = current_version(mixed.index_dir)
    db = sqlite3.connect(version / CHUNKS_DB)
    db.execute("DROP TABLE documents")
    db.commit()
    db.execute("VACUUM")
    db.close()
    old = read_manifest(version)
    old = replace(old, chunker={**old.chunker, "chunker_version": 2}, files={**old.files, CHUNKS_DB: sha256_file(version / CHUNKS_DB)})
    (version / MANIFEST).write_text(old.to_json(), encoding="utf-8")
    with pytest.raises(rag.IndexMismatchError, match="older version that did not keep the documents' text; run `rag index`"):
        rag.document_text("000_7e6f9a2e3c46846f.txt", settings=mixed)
    report = rag.build_index(settings=mixed)
    assert report.full_rebuild and "chunker_version: 2 -> 3" in report.rebuild_reason
    assert rag.document_text("000_7e6f9a2e3c46846f.txt", settings=mixed).startswith("Actualité web")


def test_rag_index_reports_each_format_and_every_skipped_file(mixed, capsys):
    args = ["--model", mixed.model, "index", "--seeds", str(mixed.seeds_dir), "--index", str(mixed.index_dir)]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "Documents by format: docx 1, html 1, pdf 1, text 5." in out
    assert "  skipped coupe.pdf: damaged PDF, its text cannot be read (" in out
    assert cli_main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["by_format"] == {"docx": 1, "html": 1, "pdf": 1, "text": 5}


# --- adding documents


def test_upload_accepts_every_format_and_refuses_what_it_cannot_read(fake_settings):
    paragraphs = ["Le moulin de Valmy fut reconstruit en 2005 par la commune, à l'identique."] * 3
    source, report = rag.add_document("moulin.pdf", make.pdf_document(paragraphs), settings=fake_settings)
    assert source == "moulin.pdf" and report.by_format == {"pdf": 1, "text": 5}
    source, _ = rag.add_document("moulin.docx", make.word_document(paragraphs), settings=fake_settings)
    page = make.article_page("Le moulin de Valmy\n\n" + "\n".join(paragraphs))
    source, report = rag.add_document("C:\\Users\\moi\\moulin.htm", page, settings=fake_settings)
    assert source == "moulin.htm" and report.by_format == {"docx": 1, "html": 1, "pdf": 1, "text": 5}
    with pytest.raises(rag.InvalidDocumentError, match=r"^scan.pdf cannot be indexed: PDF without a text layer"):
        rag.add_document("scan.pdf", make.scanned_pdf(), settings=fake_settings)
    with pytest.raises(rag.InvalidDocumentError, match=r"^bombe.docx cannot be indexed: Word document that unpacks to"):
        rag.add_document("bombe.docx", make.word_bomb(make.word_document(paragraphs), 70 << 20), settings=fake_settings)
    with pytest.raises(rag.InvalidDocumentError, match=r"only .txt, .md, .markdown, .html, .htm, .pdf, .docx files"):
        rag.add_document("notes.odt", b"PK\x03\x04", settings=fake_settings)
    assert not (fake_settings.seeds_dir / "scan.pdf").exists() and not (fake_settings.seeds_dir / "bombe.docx").exists()


def test_an_over_long_name_is_shortened_not_an_os_error(fake_settings):
    name = "é" * 150 + "x" * 150 + ".txt"
    source, report = rag.add_document(name, b"Un article au nom trop long pour le disque.", settings=fake_settings)
    assert source.endswith(".txt") and len(source.encode()) <= MAX_NAME_BYTES and source.startswith("é" * 80)
    assert (fake_settings.seeds_dir / source).is_file()
    assert [(f.source, f.status) for f in report.files if f.source == source] == [(source, "added")]


def test_adding_by_link_saves_the_page_under_its_title_with_its_address(fake_settings):
    with web_site() as site:
        source, report = rag.add_url(f"{site.base}/r1", settings=fake_settings)
        assert source == f"{ARTICLE_TITLE}.html" and [f.status for f in report.files if f.source == source] == ["added"]
        assert read_link(fake_settings.seeds_dir / source) == f"{site.base}/article.html"
        assert (fake_settings.seeds_dir / source).read_bytes() == site.page  # the page as it was served
        hits = rag.search("Brad Stone biographie", k=10, settings=fake_settings)
        assert any(h.source == source and h.url == f"{site.base}/article.html" for h in hits)
        # the same link again replaces its file; a PDF link goes to the PDF reader, with pages
        again, report = rag.add_url(f"{site.base}/article.html", settings=fake_settings)
        assert again == source and (report.added, report.changed) == (0, 0)
        pdf, report = rag.add_url(f"{site.base}/rapport.pdf", settings=fake_settings)
        assert pdf == f"{ARTICLE_TITLE}.pdf" and report.by_format == {"html": 1, "pdf": 1, "text": 5}
        hits = [h for h in rag.search("Brad Stone biographie", k=40, settings=fake_settings) if h.source == pdf]
        assert hits and all(h.page >= 1 and h.url == f"{site.base}/rapport.pdf" for h in hits)
        text, _ = rag.add_url(f"{site.base}/texte", settings=fake_settings)
        assert text.endswith(".txt")
        for path, error in (("/missing", "404 Not Found"), ("/image.png", "serves image/png")):
            with pytest.raises(rag.FetchError, match=error):
                rag.add_url(site.base + path, settings=fake_settings)
        with pytest.raises(rag.FetchError, match="not a public internet address"):
            rag.add_url(f"{site.base}/article.html", settings=fake_settings, allow_private=False)
    assert sorted(p.name for p in fake_settings.seeds_dir.iterdir() if not p.name.startswith("0")) == sorted(
        [source, link_file(fake_settings.seeds_dir / source).name, pdf, link_file(fake_settings.seeds_dir / pdf).name,
         text, link_file(fake_settings.seeds_dir / text).name]
    )


def test_replacing_a_fetched_document_by_an_upload_drops_its_old_address(fake_settings):
    with web_site() as site:
        source, _ = rag.add_url(f"{site.base}/article.html", settings=fake_settings)
    rag.add_document(source, make.article_page("Un autre article\n\n" + "Une page écrite à la main, sans adresse. " * 5),
                     settings=fake_settings, overwrite=True)
    assert not link_file(fake_settings.seeds_dir / source).exists()
    assert all(h.url == "" for h in rag.search("page écrite à la main", k=10, settings=fake_settings))


def test_rag_add_takes_files_and_links_and_reports_each_failure(fake_settings, tmp_path, capsys):
    note = tmp_path / "note.docx"
    note.write_bytes(make.word_document(["Le moulin de Valmy fut reconstruit en 2005 par la commune."]))
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"<html>404</html>")
    base = ["--model", fake_settings.model, "add", "--seeds", str(fake_settings.seeds_dir), "--index", str(fake_settings.index_dir)]
    with web_site() as site:
        code = cli_main([*base, str(note), f"{site.base}/article.html", str(bad), "ftp://example.com/a.pdf"])
    out, err = capsys.readouterr()
    assert code == 2
    assert f"Added {note} as " in out and f"Added {site.base}/article.html as " in out
    assert f"rag: error: {bad}: bad.pdf cannot be indexed: named as a PDF but it is an HTML page" in err
    assert "rag: error: ftp://example.com/a.pdf: only http:// and https:// links can be added" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2


def test_names_of_added_documents_are_safe_and_readable(tmp_path):
    from rag.documents.names import link_name, upload_name

    extensions = rag.Settings().extensions
    assert upload_name("../../etc/notes.txt", extensions) == "notes.txt"
    assert upload_name("..\\..\\rapport final.PDF", extensions) == "rapport final.pdf"
    assert upload_name(".cache.md", extensions) == "cache.md"
    with pytest.raises(rag.InvalidDocumentError, match="only .txt"):
        upload_name("notes.txt.exe", extensions)
    url = "https://www.example.fr/articles/2015/les-lecons-d-amazon?x=1"
    assert link_name('Les leçons d’Amazon : "culture" / <France>?', url, ".html", tmp_path) == (
        "Les leçons d'Amazon culture France.html", False)
    assert link_name("", url, ".pdf", tmp_path, hint="../../rapport annuel.pdf") == ("rapport annuel.pdf", False)
    assert link_name("", url, ".pdf", tmp_path) == ("les-lecons-d-amazon.pdf", False)
    assert link_name("...", "https://www.example.fr/", ".html", tmp_path) == ("www.example.fr.html", False)
