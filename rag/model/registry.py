"""Which embedder a model setting names, loaded once per process: ``"<model>"`` runs through
sentence-transformers, ``"<model>#<backend>"`` through a faster runtime of the same model (``onnx``)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..errors import ModelError
from .base import Embedder
from .build import DEFAULT_MODEL_ID

log = logging.getLogger("rag.model")
_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def split_backend(model: str) -> tuple[str, str | None]:
    """``"name#backend"`` -> ``("name", "backend")`` when ``backend`` is a fast backend of
    ``rag.model.onnx`` (e.g. ``"intfloat/multilingual-e5-small#onnx-fp32"``); else ``(model, None)``."""
    base, sep, backend = model.rpartition("#")
    if not sep or not base:
        return model, None
    from .onnx import BACKENDS

    if backend in BACKENDS:
        return base, backend
    if Path(model).expanduser().exists():  # a directory whose name has a '#'
        return model, None
    raise ModelError(
        f"unknown embedding backend {backend!r} in {model!r}; known: {', '.join(sorted(BACKENDS))}"
    )


def fake_dim(model: str) -> int:
    """The dimension a ``fake-sha256-<dim>`` name asks for (``FakeEmbedder.model_id``); 0 for a real model."""
    prefix, _, dim = model.rpartition("-")
    return int(dim) if prefix == "fake-sha256" and dim.isdigit() and 0 < int(dim) <= 4096 else 0


def get_embedder(model: str = DEFAULT_MODEL_ID) -> Embedder:
    """The embedder for ``model``, loaded once per process and then reused. ``"<model>#<backend>"``
    selects a faster CPU runtime of the same model (``rag.model.onnx.BACKENDS``)."""
    with _cache_lock:
        if model not in _cache:
            log.info("Loading embedding model %s", model)
            base, backend = split_backend(model)
            if fake_dim(model):
                # the model-free test embedder, by name: a child process (rag.worker) finds it this way too
                from .fake import FakeEmbedder

                _cache[model] = FakeEmbedder(dim=fake_dim(model))
            elif backend is None:
                from .sentence_transformer import SentenceTransformerEmbedder

                _cache[model] = SentenceTransformerEmbedder(model)
            else:
                from .onnx import load_backend

                _cache[model] = load_backend(base, backend)
        return _cache[model]
