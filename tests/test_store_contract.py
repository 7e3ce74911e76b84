"""One contract, both store backends: the FAISS + SQLite folder and Milvus (Milvus Lite 2.5, the real
engine, in-process). Builds, incremental changes, refusals and answers must not depend on the store."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest

import rag
from rag.model import FakeEmbedder
from rag.query import retrieve
from rag.query.lexical import LexicalIndex, tokens
from rag.store.backend import open_store
from tests import doc_factory as make
from tests.conftest import DEV_QA, REPO
from tests.milvus_helpers import forget_store
from tests.robust_helpers import write_corpus

pytest.importorskip("pymilvus")
TATIN = "# La tarte Tatin\n\nLa tarte Tatin fut inventée par les sœurs Tatin, à Lamotte-Beuvron, en Sologne.\n"
PLACED = ["Malraux siècle du client", "conseiller client personnel", "Le client est roi", "magasin"]
QUESTIONS = ["service client Amazon", "why do French trust pure-players?", "Qui a écrit la biographie d'Amazon ?",
             "quel est le prix moyen d'un livre ?", "Fnac fidélité"]


@pytest.fixture(params=["faiss", "lite"])
def store_settings(request, fake_settings, tmp_path):
    if request.param == "faiss":
        yield fake_settings
        return
    settings = fake_settings.with_(store=str(tmp_path / "milvus" / "rag.db"))
    yield settings
    forget_store(settings)


@pytest.fixture
def lite_settings(fake_settings, tmp_path):
    settings = fake_settings.with_(store=str(tmp_path / "milvus" / "rag.db"))
    yield settings
    forget_store(settings)


def _snapshot(settings, questions=QUESTIONS) -> dict:
    """What a user sees: every chunk (bar ids), and the ranked passages and answers of the questions, with
    their pages and addresses, the answers' fitted confidence and reason; and that every chunk, hit and
    citation points into its document's stored text (``rag.document_text``)."""
    reader = open_store(settings).open_reader()
    chunks = list(reader.iter_chunks())
    texts = {source: rag.document_text(source, settings=settings) for source in {c.source for c in chunks}}
    assert all(texts[c.source][c.start : c.end] == c.text for c in chunks)
    rows = sorted((c.source, c.start, c.end, c.text, c.title, c.sentences) for c in chunks)
    hits = {q: rag.search(q, k=5, settings=settings) for q in questions}
    answers = {q: rag.answer(q, settings=settings) for q in questions}
    for h in [h for found in hits.values() for h in found] + [h for a in answers.values() for h in a.nearest]:
        assert texts[h.source][h.start : h.end] == h.text
    for c in [c for a in answers.values() for c in a.citations]:
        assert texts[c.source][c.start : c.end] == c.text and texts[c.source][c.quote_start : c.quote_end] == c.quote
    return {"rows": rows, "ntotal": reader.ntotal, "texts": texts,
            "hits": {q: [(h.source, h.start, h.end, h.score, h.page, h.url) for h in found]
                     for q, found in hits.items()},
            "answers": {q: (a.found, a.text, a.reason,
                            [(c.source, c.quote_start, c.quote_end, c.page, c.url) for c in a.citations],
                            [(h.source, h.start, h.end, h.page, h.url) for h in a.nearest])
                        for q, a in answers.items()},
            "confidence": {q: a.confidence for q, a in answers.items()}}


def assert_same(got: dict, want: dict) -> None:
    """Snapshots equal; the fitted confidences to a relative 1e-4: the engine's BM25, one of their signals,
    is a float32 sum (bm25s's to 1e-4 at worst); it moved one by 4e-6 (relative) on the dev set."""
    assert {k: v for k, v in got.items() if k != "confidence"} == {k: v for k, v in want.items() if k != "confidence"}
    assert got["confidence"].keys() == want["confidence"].keys()
    assert all(math.isclose(got["confidence"][q], c, rel_tol=1e-4, abs_tol=1e-9) for q, c in want["confidence"].items())


def add_formats(seeds_dir) -> None:
    """Three of the seeds also as a web page (with its address), a printed PDF (pages, address) and a Word file."""
    for seed, kind in zip(sorted(seeds_dir.glob("*.txt")), ("html", "pdf", "docx")):
        name, raw = make.convert_seed(seed.read_text(encoding="utf-8"), "copie-" + seed.stem, kind)
        (seeds_dir / name).write_bytes(raw)


@pytest.fixture
def mixed(store_settings, monkeypatch):
    """The seeds in every format; on Milvus, documents' texts cut into parts of 700 characters, so that
    every text spans several."""
    from rag.store.milvus import documents

    monkeypatch.setattr(documents, "PART_CHARS", 700)
    add_formats(store_settings.seeds_dir)
    return store_settings


def test_documents_texts_pages_and_addresses_on_either_store(mixed):
    report = rag.build_index(settings=mixed)
    assert report.by_format == {"docx": 1, "html": 1, "pdf": 1, "text": 5}
    first = _snapshot(mixed, PLACED)  # every chunk, hit and citation points into document_text
    pdf = next(p.name for p in mixed.seeds_dir.glob("copie-*.pdf"))
    html = next(p.name for p in mixed.seeds_dir.glob("copie-*.html"))
    text = sorted(mixed.seeds_dir.glob("0*.txt"))[3]
    assert first["texts"][text.name] == text.read_text(encoding="utf-8")
    placed = [h for found in first["hits"].values() for h in found]
    assert {h[4] for h in placed if h[0] == pdf} - {None}  # pages
    assert {h[5] for h in placed if h[0] == pdf} == {make.SITE + pdf[:-4] + ".html"}
    assert {(h[4], h[5]) for h in placed if h[0] == html} == {(None, make.SITE + html[:-5] + ".html")}
    placed = [p for a in first["answers"].values() for p in a[3] + a[4] if p[0] == pdf]  # citations, nearest
    assert placed and all(p[3] is not None for p in placed)
    with pytest.raises(rag.DocumentNotFoundError, match="holds no document named 'absent.pdf'"):
        rag.document_text("absent.pdf", settings=mixed)
    # changed, removed, unchanged: each document's stored text follows its file
    (mixed.seeds_dir / html).unlink()
    text.write_text(text.read_text(encoding="utf-8") + "\nMise à jour : un rayon de livres d'occasion.\n", encoding="utf-8")
    report = rag.build_index(settings=mixed)
    assert (report.changed, report.removed, report.unchanged) == (1, 1, 6)
    after = _snapshot(mixed, PLACED)
    assert after["texts"][text.name] == text.read_text(encoding="utf-8") and html not in after["texts"]
    assert {s: t for s, t in after["texts"].items() if s != text.name} == {
        s: t for s, t in first["texts"].items() if s not in (text.name, html)}
    with pytest.raises(rag.DocumentNotFoundError):
        rag.document_text(html, settings=mixed)
    rag.api._readers.clear()
    assert_same(_snapshot(mixed, PLACED), after)  # read back from the store alone


def test_build_search_and_reload(store_settings, fake):
    report = rag.build_index(settings=store_settings)
    assert report.added == 5 and report.total_chunks == report.chunks_embedded > 0
    first = _snapshot(store_settings)
    assert first["ntotal"] == report.total_chunks == len(first["rows"])
    rag.api._readers.clear()
    retrieve._lexical_cache.clear()
    assert_same(_snapshot(store_settings), first)  # what is stored alone gives the same answers
    reader = open_store(store_settings).open_reader()
    q = fake.embed_query("service client Amazon")
    dense = reader.search(q, 3)
    assert np.allclose(reader.vectors_for([i for i, _ in dense]) @ q, [s for _, s in dense], atol=1e-5)
    chunk = reader.chunks([dense[0][0]])[0]
    sids = [chunk.id * 1024 + j for j in range(len(chunk.sentences))]
    assert reader.sentence_vectors_for(sids).shape == (len(sids), fake.dim)
    assert rag.index_status(settings=store_settings).chunks == report.total_chunks


def test_milvus_answers_like_faiss(fake_settings, lite_settings):
    """Every format: the same chunks, documents' texts, hits, answers, confidences, pages and addresses."""
    add_formats(fake_settings.seeds_dir)
    rag.build_index(settings=fake_settings)
    rag.build_index(settings=lite_settings)
    questions = QUESTIONS + PLACED + [json.loads(line)["q"] for line in DEV_QA.read_text().splitlines() if line.strip()]
    assert_same(_snapshot(lite_settings, questions), _snapshot(fake_settings, questions))


def test_incremental_changes_touch_only_their_rows_and_equal_a_full_build(store_settings, tmp_path):
    rag.build_index(settings=store_settings)
    before = open_store(store_settings).live_version()
    seeds = store_settings.seeds_dir
    write_corpus(seeds / "nouveaux", 2, seed=8)  # two added, in a subfolder
    first, *_, last = sorted(seeds.glob("*.txt"))
    first.write_text(first.read_text() + "\nMise à jour : la Fnac ouvre un rayon de livres d'occasion.\n")  # one changed
    last.unlink()  # one removed
    report = rag.build_index(settings=store_settings)
    assert (report.added, report.changed, report.removed, report.unchanged) == (2, 1, 1, 3)
    assert report.chunks_embedded == sum(f.chunks for f in report.files if f.status in ("added", "changed"))
    assert open_store(store_settings).live_version() != before
    incremental = _snapshot(store_settings)
    sources = {r[0] for r in incremental["rows"]}
    assert {"nouveaux/article_8_000.txt", "nouveaux/article_8_001.txt"} <= sources and last.name not in sources
    again = rag.build_index(settings=store_settings)
    assert (again.added, again.changed, again.removed, again.chunks_embedded) == (0, 0, 0, 0)
    full = rag.build_index(settings=store_settings, full=True)
    assert full.full_rebuild and full.chunks_embedded == full.total_chunks
    assert_same(_snapshot(store_settings), incremental)


def test_an_index_of_another_model_is_refused(store_settings):
    rag.build_index(settings=store_settings)
    other = FakeEmbedder(dim=32)
    other.model_id, other.fingerprint = "another-model", "other:1"
    rag.register_embedder(other)
    with pytest.raises(rag.IndexMismatchError, match=r"built with the model .*rag index --full"):
        rag.search("Amazon", settings=store_settings.with_(model="another-model"))
    report = rag.build_index(settings=store_settings.with_(model="another-model"))
    assert report.full_rebuild and "model changed" in report.rebuild_reason


def test_milvus_bm25_equals_bm25s_on_every_question_set(lite_settings):
    """The engine's BM25 (Milvus Lite 2.5) over the words bm25s counts gives bm25s's scores: it is used."""
    rag.build_index(settings=lite_settings)
    reader = open_store(lite_settings).open_reader()
    chunks = list(reader.iter_chunks())
    ours = LexicalIndex([c.id for c in chunks], [f"{c.title}\n{c.text}" for c in chunks])
    questions = [json.loads(line)["q"] for f in [DEV_QA, *sorted((REPO / "tests" / "data").glob("*_qa.jsonl"))]
                 for line in f.read_text().splitlines() if line.strip()]
    assert len(questions) > 400
    for q in questions:
        bm25 = ours.scores(q)
        want = {int(ours.ids[i]): float(bm25[i]) for i in range(len(bm25)) if bm25[i] > 0}
        got = dict(reader.lexical_top(tokens(q), len(chunks)))
        assert got.keys() == want.keys(), q
        assert all(abs(got[i] - want[i]) <= 1e-4 * max(1.0, want[i]) for i in want), q


def test_a_deleted_collection_is_a_clear_error(lite_settings):
    rag.build_index(settings=lite_settings)
    store = open_store(lite_settings)
    store.client.drop_collection(store.live_names().chunks)
    rag.api._readers.clear()
    with pytest.raises(rag.IndexNotFoundError, match="deleted by someone else"):
        rag.search("Amazon", settings=lite_settings)
    report = rag.build_index(settings=lite_settings)  # and the next build starts again from nothing
    assert report.full_rebuild and rag.search("Amazon", settings=lite_settings)


def test_a_server_on_a_milvus_lite_file_indexes_in_its_own_process(lite_settings):
    """One process at a time opens a Milvus Lite file: a server holding it indexes there, not in a child."""
    rag.build_index(settings=lite_settings)
    assert rag.search("Amazon", settings=lite_settings)  # this process holds the file open
    source, report = rag.add_document("tatin.md", TATIN.encode(), settings=lite_settings, separate_process=True)
    assert (source, report.added) == ("tatin.md", 1)
    assert rag.search("tarte Tatin Sologne", k=1, settings=lite_settings)[0].source == "tatin.md"
    assert rag.build_index(settings=lite_settings, full=True, separate_process=True).full_rebuild
    assert rag.document_text("tatin.md", settings=lite_settings) == TATIN


KILLED_BUILD = """
import os, signal, sys
import rag
from rag import indexer
from rag.model import FakeEmbedder
from rag.store.milvus import writer
writer.BATCH_CHUNKS = 8
writer.MilvusBuild.batch_chunks = 8
settings = rag.Settings(seeds_dir=sys.argv[1], index_dir=sys.argv[2], store=sys.argv[3], model="fake-sha256-64")
written = [0]
def hook(point):
    print("hook", point, flush=True)
    if point == "batch-written":
        written[0] += 1
        if written[0] == int(sys.argv[4]):
            os.kill(os.getpid(), signal.SIGKILL)
indexer.build_index(settings, FakeEmbedder(), crash_hook=hook, full=sys.argv[5] == "full")
"""


@pytest.mark.parametrize("mode", ["first", "incremental"])
def test_a_killed_build_resumes_where_it_stopped(lite_settings, fake, tmp_path, mode):
    if mode == "incremental":
        rag.build_index(settings=lite_settings)
        write_corpus(lite_settings.seeds_dir / "lot", 12, seed=3)
        forget_store(lite_settings)  # the child must be able to open the file
    args = [str(lite_settings.seeds_dir), str(lite_settings.index_dir), lite_settings.store, "2", "inc"]
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_BUILD), *args], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-2000:]
    report = rag.build_index(settings=lite_settings)
    new_chunks = sum(f.chunks for f in report.files if f.status in ("added", "changed"))
    assert 0 < report.chunks_embedded <= new_chunks - 2 * 8  # two batches of 8 were written before the kill
    resumed = _snapshot(lite_settings)
    reference = lite_settings.with_(store=str(tmp_path / "reference.db"))
    try:
        rag.build_index(settings=reference)
        assert_same(_snapshot(reference), resumed)
    finally:
        forget_store(reference)


def test_milvus_lite_open_in_another_process_is_one_clear_line(lite_settings):
    rag.build_index(settings=lite_settings)
    forget_store(lite_settings)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pymilvus import MilvusClient; MilvusClient(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", lite_settings.store],
        stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "open"
        cli = subprocess.run([sys.executable, "-m", "rag.cli", "--model", "fake-sha256-64", "status", "--store",
                              lite_settings.store], capture_output=True, text=True, cwd=REPO, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert cli.returncode == 2
    assert cli.stderr.strip().startswith("rag: error:") and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert "open in another process" in cli.stderr and "Traceback" not in cli.stderr


def test_an_unreachable_server_is_one_clear_line(fake_settings):
    cli = subprocess.run([sys.executable, "-m", "rag.cli", "status", "--store", "http://127.0.0.1:9"],
                         capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**__import__("os").environ, "RAG_STORE_TOKEN": "root:s3cret-token"})
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert "cannot reach the Milvus server at http://127.0.0.1:9" in cli.stderr
    assert "s3cret" not in cli.stderr + cli.stdout


def test_store_settings_are_validated_and_the_token_never_shown():
    s = rag.Settings.from_env({"RAG_STORE": "http://db:19530", "RAG_STORE_TOKEN": "root:s3cret"})
    assert s.store == "http://db:19530" and "s3cret" not in repr(s)
    for bad in ("milvus.sqlite", "ftp://db", "dir/" + "x" * 40 + ".db"):
        with pytest.raises(rag.ConfigError):
            rag.Settings(store=bad)
    with pytest.raises(rag.ConfigError):
        rag.Settings(store_collection="1-bad")


@pytest.mark.model
def test_milvus_gives_the_real_models_answers_on_the_dev_set(real_settings, tmp_path):
    """The real model, the dev set: Milvus Lite's answers and rankings are the FAISS store's."""
    lite = real_settings.with_(store=str(tmp_path / "real.db"))
    questions = [json.loads(line)["q"] for line in DEV_QA.read_text().splitlines() if line.strip()]
    try:
        rag.build_index(settings=lite)
        for q in questions:
            assert rag.search(q, k=10, settings=lite) == rag.search(q, k=10, settings=real_settings), q
            got, want = rag.answer(q, settings=lite), rag.answer(q, settings=real_settings)
            assert replace(got, confidence=0.0) == replace(want, confidence=0.0), q
            assert math.isclose(got.confidence, want.confidence, rel_tol=1e-4, abs_tol=1e-9), q  # see assert_same
    finally:
        forget_store(lite)
