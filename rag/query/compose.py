"""Compose a short extractive answer from the best passages, citing the sentences it quotes."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..types import Answer, AnswerSentence, Citation
from .answer_type import quantity_asked
from .retrieve import Scored, is_question

NOT_FOUND = "I could not find an answer to this question in the documents."
MIN_SENTENCE_WORDS = 4
# A sentence that asks something (an interview prompt, a rhetorical heading) is not quoted as an
# answer while its passages have other sentences (cited right own .938 -> .958, quoted right own4
# .433 -> .467, no set lower).
QUOTE_QUESTIONS = False
# The article's title printed in its text is not quoted either: it states nothing ("Les leçons d'Amazon
# pour la culture made in France [1] ... [2]" answered who wrote the piece). The metrics do not move.
QUOTE_TITLES = False
QUOTE_WINDOW = 0.03  # further quotes score within this of the first one
# The sentence right after the first quote joins it when it scores within this of it: the first
# sentence often states the fact and the next one the reason or the detail asked for (quoted right,
# key phrase inside the quotes: own .708 -> .750, dev .750 -> .833, heldout .700 -> .733, own2
# .625 -> .750; 0.1 or more adds one own question and makes it nearly unconditional).
CONTINUATION_WINDOW = 0.05
# For a why or how question the next sentence often gives the reason the best one leads to (of the 123
# why/how questions whose best passage ranked first in the tuning sets, the key phrase was in the best
# sentence for 58 and in the next one for 28): it joins within this wider window. Measured on the 155
# why/how questions of the tuning sets (quotes holding the key phrase): natural sets 69 -> 73 of 94 at
# 0.1 (the same at 1.0), the others 47 of 61 either way; quotes 5% longer.
WHY_HOW_CONTINUATION_WINDOW = 0.1
# For a question asking for a quantity, the first quote is the passage's best sentence that states the
# kind asked, when it scores within this of the passage's best sentence (own set: the quantity check in
# decide.py then wrongly declined 1 of 48 answerable questions at 0 and 0.03, none at 0.05).
QUANTITY_QUOTE_WINDOW = 0.05
# A why or how question is answered by the sentence that gives the reason or the method; the fact the
# question is about often scores higher. Within this of the best sentence, the passage's best sentence
# with a causal or method connective is quoted too (0: off). Measured on the tuning sets' 73 why/how
# questions (answer's quotes hold the reason or method): 48 at 0, 51 at 0.02, 52 at 0.04-0.06, 53 at
# 0.08-0.12; quoted right over all 334 answerable 235 -> 239 at 0.05, quotes 5% longer.
REASON_WINDOW = 0.05
_WHY_HOW = re.compile(
    r"^\W*(why|how|pourquoi|comment)\b|\b(for what reason|in what way|by what means|de quelle (manière|façon)"
    r"|par quel moyen|pour quelle raison|how come|what (made|makes|led|leads))\b",
    re.IGNORECASE,
)
_REASON_OR_METHOD = re.compile(
    r"\b(parce qu|car|puisqu|grâce à|grâce au|afin de|afin qu|pour que|pour (?:les |le |la )?\w+er\b|ainsi|"
    r"c'est pourquoi|c’est pourquoi|en effet|du fait|à cause|faute de|en \w+ant\b|permet|permis|permettant|"
    r"because|so that|in order to|by \w+ing\b|thanks to|therefore)",
    re.IGNORECASE,
)


def asks_why_or_how(question: str) -> bool:
    """Whether the question asks for a reason or a method (how much / how many ask for a quantity)."""
    return bool(_WHY_HOW.search(question)) and not re.search(r"\bhow (many|much|long|old|often)\b", question, re.I)


def states_reason_or_method(sentence: str) -> bool:
    return bool(_REASON_OR_METHOD.search(sentence))


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def is_title(sentence: str, title: str) -> bool:
    """Whether the sentence is its section's title printed again (pages print it twice or more)."""
    return bool(title) and _folded(sentence) == _folded(title)


@dataclass(frozen=True)
class Sentence:
    rank: int  # of its passage among the candidates
    start: int  # offsets in the passage's text
    end: int
    text: str
    score: float


def candidate_sentences(passages: list[Scored]) -> list[Sentence]:
    """Every sentence of the passages, scored by its own cosine and its passage's."""
    out = []
    for rank, p in enumerate(passages):
        text = p.chunk.text
        spans = list(zip(p.chunk.sentences, p.sentence_cosines))
        statements = [
            (ab, cos) for ab, cos in spans
            if (QUOTE_QUESTIONS or not is_question(text[ab[0] : ab[1]]))
            and (QUOTE_TITLES or not is_title(text[ab[0] : ab[1]], p.chunk.title))
        ]
        long_enough = [(ab, cos) for ab, cos in statements if len(text[ab[0] : ab[1]].split()) >= MIN_SENTENCE_WORDS]
        for (a, b), cos in long_enough or statements or spans:
            # the passage still counts: a sentence is read in its context
            out.append(Sentence(rank, a, b, text[a:b], cos + 0.25 * p.dense))
    return out


def _same_text(hits, a: Sentence, b: Sentence) -> bool:
    """Whether two sentences of (possibly different) passages overlap in their document, or say the
    same words (web pages print a line twice: a title, a lede, a pull quote)."""
    ha, hb = hits[a.rank], hits[b.rank]
    overlap = ha.source == hb.source and ha.start + a.start < hb.start + b.end and hb.start + b.start < ha.start + a.end
    return overlap or _folded(a.text) == _folded(b.text)


def compose(
    question: str,
    ranked: list[Scored],
    *,
    found: bool,
    confidence: float,
    reason: str,
    passages: int = 3,
    max_quotes: int = 2,
) -> Answer:
    """Pick the sentences that answer best and cite each with an [n] marker."""
    hits = [s.to_hit() for s in ranked]
    if not found or not ranked:
        return Answer(question, NOT_FOUND, False, [], confidence, reason, nearest=hits[:3])
    sentences = candidate_sentences(ranked[:passages])
    if not sentences:
        return Answer(question, NOT_FOUND, False, [], confidence, "no sentence to quote", nearest=hits[:3])
    order = sorted(sentences, key=lambda s: -s.score)
    # The first quote comes from the best-ranked passage: ranking weighs more evidence
    # (the whole chunk, BM25) than one sentence's cosine does.
    best = next((s for s in order if s.rank == 0), order[0])
    asked = quantity_asked(question)
    if QUANTITY_QUOTE_WINDOW and asked and not asked.stated_by(best.text):
        best = next(
            (s for s in order if s.rank == best.rank and s.score >= best.score - QUANTITY_QUOTE_WINDOW
             and asked.stated_by(s.text)),
            best,
        )
    chosen = [best]
    following = min((s for s in sentences if s.rank == best.rank and s.start > best.start), key=lambda s: s.start, default=None)
    why_how = asks_why_or_how(question)
    window = max(CONTINUATION_WINDOW, WHY_HOW_CONTINUATION_WINDOW) if why_how else CONTINUATION_WINDOW
    if window and following is not None and following.score >= best.score - window:
        chosen.append(following)
        max_quotes += 1
    if REASON_WINDOW and why_how:
        # the sentence that gives the reason or the method, when the passage has one close to the best
        reason = max(
            (s for s in sentences if s.rank == best.rank and s not in chosen and states_reason_or_method(s.text)
             and s.score >= best.score - REASON_WINDOW),
            key=lambda s: s.score, default=None,
        )
        if reason is not None:
            chosen.append(reason)
            max_quotes += 1
    # the next quotes: the best sentence of each next-ranked passage, when close enough (a second
    # passage corroborates or completes the first more often than a neighbour sentence does)
    for rank in range(1, passages):
        if len(chosen) >= max_quotes:
            break
        # passages overlap: a sentence already quoted from another passage is not quoted twice
        fresh = (s for s in sentences if s.rank == rank and not any(_same_text(hits, s, c) for c in chosen))
        nxt = max(fresh, key=lambda s: s.score, default=None)
        if nxt is not None and nxt.score >= best.score - QUOTE_WINDOW:
            chosen.append(nxt)
    # reading order within a passage, passage rank across them
    chosen.sort(key=lambda s: (s.rank, s.start))
    citations: list[Citation] = []
    parts: list[str] = []
    quoted: list[AnswerSentence] = []
    for s in chosen:
        hit = hits[s.rank]
        same = next((c for c in citations if c.start == hit.start and c.source == hit.source), None)
        if same is not None:
            # a second sentence of the same passage: one citation whose quote spans both
            merged = replace(same, quote=hit.text[same.quote_start - hit.start : s.end], quote_end=hit.start + s.end)
            citations[citations.index(same)] = merged
            parts.append(f"{s.text} [{same.n}]")
            quoted.append(AnswerSentence(s.text, (same.n,), same.n))
            continue
        n = len(citations) + 1
        citations.append(
            Citation(
                n=n, source=hit.source, text=hit.text, start=hit.start, end=hit.end, quote=s.text,
                score=hit.score, title=hit.title, quote_start=hit.start + s.start, quote_end=hit.start + s.end,
            )
        )
        parts.append(f"{s.text} [{n}]")
        quoted.append(AnswerSentence(s.text, (n,), n))
    return Answer(question, " ".join(parts), True, citations, confidence, reason, nearest=[], sentences=tuple(quoted))
