"""Token-level matching of a question to its best candidate passages (late interaction, the MaxSim
of ColBERT), with the embedding model's own weights and no training.

Each word piece of the question is matched to its closest word piece of the passage, by cosine
of their hidden states at a middle encoder layer, and the mean of those best matches is added to
the fused score of the ``RERANK_POOL`` best candidates. Why: e5-small's pooled vector of an English
question sits close to every French passage on the subject, so the passage that holds the
answer often ranks second; a middle layer still aligns words across languages (trust ~ confiance,
as SimAlign found for multilingual encoders), and the last layer, trained for pooling, does so less
(recall@1 over 244 answerable questions of the eight sets used for tuning: 192 without, last layer
194, layer 10 204-208, layer 8 205-210 for weights 0.8-1.2, layer 6 205). Only the question's content
words are matched (its stop words, "why", "the", "de", match some word of every passage): 205 -> 209.
On the two sets never read (own6, own8: 72 answerable), recall@1 60 -> 64, recall@5 71 -> 72; on own9,
written after these choices, 28 -> 33 of 36 (docs/quality.md).

An embedder without ``embed_tokens``/``embed_query_tokens`` ranks without it. Passage states are stored with
the index when it is built (rag/store/tokens.py, up to ``Settings.token_states_max_chunks`` chunks), so a new
process's first question costs no more than the next; otherwise they are computed when first needed. Either
way they are kept, by text, in a bounded cache, as float32 (about 360 KB a chunk of 256 tokens).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from ..model.base import TOKEN_LAYER, TokenStates  # TOKEN_LAYER: 8 of 12, see the docstring
from ..types import Chunk
from .attribution import source_spans
from .lexical import content_word_spans

TOKEN_WEIGHT = 1.0  # the MaxSim (0..1) is added at this weight to the fused score
RERANK_POOL = 20  # how many of the best fused candidates are matched token by token
CACHE_CHUNKS = 1024  # passages whose token states are kept, at most
CACHE_BYTES = 48 * 2**20  # and at most this many bytes of them (float32)
CONTENT_WORDS_ONLY = True  # the question's stop words are left out of the match
SOURCE_WORDS_LEFT_OUT = True  # and so are the words naming the document or its writer (attribution.py)

TokenScorer = Callable[[Sequence[Chunk]], np.ndarray]  # chunks -> MaxSim to one question
StoredStates = Callable[[list[int]], list[np.ndarray | None]]  # chunk ids -> stored float16 states or None


def maxsim(question_tokens: np.ndarray, passage_tokens: np.ndarray) -> float:
    """Mean over the question's pieces of the best cosine to any piece of the passage (rows are unit)."""
    if len(question_tokens) == 0 or len(passage_tokens) == 0:
        return 0.0
    return float((question_tokens @ passage_tokens.T).max(axis=1).mean())


def question_pieces(question: str, states: TokenStates) -> np.ndarray:
    """The rows of the question's content words: "why", "the", "de" match some word of any passage
    and would only blur the differences (all rows when the question has no content word). The words
    naming the document or its writer ("according to the Agefi article": ``attribution``) are left out
    too: they match the document's byline, not the passage that answers."""
    if not CONTENT_WORDS_ONLY:
        return states.vectors
    sources = source_spans(question) if SOURCE_WORDS_LEFT_OUT else []
    words = [(a, b) for a, b in content_word_spans(question) if not any(s <= a and b <= e for s, e in sources)]
    keep = [i for i, (a, b) in enumerate(states.spans) if any(a < we and b > ws for ws, we in words)]
    return states.vectors[keep] if keep else states.vectors


class TokenMatcher:
    """Scores passages against a question by MaxSim, keeping the passages' token states as float32 in a
    bounded cache (by text): converting a candidate pool's float16 states costs more than the product
    itself (~4 ms of a ~30 ms warm answer here), so the states of passages asked about recently are kept
    converted; ``cache_bytes`` bounds what that holds (48 MB: ~120 passages of 256 tokens)."""

    def __init__(
        self, embedder, layer: int | None = None, cache_chunks: int = CACHE_CHUNKS, cache_bytes: int = CACHE_BYTES
    ) -> None:
        self._embedder = embedder
        self._fixed_layer = layer  # None: TOKEN_LAYER as it is at each call
        self._cache_chunks = cache_chunks
        self._cache_bytes = cache_bytes
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._held = 0  # bytes in the cache
        self._lock = threading.Lock()

    @property
    def _layer(self) -> int:
        return TOKEN_LAYER if self._fixed_layer is None else self._fixed_layer

    def _key(self, text: str) -> str:
        return f"{self._layer}:" + hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _lookup(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        with self._lock:
            found = [self._cache.get(k) for k in keys]
            for k, f in zip(keys, found):
                if f is not None:
                    self._cache.move_to_end(k)
        return found

    def _remember(self, key: str, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = rows
                self._held += rows.nbytes
            while len(self._cache) > 1 and (len(self._cache) > self._cache_chunks or self._held > self._cache_bytes):
                _, dropped = self._cache.popitem(last=False)
                self._held -= dropped.nbytes
        return rows

    def _passage_states(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> list[np.ndarray]:
        keys = list(keys) if keys is not None else [self._key(t) for t in texts]
        found = self._lookup(keys)
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            states = self._embedder.embed_tokens([texts[i] for i in missing], query=False, layer=self._layer)
            for i, st in zip(missing, states):
                # float16 first: the states stored with an index are float16, and the cache gives the same
                found[i] = self._remember(keys[i], st.vectors.astype(np.float16))
        return found  # type: ignore[return-value]

    def scorer(self, question: str, question_states: TokenStates, stored: StoredStates | None = None) -> TokenScorer:
        """Scores chunks against this question, whose states came with its pooled vector; ``stored`` gives
        the states a build stored (by chunk id), the others are computed; both are cached."""
        q = question_pieces(question, question_states)

        def score(chunks: Sequence[Chunk]) -> np.ndarray:
            if not chunks:
                return np.zeros(0, dtype=np.float32)
            keys = [self._key(c.text) for c in chunks]
            states = self._lookup(keys)
            missing = [i for i, f in enumerate(states) if f is None]
            if missing and stored is not None:
                for i, rows in zip(missing, stored([chunks[i].id for i in missing])):
                    if rows is not None:
                        states[i] = self._remember(keys[i], rows)
            missing = [i for i in missing if states[i] is None]
            if missing:
                computed = self._passage_states([chunks[i].text for i in missing], [keys[i] for i in missing])
                for i, rows in zip(missing, computed):
                    states[i] = rows
            return _maxsims(q, states)

        return score

    def __call__(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """MaxSim of each passage to ``question`` (its states computed here)."""
        states = self._embedder.embed_tokens([question], query=True, layer=self._layer)[0]
        if not passages:
            return np.zeros(0, dtype=np.float32)
        return _maxsims(question_pieces(question, states), self._passage_states(passages))


def _maxsims(question_rows: np.ndarray, passages: Sequence[np.ndarray]) -> np.ndarray:
    return np.array([maxsim(question_rows, p) for p in passages], dtype=np.float32)


def embed_question(
    embedder, question: str, stored: StoredStates | None = None
) -> tuple[np.ndarray, TokenScorer | None]:
    """The question's vector and, when the embedder exposes token states, its token scorer, from
    one forward pass (a second pass would double the cost of a warm answer); ``stored`` looks up the
    states a build stored (``IndexReader.token_states``)."""
    matcher = matcher_for(embedder)
    if matcher is None:
        return embedder.embed_query(question), None
    vector, states = embedder.embed_query_tokens(question, layer=matcher._layer)
    return vector, matcher.scorer(question, states, stored)


_matchers: dict[int, TokenMatcher] = {}
_matchers_lock = threading.Lock()


def matcher_for(embedder) -> TokenMatcher | None:
    """The embedder's token matcher, made once per embedder; None when it exposes no token states."""
    if not all(callable(getattr(embedder, m, None)) for m in ("embed_tokens", "embed_query_tokens")):
        return None
    with _matchers_lock:
        key = id(embedder)
        if key not in _matchers or _matchers[key]._embedder is not embedder:
            _matchers[key] = TokenMatcher(embedder)
        return _matchers[key]
