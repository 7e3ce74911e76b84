"""The words of a question that speak of the document rather than of its subject: "the editorial", "the
blogger", "according to the Agefi article", "selon l'auteure".

They tell which document the asker has in mind, not which passage answers: "article", "author", the
newspaper's name match the document's byline and header word for word, so in the token match they pull
the header passage above the one that holds the answer. The token match leaves them out
(``token_match.question_pieces``); the question's pooled vector and BM25 still see the whole question, so
the named source still counts toward its document.

A source phrase naming a person ("according to François Laurent", "selon Zwick") or studies keeps its
words: the passage that answers often quotes that person by name ("selon François Laurent, ..."). Measured
(answerable questions, right passage first / in the first five):

| words left out of the token match | nat1-4 (180) | nat5-7 (135) | own, dev, heldout, own2-9 (352) |
|---|---|---|---|
| none (before) | 128 / 165 | 97 / 119 | 306 / 343 |
| every source phrase, and the document words | 136 / 166 | 93 / 118 | 314 / 343 |
| the document words only | 131 / 165 | 97 / 120 | 309 / 343 |
| source phrases naming the document or its writer, and the document words (kept) | 134 / 166 | 97 / 120 | 311 / 343 |

The second row was chosen first, on nat1-4 and the own sets; nat5-7, then unread, showed that it lost
questions "according to François Laurent" (a person quoted in the passage), which the kept row does not.
Questions with none of these words rank exactly as before."""

from __future__ import annotations

import re

# up to the next comma or question mark: "according to the Swiss consultant, what did ..."
_UNTIL_CLAUSE_END = r"[^,?;]*?(?=\s*(?:[,?;]|$))"
_DOCUMENT_WORDS_EN = r"(?:article|piece|op-ed|editorial|interview|post|blog|report|column|story|paper|text)"
_DOCUMENT_WORDS_FR = r"(?:article|tribune|[ée]ditorial|[ée]dito|entretien|interview|billet|post|rapport|texte|chronique)"
_SOURCE = re.compile(
    rf"\b(?:according\s+to|in\s+the\s+(?:view|words|opinion)\s+of|as\s+told\s+by)\s+{_UNTIL_CLAUSE_END}"
    rf"|\bin\s+[\w'’.-]+(?:\s+[\w'’.-]+)?['’]s?\s+(?:view|opinion|words|eyes)\b"
    rf"|\b(?:in|from)\s+the\s+(?:[\w'’-]+\s+){{0,4}}?{_DOCUMENT_WORDS_EN}s?\b(?:\s+(?:on|about|by)\s+{_UNTIL_CLAUSE_END})?"
    rf"|\b(?:selon|d['’]apr[èe]s)\s+{_UNTIL_CLAUSE_END}"
    rf"|\bdans\s+(?:l['’]\s*|le\s+|la\s+|cet(?:te)?\s+|ce\s+){_DOCUMENT_WORDS_FR}\b{_UNTIL_CLAUSE_END}",
    re.IGNORECASE,
)
# the document and whoever wrote it, wherever they stand in the question
_DOCUMENT = re.compile(
    r"\b(?:articles?|editorials?|editor|op-ed|piece|post|blog|blogger|author|writer|column|columnist"
    r"|[ée]dito|[ée]ditorial|[ée]diteur|r[ée]dacteur|r[ée]dactrice|billet|blogueur|blogueuse|auteure?|autrice"
    r"|tribune|chronique)\b",
    re.IGNORECASE,
)


def source_spans(question: str) -> list[tuple[int, int]]:
    """Character spans of ``question`` that speak of the document or its writer (empty: none): the source
    phrases that name one ("according to the Agefi article") and the document words anywhere else."""
    spans = [m.span() for m in _SOURCE.finditer(question) if _DOCUMENT.search(m.group())]
    spans += [m.span() for m in _DOCUMENT.finditer(question) if not any(a <= m.start() < b for a, b in spans)]
    spans.sort()
    # a question that is nothing but its source ("selon l'article ?") keeps its words: nothing else to match
    rest = sum(1 for ch in _outside(question, spans) if ch.isalnum())
    return spans if rest else []


def _outside(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for a, b in spans:
        out.append(text[last:a])
        last = b
    out.append(text[last:])
    return "".join(out)
