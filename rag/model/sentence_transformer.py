"""The reference runtime: a sentence-transformers model (PyTorch); vectors are L2-normalised float32."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import TOKEN_LAYER, TokenStates, resolve, unit_rows
from .build import BUILD_INFO_FILE, DEFAULT_MODEL_ID


class SentenceTransformerEmbedder:
    """A sentence-transformers model; vectors are L2-normalised float32."""

    def __init__(self, name_or_path: str = DEFAULT_MODEL_ID, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        path, self.model_id, self.fingerprint = resolve(name_or_path)
        self._model = load_sentence_transformer(path)
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

    def embed_tokens(self, texts: Sequence[str], query: bool = False, layer: int = TOKEN_LAYER) -> list[TokenStates]:
        """Per text, the L2-normalised hidden states of its word pieces at encoder ``layer``, with
        the prompt prefix, the special tokens and pure punctuation left out (``token_match``)."""
        out: list[TokenStates] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(self._token_forward(texts[start : start + self.batch_size], query, layer)[0])
        return out

    def embed_documents_with_tokens(
        self, texts: Sequence[str], layer: int = TOKEN_LAYER
    ) -> tuple[np.ndarray, list[TokenStates]]:
        """``embed_documents(texts)`` and ``embed_tokens(texts, layer=layer)`` from one forward pass per batch."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        vectors, states = [], []
        for start in range(0, len(texts), self.batch_size):
            batch_states, pooled = self._token_forward(texts[start : start + self.batch_size], False, layer)
            states.extend(batch_states)
            vectors.append(pooled)
        return np.concatenate(vectors), states

    def embed_query_tokens(self, text: str, layer: int = TOKEN_LAYER) -> tuple[np.ndarray, TokenStates]:
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
        pooled = unit_rows(((hidden[-1] * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float().numpy())
        states = []
        for row, text in enumerate(batch):
            # by character offsets: special tokens and padding span nothing, the prefix lies before len(prefix)
            keep = [
                i for i, (a, b) in enumerate(offsets[row])
                if b > a and b > len(prefix) and any(ch.isalnum() for ch in text[max(a, len(prefix)) : b])
            ]
            spans = tuple((max(0, offsets[row][i][0] - len(prefix)), offsets[row][i][1] - len(prefix)) for i in keep)
            states.append(TokenStates(unit_rows(hidden[layer][row, keep].float().numpy()), spans))
        return states, pooled



def load_sentence_transformer(path: Path | str):
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

