"""Issue 5, bad questions: a clear InvalidQuestionError or a sensible clamp, never a crash, and
FAISS's -1 "no result" ids never mapped to metadata."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

import rag
from rag.model import FakeEmbedder
from rag.query import retrieve
from rag.store import IndexReader
from tests.conftest import SEEDS
from tests.robust_helpers import answer_view, citations_match_seeds


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    """The five seeds indexed once with the fake embedder, for every test of this module."""
    fake = FakeEmbedder()
    rag.register_embedder(fake)
    base = tmp_path_factory.mktemp("qa")
    shutil.copytree(SEEDS, base / "seeds")
    settings = rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index", model=fake.model_id)
    report = rag.build_index(settings=settings)
    texts = {p.name: p.read_text(encoding="utf-8") for p in SEEDS.iterdir()}
    return settings, report.total_chunks, texts


@pytest.fixture
def settings(qa, fake):
    return qa[0]


@pytest.mark.parametrize(
    "question, message",
    [
        (None, "the question is missing"),
        (b"pourquoi Amazon ?", "not bytes"),
        (bytearray(b"Amazon"), "not bytes"),
        (42, "not int"),
        (["Amazon"], "not list"),
        ("", "the question is empty"),
        ("   \n\t  ", "the question is empty"),
        ("\u00a0\u2003\u3000", "the question is empty"),
        ("\x00\x01\x07\x1b\x7f", "the question is empty"),
    ],
)
def test_missing_empty_or_non_text_questions_are_refused_clearly(settings, question, message):
    for call in (rag.answer, rag.search):
        with pytest.raises(rag.InvalidQuestionError, match=message):
            call(question, settings=settings)


def test_one_megabyte_question_is_cut_to_the_model_and_answered(qa, settings, caplog):
    _, _, texts = qa
    question = ("Pourquoi les clients font-ils confiance au service client d'Amazon ? " * 20_000)[:1_000_000]
    started = time.perf_counter()
    ans = rag.answer(question, settings=settings)
    hits = rag.search(question, k=5, settings=settings)
    assert time.perf_counter() - started < 60
    assert "cut to the model's limit" in caplog.text
    assert len(hits) == 5 and citations_match_seeds(hits, texts)
    assert all(texts[c.source][c.quote_start : c.quote_end] == c.quote for c in ans.citations)


def test_control_characters_are_ignored_not_fatal(settings):
    noisy = "service\x00 client\x07\x1b[31m Amazon\r\n\x0c"
    clean = "service client [31m Amazon"  # what is left once control characters become spaces
    assert rag.search(noisy, k=5, settings=settings) == rag.search(clean, k=5, settings=settings)
    assert answer_view(rag.answer(noisy, settings=settings)) == answer_view(rag.answer(clean, settings=settings))


@pytest.mark.parametrize(
    "question",
    [
        "لماذا يثق الفرنسيون في المتاجر على الإنترنت؟",
        "למה הצרפתים סומכים על חנויות מקוונות?",
        "\u202eAmazon client service\u202c",  # a right-to-left override around Latin text
        "ما رأي العملاء في Amazon ؟",
    ],
)
def test_right_to_left_questions_are_answered_without_error(qa, settings, question):
    _, _, texts = qa
    ans = rag.answer(question, settings=settings)
    hits = rag.search(question, k=3, settings=settings)
    assert ans.question == question and len(hits) == 3
    assert citations_match_seeds(hits, texts) and citations_match_seeds(ans.nearest, texts)
    if "Amazon" in question:  # the one word it shares with the articles still counts
        assert any("Amazon" in h.text for h in hits)


@pytest.mark.parametrize("k", [0, -1, -(10**9), True, 2.5, "3", None, float("nan")])
def test_k_that_is_not_a_positive_whole_number_is_refused(settings, k):
    with pytest.raises(rag.InvalidQuestionError, match="k must be"):
        rag.search("Amazon", k=k, settings=settings)
    with pytest.raises(rag.InvalidQuestionError, match="k must be"):
        rag.answer("Amazon", k=k, settings=settings)


def test_k_larger_than_the_index_is_clamped(qa, settings):
    _, total, texts = qa
    hits = rag.search("Amazon", k=total + 1000, settings=settings)
    assert len(hits) == total and len({h.chunk_id for h in hits}) == total
    assert -1 not in {h.chunk_id for h in hits} and citations_match_seeds(hits, texts)
    assert len(rag.search("Amazon", k=np.int64(2), settings=settings)) == 2
    assert rag.answer("Amazon", k=10**9, settings=settings).question == "Amazon"


def test_an_index_with_fewer_vectors_than_k_never_maps_minus_one(fake, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    text = "La Fnac améliore son service client. Les clients apprécient les conseils des vendeurs."
    (seeds / "seul.txt").write_text(text)
    settings = rag.Settings(seeds_dir=seeds, index_dir=tmp_path / "index", model=fake.model_id)
    assert rag.build_index(settings=settings).total_chunks == 1
    reader = IndexReader.open(settings.index_dir)
    q = fake.embed_query("service client")
    _, raw_ids = reader.raw_vectors().search(q.reshape(1, -1), 5)
    assert list(raw_ids[0]).count(-1) == 4  # FAISS pads with -1 when it has fewer vectors than k
    assert [i for i, _ in reader.search(q, 5)] == [0]
    assert {(c, p) for c, p, _ in reader.search_sentences(q, 1000)} == {(0, 0), (0, 1)}
    reader.close()
    hits = rag.search("service client", k=10, settings=settings)
    assert [(h.source, h.chunk_id, h.text) for h in hits] == [("seul.txt", 0, text)]
    ans = rag.answer("Que pensent les clients des vendeurs ?", k=50, settings=settings)
    assert all(c.source == "seul.txt" and text[c.quote_start : c.quote_end] == c.quote for c in ans.citations)


class _PaddedIndex:
    """A FAISS index that answers like one holding fewer vectors than asked for: the tail of every
    result is -1 ids with FAISS's lowest score."""

    def __init__(self, index, keep: int) -> None:
        self._index, self._keep = index, keep

    def search(self, x, k):
        scores, ids = self._index.search(x, k)
        scores[:, self._keep :] = -3.4028235e38
        ids[:, self._keep :] = -1
        return scores, ids

    def __getattr__(self, name):
        return getattr(self._index, name)


def test_faiss_minus_one_ids_are_dropped_before_any_metadata_lookup(qa, fake):
    settings, _, texts = qa
    reader = IndexReader.open(settings.index_dir)
    reader._vectors = _PaddedIndex(reader._vectors, keep=2)
    reader._sentence_vectors = _PaddedIndex(reader._sentence_vectors, keep=3)
    q = fake.embed_query("service client Amazon")
    assert len(reader.search(q, 10)) == 2 and all(i >= 0 for i, _ in reader.search(q, 10))
    assert len(reader.search_sentences(q, 10)) == 3
    ranked = retrieve.rank(reader, "service client Amazon", q, 5)  # reader.chunks() raises on unknown ids
    assert ranked and all(s.chunk.id >= 0 for s in ranked)
    assert citations_match_seeds([s.to_hit() for s in ranked], texts)
    # a query vector FAISS can rank nothing against (NaN) gives no dense result, and no crash
    nan = np.full(fake.dim, np.nan, dtype=np.float32)
    assert reader.search(nan, 5) == [] and reader.search_sentences(nan, 5) == []
    assert retrieve.rank(reader, "zzzz qqqq", nan, 5) == []
    assert reader.vectors_for([]).shape == (0, fake.dim)
    reader.close()
