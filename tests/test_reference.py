"""The everyday reference sentences that help decline off-topic questions."""

import numpy as np
import pytest

import rag
from rag.model import FakeEmbedder
from rag.query import decide, reference
from rag.query.retrieve import Scored
from rag.types import Chunk


class CountingEmbedder:
    """The fake embedder under a non-fake fingerprint (so its vectors are cached on disk), counting calls."""

    def __init__(self, fingerprint="counting:1"):
        self.inner = FakeEmbedder()
        self.fingerprint, self.dim, self.calls = fingerprint, self.inner.dim, 0

    def embed_documents(self, texts, show_progress=False):
        self.calls += 1
        return self.inner.embed_documents(texts)


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    reference._memo.clear()
    yield tmp_path / "cache" / "rag" / "reference"
    reference._memo.clear()


def test_sentences_are_many_and_in_both_languages():
    texts = reference.sentences()
    assert len(texts) >= 150 and len(set(texts)) == len(texts)
    french = sum(any(ch in t for ch in "éèàçù") for t in texts)
    assert 0.3 * len(texts) < french < 0.7 * len(texts)


def test_vectors_are_computed_once_and_cached_on_disk(cache_home):
    emb = CountingEmbedder()
    first = reference.vectors(emb)
    assert emb.calls == 1 and first.shape == (len(reference.sentences()), emb.dim)
    assert len(list(cache_home.glob("*.npy"))) == 1
    reference._memo.clear()  # a new process: read from disk, not embedded again
    again = reference.vectors(emb)
    assert emb.calls == 1 and np.array_equal(first, again)


def test_a_damaged_cache_is_recomputed(cache_home):
    emb = CountingEmbedder()
    reference.vectors(emb)
    (path,) = cache_home.glob("*.npy")
    path.write_bytes(b"not a numpy file")
    reference._memo.clear()
    vecs = reference.vectors(emb)
    assert emb.calls == 2 and vecs.shape[1] == emb.dim
    assert np.load(path).shape == vecs.shape  # rewritten whole


def test_another_embedder_gets_its_own_vectors(cache_home):
    a, b = CountingEmbedder("counting:1"), CountingEmbedder("counting:2")
    reference.vectors(a)
    reference.vectors(b)
    assert a.calls == b.calls == 1 and len(list(cache_home.glob("*.npy"))) == 2


def test_fake_embedders_leave_no_cache(cache_home, fake):
    reference.vectors(fake)
    assert not cache_home.exists() or not list(cache_home.glob("*.npy"))


def _ranked(best: float) -> list[Scored]:
    text = "Une phrase assez longue pour compter ici."
    chunk = Chunk(0, "0.txt", text, 0, len(text), "", ((0, len(text)),))
    background = [Scored(chunk, 0.80, 0.80, (0.80,), 0.0, i + 2, None, 0.80) for i in range(10)]
    return [Scored(chunk, best, best, (best,), 0.0, 1, None, best), *background]


def test_a_closer_everyday_sentence_declines_an_otherwise_found_question():
    ranked = _ranked(0.83)
    found, conf, _ = decide.decide("Where is it?", ranked)
    assert found
    confidences = [decide.decide("Where is it?", ranked, reference_best=r)[1] for r in (0.70, 0.80, 0.87, 0.95)]
    assert confidences == sorted(confidences, reverse=True)  # the closer the everyday sentence, the lower
    found_ref, conf_ref, reason = decide.decide("Where is it?", ranked, reference_best=0.95)
    assert not found_ref and conf_ref < conf and "another subject 0.950" in reason


@pytest.mark.model
def test_off_topic_questions_are_declined_with_the_reference(real_settings):
    """Off-topic questions of tests/data/own3_qa.jsonl, written after the reference was chosen."""
    questions = [
        "How do I get a red wine stain out of a carpet?",
        "What causes the northern lights?",
        "Quelle est la plus haute montagne d'Afrique ?",
        "Combien de joueurs une équipe de rugby à XV aligne-t-elle sur le terrain ?",
    ]
    for q in questions:
        ans = rag.answer(q, settings=real_settings)
        assert not ans.found and ans.citations == [], (q, ans.reason)
        assert "closest sentence on another subject" in ans.reason
