"""Lexical (BM25) side of retrieval, with French-aware tokenisation and question-language detection."""

from __future__ import annotations

import logging
import re
import unicodedata

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN_PLUS, STOPWORDS_FRENCH

# bm25s sets its own logger to DEBUG on import and would print every index build
logging.getLogger("bm25s").setLevel(logging.WARNING)

_WORD = re.compile(r"\w+", re.UNICODE)
PREFIX = 6  # a crude stem: "clients"/"client", "critère"/"criterion" meet at "criter"


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _load_stopwords() -> tuple[frozenset[str], frozenset[str]]:
    en = frozenset(_fold(w) for w in STOPWORDS_EN_PLUS)
    fr = frozenset(_fold(w) for w in STOPWORDS_FRENCH) | {"c", "d", "l", "j", "m", "n", "s", "t", "qu"}
    return en, fr


STOP_EN, STOP_FR = _load_stopwords()
STOPWORDS = STOP_EN | STOP_FR


def tokens(text: str) -> list[str]:
    """Content-word stems of ``text``: accents folded, stop words of both languages dropped."""
    return [w[:PREFIX] for w in _WORD.findall(_fold(text)) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


def content_word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of ``text`` that are not stop words of either language."""
    return [m.span() for m in _WORD.finditer(text) if _fold(m.group()) not in STOPWORDS]


def question_language(text: str) -> str:
    """'fr', 'en' or 'unknown', from which language's stop words the question uses."""
    words = _WORD.findall(_fold(text))
    en = sum(1 for w in words if w in STOP_EN and w not in STOP_FR)
    fr = sum(1 for w in words if w in STOP_FR and w not in STOP_EN)
    if en == fr:
        return "unknown"
    return "en" if en > fr else "fr"


class LexicalIndex:
    """BM25 over chunk texts (with their titles), built in memory from a loaded build."""

    def __init__(self, ids: list[int], texts: list[str]) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self._bm25 = bm25s.BM25()
        corpus = [tokens(t) or ["\x00empty"] for t in texts]
        self._bm25.index(corpus, show_progress=False)

    def scores(self, question: str) -> np.ndarray:
        """One BM25 score per chunk, in the order of ``ids``."""
        q = tokens(question)
        if not q:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(q), dtype=np.float32)
