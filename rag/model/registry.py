"""Which embedder a model setting names, loaded once per process.

* the default model (``intfloat/multilingual-e5-small``): the ONNX runtime (``onnx``), no PyTorch, the
  reference runtime's vectors and identity;
* any other model a user names (a sentence-transformers directory or name): sentence-transformers;
* ``"<model>#torch"``: sentence-transformers for the default model too (the reference runtime);
* ``"<model>#onnx-int8"`` / ``"#onnx-fp32"``: the ONNX runtime under its own identity (``onnx.BACKENDS``)."""

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


TORCH = "torch"  # "<model>#torch": the sentence-transformers runtime


def split_backend(model: str) -> tuple[str, str | None]:
    """``"name#backend"`` -> ``("name", "backend")`` when ``backend`` is ``torch`` or a backend of
    ``rag.model.onnx`` (e.g. ``"intfloat/multilingual-e5-small#onnx-int8"``); else ``(model, None)``."""
    base, sep, backend = model.rpartition("#")
    if not sep or not base:
        return model, None
    from .onnx import BACKENDS

    if backend in BACKENDS or backend == TORCH:
        return base, backend
    if Path(model).expanduser().exists():  # a directory whose name has a '#'
        return model, None
    known = ", ".join(sorted([*BACKENDS, TORCH]))
    raise ModelError(f"unknown embedding backend {backend!r} in {model!r}; known: {known}")


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
            _cache[model] = _load(model)
        return _cache[model]


def _load(model: str) -> Embedder:
    if fake_dim(model):
        # the model-free test embedder, by name: a child process (rag.worker) finds it this way too
        from .fake import FakeEmbedder

        return FakeEmbedder(dim=fake_dim(model))
    base, backend = split_backend(model)
    if backend is None and base == DEFAULT_MODEL_ID:
        from .onnx import load_default_runtime

        return load_default_runtime(base)
    if backend is None or backend == TORCH:
        from .sentence_transformer import SentenceTransformerEmbedder

        # for the default model: the same id and fingerprint as the ONNX runtime (same vectors, same index)
        return SentenceTransformerEmbedder(base)
    from .onnx import load_backend

    return load_backend(base, backend)
