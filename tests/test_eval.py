"""The development question set: recall and decline figures, printed, with floors."""

import pytest

import rag
from rag import evaluate
from rag.query.compose import NOT_FOUND
from tests.conftest import DEV_QA, REPO


@pytest.mark.model
def test_dev_set_recall(real_settings, capsys):
    result = evaluate.run(
        DEV_QA,
        lambda q, k: rag.search(q, k=k, settings=real_settings),
        lambda q: rag.answer(q, settings=real_settings),
    )
    with capsys.disabled():
        print("\n[dev set]\n" + evaluate.format_table(result))
    # measured: recall@1 1.0, recall@5 1.0, MRR 1.0, cited right 1.0, quoted right 0.833, 3/3 declined,
    # 0/12 wrongly
    # (the decline thresholds were fitted with the dev set among others, so the floor keeps slack)
    assert result.recall_at[5] >= 0.9
    assert result.recall_at[1] >= 0.8
    assert result.mrr >= 0.85
    assert result.cited_right >= 0.9
    assert result.quoted_right >= 0.75
    assert result.declined >= 2
    assert result.wrongly_declined <= 1


@pytest.mark.model
@pytest.mark.parametrize("name, floor", [("decline_tune_qa", 30), ("decline_check_qa", 27)])
def test_questions_the_seeds_do_not_answer_are_declined(real_settings, name, floor, capsys):
    """40 off-topic and on-topic questions each; the tune half chose the reference gap (decide.REFERENCE_GAP)."""
    questions = evaluate.load_questions(REPO / "tests" / "data" / f"{name}.jsonl")
    answers = [rag.answer(q.q, settings=real_settings) for q in questions]
    declined = sum(1 for a in answers if not a.found)
    with capsys.disabled():
        print(f"\n[{name}] declined {declined}/{len(questions)}")
    # measured: tune 33/40, check 30/40 (22/40 with the 200 reference sentences of before)
    assert declined >= floor
    assert all(a.text == NOT_FOUND and not a.citations for a in answers if not a.found)


def test_is_hit_normalises_apostrophes_and_spaces():
    q = evaluate.EvalQuestion(q="?", source="dir/000_x.txt", keys=["l'enseigne  préférée"])
    assert evaluate.is_hit(q, "000_x.txt", "C’est L’enseigne\u00a0préférée des Français")
    assert not evaluate.is_hit(q, "001_y.txt", "l'enseigne préférée")


@pytest.mark.parametrize("path", sorted((REPO / "tests" / "data").glob("*_qa.jsonl")), ids=lambda p: p.stem)
def test_our_question_sets_have_findable_keys(path):
    """Every key phrase is in its source seed (as `is_hit` compares), so a miss is the pipeline's, not the set's."""
    questions = evaluate.load_questions(path)
    assert any(q.source is None for q in questions)
    assert path.name.startswith("decline_") or any(q.source for q in questions)  # decline sets hold no answerable one
    for q in questions:
        if q.source is None:
            assert not q.keys, q.q
            continue
        text = (REPO / "seeds" / q.source).read_text(encoding="utf-8")
        assert q.keys and evaluate.is_hit(q, q.source, text), (path.name, q.q)


def _answer(q: str, found: bool, confidence: float, passage: str = "") -> rag.Answer:
    citations = [rag.Citation(1, "000_x.txt", passage, 0, len(passage), passage, 0.9)] if passage else []
    return rag.Answer(q, "x", found, citations, confidence)


def test_calibration_figures():
    """ECE over answered questions in 10 bins; precision and coverage at confidence >= 0.9; why/how quoted."""
    qs = [evaluate.EvalQuestion(q=f"Why q{i}?", source="000_x.txt", keys=["clé"]) for i in range(4)]
    qs.append(evaluate.EvalQuestion(q="unanswerable?", source=None, keys=[]))
    answers = [
        _answer(qs[0].q, True, 0.95, "la clé"),  # right, confident
        _answer(qs[1].q, True, 0.95, "autre"),  # wrong, confident
        _answer(qs[2].q, True, 0.55, "la clé"),  # right, unsure
        _answer(qs[3].q, False, 0.1),  # declined
        _answer(qs[4].q, True, 0.65, "autre"),  # answered although unanswerable: wrong
    ]
    searches = [[rag.Hit("000_x.txt", "la clé", 0, 6, 0.9)]] * 5
    r = evaluate.score(qs, searches, answers)
    assert r.answered == 4
    assert r.precision_at_90 == 0.5 and r.coverage_at_90 == 0.25
    # bins: 0.9 -> {0.95 right, 0.95 wrong}: |0.5-0.95|; 0.5 -> {0.55 right}: |1-0.55|; 0.6 -> {0.65 wrong}: 0.65
    assert abs(r.calibration_error - (2 / 4 * 0.45 + 1 / 4 * 0.45 + 1 / 4 * 0.65)) < 1e-9
    assert r.why_how == 4 and r.why_how_quoted_right == 0.5
    assert "calibration" in evaluate.format_table(r)


def test_support_words_follow_the_confidence():
    assert rag.Answer("q", "t", True, confidence=0.93).support == "well supported"
    assert rag.Answer("q", "t", True, confidence=0.7).support == "partly supported"
    assert rag.Answer("q", "t", True, confidence=0.2).support == "weakly supported"
