"""The dev-set questions over the seeds converted to web pages and to PDFs (real model): recall@1 within 2
points of the .txt seeds, PDF citations on the page their quote is printed on, and every citation's offsets
pointing into the stored text of its document."""

from __future__ import annotations

from dataclasses import replace

import pytest

import rag
from rag import evaluate
from tests import doc_factory as make
from tests.conftest import DEV_QA, SEEDS

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _converted(kind: str, tmp_path_factory) -> tuple[rag.Settings, dict[str, str]]:
    base = tmp_path_factory.mktemp(f"seeds-as-{kind}")
    names = make.convert_seeds(SEEDS, base / "seeds", kind)
    settings = rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index")
    rag.build_index(settings=settings)
    return settings, names


@pytest.fixture(scope="module")
def as_html(real_embedder, tmp_path_factory):
    return _converted("html", tmp_path_factory)


@pytest.fixture(scope="module")
def as_pdf(real_embedder, tmp_path_factory):
    return _converted("pdf", tmp_path_factory)


def _run(settings: rag.Settings, names: dict[str, str] | None = None):
    questions = evaluate.load_questions(DEV_QA)
    if names:
        questions = [q if q.source is None else replace(q, source=names[q.source]) for q in questions]
    searches = [rag.search(q.q, k=10, settings=settings) for q in questions]
    answers = [rag.answer(q.q, settings=settings) for q in questions]
    return evaluate.score(questions, searches, answers), searches, answers


@pytest.fixture(scope="module")
def txt_recall(real_settings) -> float:
    return _run(real_settings)[0].recall_at[1]


def _offsets_hold(settings, searches, answers) -> int:
    """Every hit and citation slices its document's stored text exactly; returns how many were checked."""
    checked = 0
    texts: dict[str, str] = {}
    for passage in [h for hits in searches for h in hits] + [c for a in answers for c in a.citations]:
        text = texts.setdefault(passage.source, rag.document_text(passage.source, settings=settings))
        assert text[passage.start : passage.end] == passage.text
        checked += 1
    for c in (c for a in answers for c in a.citations):
        assert texts[c.source][c.quote_start : c.quote_end] == c.quote
    return checked


def test_web_pages_answer_as_well_as_the_text_seeds(as_html, txt_recall, capsys):
    settings, names = as_html
    result, searches, answers = _run(settings, names)
    with capsys.disabled():
        print(f"\n[dev set as web pages] recall@1 {result.recall_at[1]:.3f} (text seeds {txt_recall:.3f})")
    assert result.recall_at[1] >= txt_recall - 0.02
    assert _offsets_hold(settings, searches, answers) > 100
    cited = [c for a in answers for c in a.citations]
    assert cited and all(c.url == f"{make.SITE}{c.source.removesuffix('.html')}.html" and c.page is None for c in cited)


def test_pdfs_answer_as_well_as_the_text_seeds_and_cite_the_right_page(as_pdf, txt_recall, capsys):
    settings, names = as_pdf
    result, searches, answers = _run(settings, names)
    cited = [c for a in answers for c in a.citations]
    on_page = 0
    for c in cited:
        printed = make.pdf_pages_of((settings.seeds_dir / c.source).read_bytes())
        assert 1 <= c.page <= len(printed)
        # pypdf's own text of that page (independent of the reader's offsets) holds the quote's first words
        on_page += "".join(c.quote.split())[:40].casefold() in "".join(printed[c.page - 1].split()).casefold()
    with capsys.disabled():
        print(f"\n[dev set as PDFs] recall@1 {result.recall_at[1]:.3f} (text seeds {txt_recall:.3f}); "
              f"{on_page}/{len(cited)} citations on the page of their quote")
    assert result.recall_at[1] >= txt_recall - 0.02
    assert cited and on_page == len(cited)
    assert _offsets_hold(settings, searches, answers) > 100
