import pytest

import rag
from rag.documents.chunk import split_sentences


def test_split_sentences_offsets():
    text = "Première phrase. Deuxième phrase ? « Troisième ! »\nQuatrième ligne"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["Première phrase.", "Deuxième phrase ?", "« Troisième ! »", "Quatrième ligne"]


@pytest.mark.parametrize("bad", ["", "   \n\t", None, b"bytes", 42])
def test_bad_questions_raise_a_clear_error(fake_settings, bad):
    with pytest.raises(rag.InvalidQuestionError):
        rag.answer(bad, settings=fake_settings)


@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_bad_k_raises(fake_settings, k):
    rag.build_index(settings=fake_settings)
    with pytest.raises(rag.InvalidQuestionError):
        rag.search("Amazon", k=k, settings=fake_settings)


def test_k_larger_than_the_index_is_clamped(fake_settings):
    report = rag.build_index(settings=fake_settings)
    hits = rag.search("Amazon", k=10_000, settings=fake_settings)
    assert len(hits) == report.total_chunks


def test_over_long_question_is_cut_with_a_warning(fake_settings, caplog):
    rag.build_index(settings=fake_settings)
    hits = rag.search("Amazon client " * 2000, k=2, settings=fake_settings)
    assert len(hits) == 2
    assert "cut to the model's limit" in caplog.text


def _assert_verbatim(ans: rag.Answer, seeds_dir):
    for c in ans.citations:
        source_text = (seeds_dir / c.source).read_text(encoding="utf-8")
        assert source_text[c.start : c.end] == c.text
        assert c.quote in c.text
        assert source_text[c.quote_start : c.quote_end] == c.quote
        assert f"[{c.n}]" in ans.text
    markers = {int(m) for m in __import__("re").findall(r"\[(\d+)\]", ans.text)}
    assert markers == {c.n for c in ans.citations}


@pytest.mark.model
def test_example_question_cites_the_pure_player_passage(real_settings):
    ans = rag.answer("why do French trust pure-players?", settings=real_settings)
    assert ans.found
    assert ans.citations[0].source == "000_7e6f9a2e3c46846f.txt"
    assert "pure-players" in ans.citations[0].text
    _assert_verbatim(ans, real_settings.seeds_dir)


@pytest.mark.model
def test_french_question_is_answered_with_a_verbatim_quote(real_settings):
    ans = rag.answer("Qui a écrit la biographie d'Amazon citée dans l'article ?", settings=real_settings)
    assert ans.found and any("Brad Stone" in c.quote for c in ans.citations)
    _assert_verbatim(ans, real_settings.seeds_dir)


@pytest.mark.model
def test_unrelated_question_is_declined(real_settings):
    ans = rag.answer("What is the population of Tokyo?", settings=real_settings)
    assert not ans.found and ans.citations == [] and "could not find" in ans.text


def test_short_sentences_count_partly_by_their_chunk():
    from rag.query.retrieve import SHORT_SENTENCE_WORDS, _shrink

    text = "Francité. " + " ".join(["mot"] * SHORT_SENTENCE_WORDS) + "."
    one_word = _shrink(text, (0, 9), 0.9, 0.8)
    long_one = _shrink(text, (10, len(text)), 0.9, 0.8)
    assert 0.8 < one_word < 0.9  # pulled toward the chunk's cosine
    assert long_one == pytest.approx(0.9)  # a full sentence keeps its own


def test_second_quote_comes_from_the_next_passage():
    from rag.query.compose import compose
    from rag.query.retrieve import Scored
    from rag.types import Chunk

    def scored(cid, text, cosines):
        spans = tuple(split_sentences(text))
        chunk = Chunk(cid, f"{cid}.txt", text, 100 * cid, 100 * cid + len(text), "", spans)
        return Scored(chunk, max(cosines), max(cosines), tuple(cosines), 0.0, cid + 1, None, max(cosines))

    ranked = [
        # the second sentence of passage 0 scores too low to continue the first quote
        scored(0, "Une phrase assez longue pour compter. Une autre phrase assez longue ici.", [0.85, 0.70]),
        scored(1, "La phrase du deuxième passage est longue aussi.", [0.84]),
    ]
    ans = compose("?", ranked, found=True, confidence=0.9, reason="test")
    assert [c.source for c in ans.citations] == ["0.txt", "1.txt"]
    assert ans.citations[0].quote == "Une phrase assez longue pour compter."
    for c in ans.citations:
        assert c.quote in c.text and f"[{c.n}]" in ans.text


def test_the_following_sentence_continues_the_first_quote():
    """A fact, then its reason: the next sentence joins the first quote in one citation."""
    from rag.query.compose import compose
    from rag.query.retrieve import Scored
    from rag.types import Chunk

    text = "Les clients font confiance aux pure-players. Ils répondent vite et gèrent bien les incidents. Fin du texte ici sans rapport."
    spans = tuple(split_sentences(text))
    chunk = Chunk(0, "0.txt", text, 10, 10 + len(text), "", spans)
    ranked = [Scored(chunk, 0.85, 0.85, (0.85, 0.84, 0.60), 0.0, 1, None, 0.85)]
    ans = compose("?", ranked, found=True, confidence=0.9, reason="test")
    assert len(ans.citations) == 1
    quote = ans.citations[0].quote
    assert quote == "Les clients font confiance aux pure-players. Ils répondent vite et gèrent bien les incidents."
    assert text[ans.citations[0].quote_start - 10 : ans.citations[0].quote_end - 10] == quote
    assert ans.text.count("[1]") == 2 and "Fin du texte" not in ans.text


def test_a_why_question_takes_the_next_sentence_from_further_away():
    """The reason often follows the fact: for why/how, the next sentence joins within a wider window."""
    from rag.query.compose import CONTINUATION_WINDOW, WHY_HOW_CONTINUATION_WINDOW, compose

    text = "Amazon rembourse sans discuter ses clients. Le client fournit de la donnée qui nourrit le cercle vertueux."
    gap = (CONTINUATION_WINDOW + WHY_HOW_CONTINUATION_WINDOW) / 2  # wider than the usual window, within the why/how one
    ranked = _one_passage(text, (0.85, 0.85 - gap))
    why = compose("Why does Amazon refund its customers?", ranked, found=True, confidence=0.9, reason="test")
    what = compose("What does Amazon do for its customers?", ranked, found=True, confidence=0.9, reason="test")
    assert [c.quote for c in why.citations] == [text]
    assert [c.quote for c in what.citations] == ["Amazon rembourse sans discuter ses clients."]


def test_a_sentence_in_two_overlapping_passages_is_quoted_once():
    """Chunks overlap: the next passage's best sentence may be the one already quoted."""
    from rag.query.compose import compose
    from rag.query.retrieve import Scored
    from rag.types import Chunk

    doc = "Intro assez longue pour compter ici. Le taux baisse selon les experts du secteur. Une autre phrase du passage suivant."
    first, second = doc[:81], doc[37:]  # both hold the middle sentence
    ranked = []
    for cid, (start, text, cosines) in enumerate([(0, first, [0.70, 0.88]), (37, second, [0.88, 0.87])]):
        chunk = Chunk(cid, "doc.txt", text, start, start + len(text), "", tuple(split_sentences(text)))
        ranked.append(Scored(chunk, max(cosines), max(cosines), tuple(cosines), 0.0, cid + 1, None, max(cosines)))
    ans = compose("?", ranked, found=True, confidence=0.9, reason="test")
    quotes = [c.quote for c in ans.citations]
    assert quotes.count("Le taux baisse selon les experts du secteur.") == 1
    assert "Une autre phrase du passage suivant." in quotes  # the second passage still corroborates
    for c in ans.citations:
        assert doc[c.quote_start : c.quote_end] == c.quote


def _one_passage(text: str, cosines: tuple[float, ...], title: str = ""):
    """A single ranked passage at the start of its file, scored by its best sentence."""
    from rag.query.retrieve import Scored
    from rag.types import Chunk

    chunk = Chunk(0, "0.txt", text, 0, len(text), title, tuple(split_sentences(text)))
    return [Scored(chunk, max(cosines), max(cosines), cosines, 0.0, 1, None, max(cosines))]


def test_a_sentence_that_asks_is_not_quoted_as_the_answer():
    from rag.query.compose import compose

    text = "Crise et concurrence, responsables du recul ? La croissance devrait tomber à 13% en 2015 selon eux."
    ans = compose("?", _one_passage(text, (0.86, 0.83)), found=True, confidence=0.9, reason="test")
    assert [c.quote for c in ans.citations] == ["La croissance devrait tomber à 13% en 2015 selon eux."]


def test_the_article_title_printed_in_its_text_is_not_quoted():
    from rag.query.compose import compose

    title = "Les leçons d'Amazon pour la culture made in France"
    text = f"{title}\nAbeline Majorel est formatrice et fondatrice d'une agence de conseil."
    ranked = _one_passage(text, (0.86, 0.80), title)
    ans = compose("Who wrote this piece?", ranked, found=True, confidence=0.9, reason="test")
    assert [c.quote for c in ans.citations] == ["Abeline Majorel est formatrice et fondatrice d'une agence de conseil."]


def test_the_same_words_printed_twice_are_quoted_once():
    """Pages print a title or a lede twice: far apart in the file, the same words in two passages."""
    from rag.query.compose import compose
    from rag.query.retrieve import Scored
    from rag.types import Chunk

    line = "Amazon est à nouveau l'enseigne préférée des Français."
    first = f"{line} Le groupe remercie aussitôt ses clients."
    second = f"Un autre passage commence ici, bien plus loin. {line}"
    ranked = []
    for cid, (start, text, cosines) in enumerate([(0, first, [0.88, 0.70]), (500, second, [0.87, 0.88])]):
        chunk = Chunk(cid, "doc.txt", text, start, start + len(text), "", tuple(split_sentences(text)))
        ranked.append(Scored(chunk, 0.88, 0.88, tuple(cosines), 0.0, cid + 1, None, 0.88))
    ans = compose("?", ranked, found=True, confidence=0.9, reason="test")
    assert ans.text.count(line) == 1
    assert [c.quote for c in ans.citations] == [line, "Un autre passage commence ici, bien plus loin."]


@pytest.mark.model
@pytest.mark.parametrize("qa_file", ["dev", "own2"])
def test_every_marker_points_to_a_verbatim_quote(real_settings, qa_file):
    """On every dev question and our second set: quotes verbatim in passages, passages in files."""
    from pathlib import Path

    from rag import evaluate
    from tests.conftest import DEV_QA

    path = DEV_QA if qa_file == "dev" else Path(__file__).parent / "data" / "own2_qa.jsonl"
    for q in evaluate.load_questions(path):
        _assert_verbatim(rag.answer(q.q, settings=real_settings), real_settings.seeds_dir)
