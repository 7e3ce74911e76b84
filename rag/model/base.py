"""The embedder interface and what every runtime of a model shares: token states, unit rows, and
reading a model directory (which weights, which id and fingerprint, which prompts, how many tokens)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..checksum import sha256_file
from .build import BUILD_INFO_FILE, DEFAULT_MODEL_ID, ensure_default_model

PROMPTS = {"query": "query: ", "document": "passage: "}  # the e5 prefixes the default model uses
# The encoder layer whose word-piece states the token match compares (rag/query/token_match.py says which
# layers were measured); the ONNX export returns this layer's states beside the pooled vector.
TOKEN_LAYER = 8


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


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)




def resolve(name_or_path: str) -> tuple[Path | str, str, str]:
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
        return local, str(local.resolve()), fingerprint_dir(local)
    return name_or_path, name_or_path, "hub:" + name_or_path


def fingerprint_dir(path: Path) -> str:
    weights = sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".onnx"})
    digest = hashlib.sha256()
    for w in weights:
        digest.update(w.name.encode())
        digest.update(sha256_file(w).encode())
    return "sha256:" + digest.hexdigest()[:16]



def model_info(model_dir: Path) -> tuple[str, str]:
    info_file = model_dir / BUILD_INFO_FILE
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        return info["model_id"], info["fingerprint"]
    return str(model_dir.resolve()), fingerprint_dir(model_dir)


def read_prompts(model_dir: Path) -> dict[str, str]:
    cfg = model_dir / "config_sentence_transformers.json"
    if cfg.is_file():
        prompts = json.loads(cfg.read_text()).get("prompts") or {}
        if prompts:
            return {k: v for k, v in prompts.items() if isinstance(v, str)}
    return dict(PROMPTS)


def max_seq_length(model_dir: Path) -> int:
    cfg = model_dir / "sentence_bert_config.json"
    if cfg.is_file():
        value = json.loads(cfg.read_text()).get("max_seq_length")
        if value:
            return int(value)
    return 512


def model_dir_or_default(model_dir: str | Path | None) -> Path:
    if model_dir is None:
        return ensure_default_model()
    return Path(model_dir).expanduser()
