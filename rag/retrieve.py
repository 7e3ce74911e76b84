"""Find the chunks that answer a question."""

from __future__ import annotations

import logging
import unicodedata

import numpy as np

from .embed import Embedder
from .errors import InvalidQuestionError
from .store import IndexReader
from .types import Hit

log = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 100_000  # longer input is cut before it reaches the tokenizer


def validate_question(question) -> str:
    """The question as clean text, or a clear error. Needs no model, so it runs first."""
    if question is None:
        raise InvalidQuestionError("the question is missing; ask something in English or French")
    if isinstance(question, (bytes, bytearray)):
        raise InvalidQuestionError("the question must be text, not bytes; decode it first")
    if not isinstance(question, str):
        raise InvalidQuestionError(f"the question must be text, not {type(question).__name__}")
    # Control characters carry no meaning for retrieval and can confuse a terminal.
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in question[:MAX_QUESTION_CHARS])
    text = " ".join(text.split())
    if not text:
        raise InvalidQuestionError("the question is empty; ask something in English or French")
    return text


def fit_to_model(text: str, embedder: Embedder) -> str:
    """Cut an over-long question to the model's limit, with a warning."""
    limit = embedder.content_tokens
    if len(text) >= MAX_QUESTION_CHARS or embedder.count_tokens(text) > limit:
        text = embedder.truncate(text, limit)
        log.warning("The question was cut to the model's limit of %d tokens.", limit)
    return text


def dense_search(reader: IndexReader, query_vec: np.ndarray, k: int) -> list[Hit]:
    pairs = reader.search(query_vec, k)
    chunks = reader.chunks([i for i, _ in pairs])
    return [
        Hit(source=c.source, text=c.text, start=c.start, end=c.end, score=s, title=c.title, chunk_id=c.id)
        for c, (_, s) in zip(chunks, pairs)
    ]


def clamp_k(k, total: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InvalidQuestionError(f"k must be a whole number, got {k!r}")
    if k < 1:
        raise InvalidQuestionError(f"k must be at least 1, got {k}")
    return min(int(k), total)
