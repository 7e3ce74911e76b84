"""Decide whether the passages answer the question, from several signals, with a reason.

Cosine levels alone cannot decline: with multilingual-e5 an unrelated question still scores
0.75-0.85. What separates answerable questions is a *peak*: one sentence stands out from
the background of the other candidates. The level still counts, relative to the question's
language (French questions over French text score higher across the board), and so does
lexical support for French questions (the best BM25 score among the top passages), and token
support in both languages (how well the question's content words find counterparts, word piece by
word piece, in the best passage). Last,
an off-topic question is closer to some everyday sentence on another subject (``reference``)
than to any passage: when the best passage does not beat that sentence by ``REFERENCE_GAP``,
the shortfall counts against answering. A question asking for a quantity is declined when the
sentences the answer would quote state none of the kind asked (a number, a share, a year).

The signals are combined by a model fitted on labelled questions (``confidence``): its output is the
probability that the answer cites a passage that answers, and the decision declines below its threshold.
``margin``, the hand-set combination of the signals used before the model, is one of its inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import confidence
from .answer_type import quantity_asked
from .lexical import question_language
from .retrieve import Scored

BACKGROUND_POOL = 20  # candidates whose sentences form the background
# The best sentence of all the candidates, whatever their order: the token match reorders the top
# ones, and with the best of the top 3 only it declined 2 more answerable questions (6 of 244 in the
# tuning sets) whose best sentence left the top 3; with all 20, 2 of 244, for one decline fewer of 97.
BEST_DEPTH = BACKGROUND_POOL
# Fitted on tests/data/own_qa.jsonl, own2_qa.jsonl and the dev set (checked on heldout_qa.jsonl):
LEVEL = {"fr": 0.84, "en": 0.80, "unknown": 0.80}  # a typical best-sentence cosine, by language
LEVEL_WEIGHT = 1.0
# Chosen on own_qa + own2_qa + dev with the default settings (no title context), English just
# below the lowest answerable question (the goal allows about one wrong decline in 36), French
# midway between the unanswerable and answerable margins once lexical support is in; checked on
# heldout_qa. They go with the vectors: refit them (scripts/levers.py) when the embedding changes.
THRESHOLD = {"fr": 0.066, "en": 0.024, "unknown": 0.045}
# Lexical support: the best BM25 score among the top passages, per question language. A French
# question that shares words with the passages is better supported; an English one over French
# text shares few (names, cognates), so there the dense margin decides alone.
LEXICAL_SUPPORT = {"fr": 0.01, "en": 0.0, "unknown": 0.005}
LEXICAL_DEPTH = 3  # how many top passages the lexical support is taken from
# Chosen with the other constants' sets and decline_tune_qa, once the reference sentences grew to ~800:
# the best passage must beat every everyday sentence (gap 0); a wider gap or a heavier weight declines
# answerable questions (gap 0.005: 2 more of 114, weight 4: 2 more) for at most one more decline.
REFERENCE_GAP = 0.0
REFERENCE_WEIGHT = 2.0
# A question asking for a quantity is declined when the sentences the answer would quote do not state
# that kind of quantity (answer_type): the passages are on the subject but do not hold the answer
# (declined: own 2/8 -> 5/8, own2 2/8 -> 4/8, heldout 2/6 -> 4/6, own3 4/10 -> 7/10, own4 4/10 -> 7/10;
# one answerable heldout question declined, whose answer cited the wrong passage).
QUANTITY_CHECK = True
# Token support: how well the question's content words find counterparts in the best passage (its
# token match, rag.query.token_match), against a typical level by language (French questions over French
# text share exact words). Chosen on the tuning sets with the token match in (declined 75 -> 77 of 97,
# wrongly declined 2 -> 1 of 244); then checked once on own6, own8 and decline_check (unread).
TOKEN_LEVEL = {"fr": 0.63, "en": 0.55, "unknown": 0.59}
TOKEN_SUPPORT_WEIGHT = 0.5


@dataclass(frozen=True)
class Signals:
    """What the decision weighs, for one question and its candidates."""

    lang: str  # the question's language: fr, en or unknown
    best: float  # the best sentence cosine among the candidates
    peak: float  # how far it stands above the candidates' background (the mean sentence cosine)
    lexical: float  # the best BM25 score of the top passages
    token_match: float  # the best passage's token match (0: the embedder gives no token states)
    reference_gap: float  # best minus the closest everyday sentence's cosine (0: not measured)
    quantity_missing: bool  # the question asks for a quantity and no quoted sentence states that kind
    top_gap: float  # the best passage's fused score minus the second's
    margin: float  # the rule's margin (decline below 0)


def signals(
    question: str, ranked: list[Scored], reference_best: float | None = None, quotes: list[str] | None = None
) -> Signals:
    """The decision's signals for one question's candidates (``ranked`` must not be empty)."""
    cosines = [c for s in ranked[:BACKGROUND_POOL] for c in (s.sentence_cosines or (s.chunk_cosine,))]
    best = max(max(s.sentence_cosines or (s.chunk_cosine,)) for s in ranked[:BEST_DEPTH])
    peak = best - float(np.mean(cosines))
    lang = question_language(question)
    lexical = max(s.lexical for s in ranked[:LEXICAL_DEPTH])
    margin = peak + LEVEL_WEIGHT * (best - LEVEL[lang]) + LEXICAL_SUPPORT[lang] * lexical - THRESHOLD[lang]
    token = ranked[0].token_match
    if token > 0:
        margin += TOKEN_SUPPORT_WEIGHT * (token - TOKEN_LEVEL[lang])
    gap = 0.0 if reference_best is None else best - reference_best
    if reference_best is not None:
        margin += REFERENCE_WEIGHT * min(0.0, gap - REFERENCE_GAP)
    asked = quantity_asked(question)
    missing = bool(quotes and QUANTITY_CHECK and asked and not asked.stated_by(" ".join(quotes)))
    if missing:
        margin = min(margin, 0.0) - 0.02
    top_gap = ranked[0].fused - ranked[1].fused if len(ranked) > 1 else 1.0
    return Signals(lang, best, peak, lexical, token, gap, missing, top_gap, margin)


def decide(
    question: str, ranked: list[Scored], reference_best: float | None = None, quotes: list[str] | None = None
) -> tuple[bool, float, str]:
    """(found, confidence, reason) for the candidates of one question; ``reference_best`` is the
    question's best cosine to the everyday reference sentences, ``quotes`` the sentences the answer would
    quote (None: not used). The confidence is the fitted probability that the answer cites a passage that
    answers the question (``confidence``); below the model's threshold the question is declined, and a
    question asking for a quantity that no quoted sentence states is declined whatever it says."""
    if not ranked:
        return False, 0.0, "the index returned no passage"
    s = signals(question, ranked, reference_best, quotes)
    fitted = confidence.model()
    p = fitted.probability(s)
    detail = f"best sentence {s.best:.3f}, {s.peak:.3f} above the background, BM25 {s.lexical:.2f}"
    if s.token_match > 0:
        detail += f", its words matched {s.token_match:.3f}"
    if reference_best is not None:
        detail += f", closest sentence on another subject {reference_best:.3f}"
    if s.quantity_missing:
        detail += f", the question asks for a quantity ({quantity_asked(question)}) and no quoted sentence states one"
    detail += f", question language {s.lang}, confidence {p:.2f}"
    if s.quantity_missing or p < fitted.threshold:
        return False, p, f"no passage stands out ({detail})"
    return True, p, f"a passage stands out ({detail})"
