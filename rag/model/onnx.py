"""The ONNX runtime of the default model: no PyTorch, no transformers, at query or build time.

``OnnxEmbedder`` runs the graph ``onnx_convert`` exports once (BERT + mean pooling + L2 normalisation,
plus the states of encoder layer 8 for the token match) with onnxruntime, and tokenises with the Rust
``tokenizers`` library from the model's own ``tokenizer.json``, exactly as the sentence-transformers
runtime does (same ids, same offsets; holding only the Latin-script pieces until a text needs the
others, see ``tokenize``), so chunking, vectors (cosine 1.0000) and answers are those of the
reference runtime. It is what the default model runs on (``registry``); ``"<model>#torch"`` selects the
sentence-transformers runtime, which stays the reference: the model is built and checked with it, and
any other model a user names runs through it.

Backends of the registry (``"intfloat/multilingual-e5-small#<backend>"``):

* ``onnx-fp32``: this runtime under its own model id and fingerprint (older indexes were built so).
* ``onnx-int8``: onnxruntime's dynamic int8 quantisation of the MatMul weights (1.87x the texts/s on an
  AVX2 CPU without VNNI, cosine 0.994-0.997 to fp32; an index built with it is rebuilt, not mixed).
  Activations are quantised with one scale per batch, so a text's int8 vector depends a little on the
  texts batched with it (cosine ~0.996 between alone and batched).

Measurements and what was tried: docs/benchmarks.md ("Fast embedding").
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import (
    TOKEN_LAYER,
    TokenStates,
    max_seq_length,
    model_dir_or_default,
    model_info,
    read_prompts,
    resolve,
    unit_rows,
)
from .onnx_convert import (
    EXPORT_VERSION,
    INFO_FILE,
    ONNX_FILE,
    WORD_TABLE_FILE,
    WORD_TABLE_INPUT,
    ensure_onnx,
)
from .tokenize import SubsetTokenizer

BACKENDS = {"onnx-int8": "int8", "onnx-fp32": "fp32"}  # "<model>#<backend>" -> OnnxEmbedder quant


class WordTable:
    """The word-embedding table on disk (a float32 ``.npy``), read row by row with ``pread``.

    Memory-mapping it would be simpler, but each page fault maps the kernel's fault-around pages too
    (64 KB for a 1.5 KB row), so the resident memory of a process that embeds a few documents would grow
    by hundreds of megabytes; reading only the rows of a batch's ids keeps it to those rows."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)  # the header only: a .npy's data is never unpickled here
            self._offset = f.tell()
        if fortran or dtype != np.float32 or len(shape) != 2:
            raise ModelError(f"{path} is not a float32 table of word vectors")
        self.rows, self.dim = int(shape[0]), int(shape[1])
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)
        self._row_bytes = self.dim * 4
        if os.fstat(self._fd).st_size != self._offset + self.rows * self._row_bytes:
            raise ModelError(f"{path} is shorter or longer than its header says; delete it to convert again")

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """Rows for ``ids`` (sorted and unique)."""
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        view = memoryview(out).cast("B")
        for i, row in enumerate(ids.tolist()):
            start = i * self._row_bytes
            view[start : start + self._row_bytes] = os.pread(self._fd, self._row_bytes, self._offset + row * self._row_bytes)
        return out


class OnnxEmbedder:
    """A sentence-transformers model directory run through onnxruntime (``quant="fp32"`` or ``"int8"``).

    ``identity`` (model id, fingerprint) replaces the runtime's own: the default model runs here under the
    reference runtime's identity, because its vectors are the same, so an index built by either runtime is
    read by the other."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        quant: str = "int8",
        batch_size: int = 32,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        identity: tuple[str, str] | None = None,
    ) -> None:
        import onnxruntime as ort

        if quant not in ("int8", "fp32"):
            raise ModelError(f"quant must be 'int8' or 'fp32', got {quant!r}")
        model_dir = model_dir_or_default(model_dir)
        self.batch_size = batch_size
        self.quant = quant
        if identity is None:
            base_id, base_fp = model_info(model_dir)
            identity = (f"{base_id}#onnx-{quant}", f"{base_fp}:onnx-{quant}:e{EXPORT_VERSION}")
        self.model_id, self.fingerprint = identity
        self.onnx_dir = ensure_onnx(model_dir, quant, cache_dir)
        self.token_layer = int(json.loads((self.onnx_dir / INFO_FILE).read_text()).get("layer", TOKEN_LAYER))
        self._table = WordTable(self.onnx_dir / WORD_TABLE_FILE)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        # no busy-waiting between operators: on a shared 2-core machine spinning threads steal the other's core
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(self.onnx_dir / ONNX_FILE), opts, providers=["CPUExecutionProvider"])
        self._run_lock = threading.Lock()
        # the pieces a Latin-script text can use, the whole vocabulary only once a text needs it
        self._tok = SubsetTokenizer(model_dir / "tokenizer.json", self.onnx_dir)
        self._tok_lock = threading.Lock()  # tokenizers are not safe to call from many threads at once
        self.prompts = read_prompts(model_dir)
        self.max_tokens = max_seq_length(model_dir)
        self._prefix_tokens = max((self.count_tokens(p) for p in self.prompts.values() if p), default=0)
        pad = self._tok.token_to_id("<pad>")
        self._pad_id = 1 if pad is None else int(pad)
        self.dim = self._table.dim

    # --- tokens

    @property
    def content_tokens(self) -> int:
        """Tokens left for text once the prompt prefix and special tokens are in."""
        return self.max_tokens - self._prefix_tokens - 2

    def count_tokens(self, text: str) -> int:
        with self._tok_lock:
            return len(self._tok.encode(text, add_special_tokens=False)[0])

    def truncate(self, text: str, max_tokens: int) -> str:
        with self._tok_lock:
            offsets = self._tok.encode(text, add_special_tokens=False)[1]
        if len(offsets) <= max_tokens:
            return text
        return text[: offsets[max_tokens - 1][1]]

    def _encode(self, texts: list[str]):
        """Per text: ids (with the special tokens, cut to ``max_tokens`` keeping the closing one, as the
        reference runtime's truncation does) and character offsets."""
        with self._tok_lock:
            encs = self._tok.encode_batch(texts, add_special_tokens=True)
        out = []
        for ids, offsets in encs:
            if len(ids) > self.max_tokens:
                ids = ids[: self.max_tokens - 1] + [ids[-1]]
                offsets = offsets[: self.max_tokens - 1] + [offsets[-1]]
            out.append((ids, offsets))
        return out

    # --- forward passes

    def _forward(self, texts: list[str], states: bool):
        """(positions, embeddings, states or None, encodings) per batch of ``texts``, longest first."""
        encoded = self._encode(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i][0]))
        for start in range(0, len(order), self.batch_size):
            pos = order[start : start + self.batch_size]
            width = max(len(encoded[i][0]) for i in pos)
            ids = np.full((len(pos), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(pos), width), dtype=np.int64)
            for row, i in enumerate(pos):
                ids[row, : len(encoded[i][0])] = encoded[i][0]
                mask[row, : len(encoded[i][0])] = 1
            # the graph sees only the rows of this batch's ids, renumbered 0..n-1
            unique, local = np.unique(ids, return_inverse=True)
            feed = {"input_ids": local.reshape(ids.shape).astype(np.int64), "attention_mask": mask,
                    WORD_TABLE_INPUT: self._table.gather(unique)}
            with self._run_lock:
                outputs = self._session.run(["embedding", "states"] if states else ["embedding"], feed)
            yield pos, outputs[0], (outputs[1] if states else None), [encoded[i] for i in pos]

    def _states_of(self, hidden_row: np.ndarray, text: str, offsets, prefix_len: int) -> TokenStates:
        """The word pieces of ``text`` (after its prompt prefix) that hold a letter or a digit: unit rows
        of their states and their spans in the text, as ``SentenceTransformerEmbedder._token_forward``."""
        keep = [
            i for i, (a, b) in enumerate(offsets)
            if b > a and b > prefix_len and any(ch.isalnum() for ch in text[max(a, prefix_len) : b])
        ]
        spans = tuple((max(0, offsets[i][0] - prefix_len), offsets[i][1] - prefix_len) for i in keep)
        return TokenStates(unit_rows(hidden_row[keep]), spans)

    def _run(self, texts: Sequence[str], query: bool, states: bool) -> tuple[np.ndarray, list[TokenStates] | None]:
        prefix = self.prompts.get("query" if query else "document", "")
        batch = [prefix + t for t in texts]
        vectors = np.zeros((len(batch), self.dim), dtype=np.float32)
        token_states: list[TokenStates | None] = [None] * len(batch)
        for pos, vec, hidden, encoded in self._forward(batch, states):
            vectors[pos] = vec
            if states:
                for row, (i, (_, offsets)) in enumerate(zip(pos, encoded)):
                    token_states[i] = self._states_of(hidden[row], batch[i], offsets, len(prefix))
        return vectors, (token_states if states else None)

    def _check_layer(self, layer: int) -> None:
        if layer != self.token_layer:
            raise ModelError(f"this ONNX export gives the states of layer {self.token_layer}, not {layer}")

    # --- the Embedder interface, and token states for the token match

    def embed_documents(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._run(texts, query=False, states=False)[0]

    def embed_query(self, text: str) -> np.ndarray:
        return self._run([text], query=True, states=False)[0][0]

    def embed_tokens(self, texts: Sequence[str], query: bool = False, layer: int = TOKEN_LAYER) -> list[TokenStates]:
        self._check_layer(layer)
        return self._run(list(texts), query=query, states=True)[1] if texts else []

    def embed_query_tokens(self, text: str, layer: int = TOKEN_LAYER) -> tuple[np.ndarray, TokenStates]:
        self._check_layer(layer)
        vectors, states = self._run([text], query=True, states=True)
        return vectors[0], states[0]

    def embed_documents_with_tokens(
        self, texts: Sequence[str], layer: int = TOKEN_LAYER
    ) -> tuple[np.ndarray, list[TokenStates]]:
        """``embed_documents(texts)`` and ``embed_tokens(texts, layer=layer)`` from one forward pass."""
        self._check_layer(layer)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        vectors, states = self._run(list(texts), query=False, states=True)
        return vectors, states


def load_backend(model: str, backend: str) -> OnnxEmbedder:
    """The embedder ``backend`` (a key of ``BACKENDS``) for ``model`` (the default model id or a local
    sentence-transformers directory); what ``get_embedder("<model>#<backend>")`` calls."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown embedding backend {backend!r}; known: {', '.join(sorted(BACKENDS))}")
    path, _, _ = resolve(model)
    if not isinstance(path, Path):
        raise ModelError(f"the {backend} backend needs a local model directory, not {model!r}")
    return OnnxEmbedder(path, quant=BACKENDS[backend])


def load_default_runtime(model: str) -> OnnxEmbedder:
    """The default model through onnxruntime fp32, under the reference runtime's id and fingerprint."""
    path, model_id, fingerprint = resolve(model)
    return OnnxEmbedder(path, quant="fp32", identity=(model_id, fingerprint))
