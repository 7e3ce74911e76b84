"""Find the chunks that answer a question: dense chunk and sentence scores, fused with BM25."""

from __future__ import annotations

import logging
import threading
import unicodedata
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InvalidQuestionError
from ..model.base import Embedder
from ..store import SENTENCE_STRIDE
from ..store.backend import StoreReader
from ..types import Chunk, Hit
from .lexical import LexicalIndex, question_language, tokens
from .token_match import RERANK_POOL, TOKEN_WEIGHT, TokenScorer

log = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 100_000  # longer input is cut before it reaches the tokenizer
POOL = 60  # candidates gathered from each retriever before fusion
LEXICAL_SCALE = 0.02  # the most BM25 can add to a dense score
SENTENCE_WEIGHT = 0.7  # a chunk's dense score: this share from its best sentence, the rest from the whole chunk
# A sentence of fewer words than this counts partly by its chunk's cosine: e5 gives short
# fragments (a heading, "autre chose".) high cosines to almost any question.
SHORT_SENTENCE_WORDS = 8
# A sentence that is itself a question (an interview prompt, a rhetorical heading) resembles
# every question asked about its subject without answering it; it counts by this share of its
# own cosine, the rest by its chunk's (recall@1 own 41 -> 42 of 48, own3 15 -> 17 of 28; recall@5 own3
# 23 -> 25, own4 24 -> 25 of 30; none lower. 0 loses quotes; giving its cosine to the next sentence
# instead loses recall).
QUESTION_SENTENCE_SHARE = 0.5
# How much the BM25 ranking counts, by question language: the seeds are French, and an
# English question shares few words with them (names and cognates only).
LEXICAL_WEIGHT = {"fr": 1.0, "unknown": 0.5, "en": 0.3}


@dataclass(frozen=True)
class Scored:
    """A candidate chunk with every signal the ranking and the answer need."""

    chunk: Chunk
    dense: float  # blended chunk/sentence cosine
    chunk_cosine: float
    sentence_cosines: tuple[float, ...]  # one per sentence span of the chunk
    lexical: float  # BM25 score (0 when no query word matches)
    dense_rank: int
    lexical_rank: int | None
    fused: float  # the ranking score: dense + BM25 nudge (+ token match for the best candidates)
    token_match: float = 0.0  # MaxSim of the question's word pieces to this chunk's (0: not matched)

    def to_hit(self) -> Hit:
        c = self.chunk
        return Hit(c.source, c.text, c.start, c.end, round(self.dense, 4), c.title, c.id)


def validate_question(question) -> str:
    """The question as clean text, or a clear error. Needs no model, so it runs first."""
    if question is None:
        raise InvalidQuestionError("the question is missing; ask something in English or French")
    if isinstance(question, (bytes, bytearray)):
        raise InvalidQuestionError("the question must be text, not bytes; decode it first")
    if not isinstance(question, str):
        raise InvalidQuestionError(f"the question must be text, not {type(question).__name__}")
    # Control characters carry no meaning for retrieval and can confuse a terminal; format characters
    # (zero-width spaces and joiners, soft hyphens, direction marks) are invisible, so they go without
    # a trace; a lone surrogate cannot be encoded at all (the tokenizer would raise).
    text = without_lone_surrogates(question[:MAX_QUESTION_CHARS])
    text = "".join(_CLEANED.get(unicodedata.category(ch), ch) for ch in text)
    text = " ".join(text.split())
    if not text:
        raise InvalidQuestionError("the question is empty; ask something in English or French")
    if not any(unicodedata.category(ch)[0] in "LN" for ch in text):
        # only emoji, punctuation or symbols: nothing a passage could match, and any "answer" is noise
        raise InvalidQuestionError("the question has no words; ask something in English or French")
    return text


_CLEANED = {"Cc": " ", "Cf": ""}


def without_lone_surrogates(text: str) -> str:
    """``text`` with each unpaired surrogate (which no encoder accepts) as U+FFFD; a pair written as two
    code points becomes the character it stands for."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def fit_to_model(text: str, embedder: Embedder) -> str:
    """Cut an over-long question to the model's limit, with a warning."""
    limit = embedder.content_tokens
    if len(text) >= MAX_QUESTION_CHARS or embedder.count_tokens(text) > limit:
        text = embedder.truncate(text, limit)
        log.warning("The question was cut to the model's limit of %d tokens.", limit)
    return text


def clamp_k(k, total: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InvalidQuestionError(f"k must be a whole number, got {k!r}")
    if k < 1:
        raise InvalidQuestionError(f"k must be at least 1, got {k}")
    return min(int(k), total)


_lexical_cache: dict[str, LexicalIndex] = {}
_lexical_lock = threading.Lock()


def lexical_index(reader: StoreReader) -> LexicalIndex:
    """BM25 over a build's chunks, made once per build and kept while it is live."""
    key = reader.version
    with _lexical_lock:
        if key not in _lexical_cache:
            chunks = list(reader.iter_chunks())
            # keep the previous build's too: during a swap, requests still on it must not rebuild it
            while len(_lexical_cache) >= 2:
                _lexical_cache.pop(next(iter(_lexical_cache)))
            _lexical_cache[key] = LexicalIndex([c.id for c in chunks], [f"{c.title}\n{c.text}" for c in chunks])
        return _lexical_cache[key]


def lexical_top(reader: StoreReader, question: str, n: int) -> list[tuple[int, float]]:
    """The ``n`` best chunks by BM25 (score > 0), best first: the store's own BM25 where it has one
    (measured equal to bm25s: rag/store/milvus/lexical.py), else bm25s over the chunk texts."""
    engine = reader.lexical_top(tokens(question), n)
    if engine is not None:
        return engine
    lexical = lexical_index(reader)
    bm25 = lexical.scores(question)
    return [(int(lexical.ids[i]), float(bm25[i])) for i in np.argsort(-bm25)[:n] if bm25[i] > 0]


def rank(
    reader: StoreReader, question: str, query_vec: np.ndarray, k: int, token_scorer: TokenScorer | None = None
) -> list[Scored]:
    """The ``k`` best chunks for the question, by fused score; with ``token_scorer`` the best
    ``RERANK_POOL`` of them are matched word piece by word piece too (``token_match``)."""
    pool = min(reader.ntotal, max(POOL, 4 * k))
    candidates = {i for i, _ in reader.search(query_vec, pool)}
    candidates |= {cid for cid, _, _ in reader.search_sentences(query_vec, 3 * pool)}
    lexical = lexical_top(reader, question, pool)
    candidates |= {cid for cid, _ in lexical}
    lexical_rank = {cid: r for r, (cid, _) in enumerate(lexical, 1)}
    lexical_score = dict(lexical)

    ids = sorted(candidates)
    chunks = reader.chunks(ids)
    chunk_cos = reader.vectors_for(ids) @ query_vec
    # every candidate's sentences in one read and one product
    sids = [c.id * SENTENCE_STRIDE + j for c in chunks for j in range(len(c.sentences))]
    sentence_cos = (reader.sentence_vectors_for(sids) @ query_vec).tolist() if sids else []
    scored = []
    first = 0
    for chunk, cc in zip(chunks, chunk_cos):
        sent = tuple(sentence_cos[first : first + len(chunk.sentences)])
        first += len(chunk.sentences)
        if sent:
            sent = tuple(_shrink(chunk.text, ab, s, float(cc)) for ab, s in zip(chunk.sentences, sent))
        best_sentence = max(sent) if sent else float(cc)
        dense = (1 - SENTENCE_WEIGHT) * float(cc) + SENTENCE_WEIGHT * best_sentence
        scored.append((chunk, dense, float(cc), sent))
    scored.sort(key=lambda t: -t[1])
    weight = LEXICAL_WEIGHT[question_language(question)]
    top_bm25 = max(lexical_score.values(), default=0.0) or 1.0
    out = []
    for dense_rank, (chunk, dense, cc, sent) in enumerate(scored, 1):
        lr = lexical_rank.get(chunk.id)
        # BM25, scaled to the best candidate's, nudges dense scores that differ by hundredths;
        # measured against reciprocal rank fusion in scripts/levers.py (same recall@5, better recall@1)
        fused = dense + LEXICAL_SCALE * weight * lexical_score.get(chunk.id, 0.0) / top_bm25
        out.append(Scored(chunk, dense, cc, sent, lexical_score.get(chunk.id, 0.0), dense_rank, lr, fused))
    out.sort(key=lambda s: -s.fused)
    if token_scorer is not None and out:
        # a fixed pool, whatever k is, so that search(k=1) and search(k=10) agree on the order
        pool = out[:RERANK_POOL]
        matches = token_scorer([s.chunk for s in pool])
        pool = [replace(s, token_match=float(m), fused=s.fused + TOKEN_WEIGHT * float(m)) for s, m in zip(pool, matches)]
        pool.sort(key=lambda s: -s.fused)
        # the rest keep their order below the pool: their fused scores lack the token term
        out = pool + out[RERANK_POOL:]
    return out[:k]


def is_question(sentence: str) -> bool:
    """Whether the sentence asks something (it ends with a question mark, quotes aside)."""
    return sentence.rstrip(' "»”)\u00a0').endswith("?")


def _shrink(text: str, span: tuple[int, int], cosine: float, chunk_cosine: float) -> float:
    """A short or interrogative sentence's cosine, pulled toward its chunk's."""
    sentence = text[span[0] : span[1]]
    share = min(1.0, len(sentence.split()) / SHORT_SENTENCE_WORDS) if SHORT_SENTENCE_WORDS else 1.0
    if is_question(sentence):
        share = min(share, QUESTION_SENTENCE_SHARE)
    return chunk_cosine + share * (cosine - chunk_cosine)

