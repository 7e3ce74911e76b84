"""The embedder interface, the real sentence-transformers implementation and a fast fake."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import ModelError
from .model_build import BUILD_INFO_FILE, DEFAULT_MODEL_ID, ensure_default_model, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenStates:
    """A text's word pieces as unit vectors (one row each) and their character spans in the text."""

    vectors: np.ndarray
    spans: tuple[tuple[int, int], ...]


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    fingerprint: str  # identifies the weights: an index built with others is refused
    dim: int
    max_tokens: int  # the most tokens the model reads, special tokens and prefix included

    def embed_documents(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model; vectors are L2-normalised float32."""

    def __init__(self, name_or_path: str = DEFAULT_MODEL_ID, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        path, self.model_id, self.fingerprint = _resolve(name_or_path)
        self._model = _load(path)
        self.dim = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length or 512)
        self._tokenizer = self._model.tokenizer
        # tokenizers are not safe to call from many threads at once
        self._lock = threading.Lock()
        prompts = getattr(self._model, "prompts", {}) or {}
        self._prefix_tokens = max(
            (self.count_tokens(p) for p in prompts.values() if p), default=0
        )

    @property
    def content_tokens(self) -> int:
        """Tokens left for text once the prompt prefix and special tokens are in."""
        return self.max_tokens - self._prefix_tokens - 2

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        with self._lock:
            enc = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) <= max_tokens:
            return text
        return text[: offsets[max_tokens - 1][1]]

    def embed_documents(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode_document(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            vec = self._model.encode_query(
                [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.ascontiguousarray(vec[0], dtype=np.float32)

    def embed_tokens(self, texts: Sequence[str], query: bool = False, layer: int = 8) -> list[TokenStates]:
        """Per text, the L2-normalised hidden states of its word pieces at encoder ``layer``, with
        the prompt prefix, the special tokens and pure punctuation left out (``token_match``)."""
        out: list[TokenStates] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(self._token_forward(texts[start : start + self.batch_size], query, layer)[0])
        return out

    def embed_query_tokens(self, text: str, layer: int = 8) -> tuple[np.ndarray, TokenStates]:
        """``embed_query(text)`` and ``embed_tokens([text], query=True, layer)[0]`` from one forward pass."""
        states, pooled = self._token_forward([text], True, layer)
        return pooled[0], states[0]

    def _token_forward(self, texts: Sequence[str], query: bool, layer: int) -> tuple[list[TokenStates], np.ndarray]:
        """The texts' word-piece states at ``layer`` and their pooled vectors (mean of the last layer
        over the attention mask, L2-normalised: what the model's Pooling and Normalize modules compute)."""
        import torch

        prompts = getattr(self._model, "prompts", {}) or {}
        prefix = prompts.get("query" if query else "document", "")
        batch = [prefix + t for t in texts]
        with self._lock:
            enc = self._tokenizer(
                batch, padding=True, truncation=True, max_length=self.max_tokens,
                return_offsets_mapping=True, return_tensors="pt",
            )
            offsets = enc.pop("offset_mapping").tolist()
            with torch.inference_mode():
                hidden = self._model[0].auto_model(**enc, output_hidden_states=True).hidden_states
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden[-1].dtype)
        pooled = _unit_rows(((hidden[-1] * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float().numpy())
        states = []
        for row, text in enumerate(batch):
            # by character offsets: special tokens and padding span nothing, the prefix lies before len(prefix)
            keep = [
                i for i, (a, b) in enumerate(offsets[row])
                if b > a and b > len(prefix) and any(ch.isalnum() for ch in text[max(a, len(prefix)) : b])
            ]
            spans = tuple((max(0, offsets[row][i][0] - len(prefix)), offsets[row][i][1] - len(prefix)) for i in keep)
            states.append(TokenStates(_unit_rows(hidden[layer][row, keep].float().numpy()), spans))
        return states, pooled


def _resolve(name_or_path: str) -> tuple[Path | str, str, str]:
    """(what to load, model id, weights fingerprint)."""
    if name_or_path == DEFAULT_MODEL_ID:
        path = ensure_default_model()
        info = json.loads((path / BUILD_INFO_FILE).read_text())
        return path, info["model_id"], info["fingerprint"]
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        info_file = local / BUILD_INFO_FILE
        if info_file.is_file():
            info = json.loads(info_file.read_text())
            return local, info["model_id"], info["fingerprint"]
        return local, str(local.resolve()), _fingerprint_dir(local)
    return name_or_path, name_or_path, "hub:" + name_or_path


def _fingerprint_dir(path: Path) -> str:
    weights = sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".onnx"})
    digest = hashlib.sha256()
    for w in weights:
        digest.update(w.name.encode())
        digest.update(sha256_file(w).encode())
    return "sha256:" + digest.hexdigest()[:16]


def _load(path: Path | str):
    try:
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        kwargs = {}
        if isinstance(path, Path) and (path / BUILD_INFO_FILE).is_file():
            kwargs["model_kwargs"] = {"add_pooling_layer": False}  # mean pooling needs no pooler
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SentenceTransformer(str(path), device="cpu", **kwargs)
    except Exception as exc:  # the loader raises many kinds; all mean "cannot use this model"
        raise ModelError(
            f"cannot load the embedding model {str(path)!r}: {type(exc).__name__}: {str(exc)[:300]}. "
            "Give a local sentence-transformers directory with --model or RAG_EMBEDDING_MODEL "
            "(this machine may not reach the Hugging Face Hub)."
        ) from exc


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
            vectors = _unit_rows(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)
            out.append(TokenStates(vectors, tuple(m.span() for m in words)))
        return out

    def embed_query_tokens(self, text: str, layer: int = 8) -> tuple[np.ndarray, TokenStates]:
        return self.embed_query(text), self.embed_tokens([text], query=True, layer=layer)[0]


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def split_backend(model: str) -> tuple[str, str | None]:
    """``"name#backend"`` -> ``("name", "backend")`` when ``backend`` is a fast backend of
    ``rag.fast_embed`` (e.g. ``"intfloat/multilingual-e5-small#onnx-fp32"``); else ``(model, None)``."""
    base, sep, backend = model.rpartition("#")
    if not sep or not base:
        return model, None
    from .fast_embed import BACKENDS

    if backend in BACKENDS:
        return base, backend
    if Path(model).expanduser().exists():  # a directory whose name has a '#'
        return model, None
    raise ModelError(
        f"unknown embedding backend {backend!r} in {model!r}; known: {', '.join(sorted(BACKENDS))}"
    )


def get_embedder(model: str = DEFAULT_MODEL_ID) -> Embedder:
    """The embedder for ``model``, loaded once per process and then reused. ``"<model>#<backend>"``
    selects a faster CPU runtime of the same model (``rag.fast_embed.BACKENDS``)."""
    with _cache_lock:
        if model not in _cache:
            log.info("Loading embedding model %s", model)
            base, backend = split_backend(model)
            if backend is None:
                _cache[model] = SentenceTransformerEmbedder(model)
            else:
                from .fast_embed import load_backend

                _cache[model] = load_backend(base, backend)
        return _cache[model]
