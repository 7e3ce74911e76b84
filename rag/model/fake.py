"""A deterministic, model-free embedder for tests: a bag of sha256-seeded word vectors."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from .base import TokenStates, unit_rows


class FakeEmbedder:
    """Deterministic, model-free embedder for fast tests: a bag of hashed word vectors.

    Each word maps to a fixed random unit vector seeded from sha256 of the word, so texts
    sharing words are similar and identical texts give identical vectors."""

    _WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)

    def __init__(self, dim: int = 64, max_tokens: int = 512) -> None:
        self.dim = dim
        self.max_tokens = max_tokens
        self.model_id = f"fake-sha256-{dim}"
        self.fingerprint = "fake:1"
        self.content_tokens = max_tokens - 2

    def _word_vector(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.lower().encode("utf-8")).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def _embed(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in self._WORD.findall(text):
            if len(word) > 2:
                vec += self._word_vector(word)
        if not vec.any():
            vec = self._word_vector("\x00" + text)
        return vec / np.linalg.norm(vec)

    def count_tokens(self, text: str) -> int:
        return len(self._WORD.findall(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        ends = [m.end() for m in self._WORD.finditer(text)]
        return text if len(ends) <= max_tokens else text[: ends[max_tokens - 1]]

    def embed_documents(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return np.stack([self._embed(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed(text)

    def embed_tokens(self, texts: Sequence[str], query: bool = False, layer: int = 8) -> list[TokenStates]:
        """Each word of three letters or more as its hashed vector: the same words match exactly."""
        out = []
        for text in texts:
            words = [m for m in self._WORD.finditer(text) if len(m.group()) > 2]
            rows = [self._word_vector(m.group()) for m in words]
            vectors = unit_rows(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)
            out.append(TokenStates(vectors, tuple(m.span() for m in words)))
        return out

    def embed_query_tokens(self, text: str, layer: int = 8) -> tuple[np.ndarray, TokenStates]:
        return self.embed_query(text), self.embed_tokens([text], query=True, layer=layer)[0]

    def embed_documents_with_tokens(self, texts: Sequence[str], layer: int = 8) -> tuple[np.ndarray, list[TokenStates]]:
        return self.embed_documents(texts), self.embed_tokens(texts, query=False, layer=layer)

