"""Converting a sentence-transformers model to ONNX once (export, fusion, int8 quantisation), under a
file lock, into the model cache; what ``onnx.OnnxEmbedder`` runs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .base import model_dir_or_default

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
EXPORT_VERSION = 3  # bump when the export or the quantisation changes, so caches are rebuilt


def onnx_dir(model_dir: Path, quant: str, cache_dir: str | Path | None = None) -> Path:
    base = Path(cache_dir) if cache_dir else model_dir.parent
    return base / f"{model_dir.name}-onnx-{quant}-e{EXPORT_VERSION}"


def ensure_onnx(model_dir: str | Path | None = None, quant: str = "int8", cache_dir: str | Path | None = None) -> Path:
    """The ONNX file for ``model_dir`` (exported, then quantised for ``int8``), converting it only once."""
    from filelock import FileLock

    model_dir = model_dir_or_default(model_dir)
    target = onnx_dir(model_dir, quant, cache_dir)
    done = target / ONNX_FILE
    if done.is_file():
        return done
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if done.is_file():
            return done
        log.warning("Converting %s to ONNX (%s), once, into %s ...", model_dir, quant, target)
        tmp = Path(tempfile.mkdtemp(prefix=".onnx-", dir=target.parent))
        try:
            fp32 = tmp / "fp32.onnx"
            export_onnx(model_dir, fp32)
            out_dir = tmp / "out"
            out_dir.mkdir()
            if quant == "int8":
                quantize_int8(fp32, out_dir / ONNX_FILE)
            else:
                os.replace(fp32, out_dir / ONNX_FILE)
            (out_dir / "rag_onnx.json").write_text(
                json.dumps({"source": str(model_dir), "quant": quant, "export_version": EXPORT_VERSION}, indent=2)
            )
            if target.exists():
                shutil.rmtree(target)
            os.replace(out_dir, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return done


def export_onnx(model_dir: Path, out: Path) -> None:
    """BERT + attention-masked mean pooling + L2 normalisation, as one ONNX graph with dynamic batch and
    length, then fused by onnxruntime's transformer optimizer (Attention, SkipLayerNorm, BiasGelu).

    The encoder is loaded with eager attention: the graph exported from PyTorch's SDPA path is not
    recognised by the fuser, and the unfused graph is no faster than PyTorch."""
    import warnings

    import torch
    from sentence_transformers import SentenceTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = SentenceTransformer(
            str(model_dir), device="cpu", model_kwargs={"add_pooling_layer": False, "attn_implementation": "eager"}
        )
    bert = st[0].model if hasattr(st[0], "model") else st[0].auto_model
    config = bert.config

    class Pooled(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=-1)

    raw = out.with_name(out.stem + ".raw.onnx")
    example = (torch.full((2, 16), 5, dtype=torch.long), torch.ones((2, 16), dtype=torch.long))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(bert).eval(),
            example,
            str(raw),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(
        str(raw), model_type="bert", num_heads=int(config.num_attention_heads), hidden_size=int(config.hidden_size),
        opt_level=1,
    )
    fused.save_model_to_file(str(out))
    raw.unlink(missing_ok=True)


def quantize_int8(src: Path, dst: Path) -> None:
    """onnxruntime dynamic quantisation: signed int8 weights, one scale per output channel, 7-bit range,
    for the MatMuls and the fused Attention projections (the embedding table stays fp32); activations
    are quantised (uint8) on the fly. Signed weights select MLAS's u8s8 kernel, the fast one on AVX2;
    ``reduce_range`` keeps its 16-bit intermediate sums from saturating on CPUs without VNNI.
    Measured against per-channel uint8 weights (u8u8 kernel): ~15% faster, same dev recall or better."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), op_types_to_quantize=["MatMul", "Attention"], weight_type=QuantType.QInt8,
        per_channel=True, reduce_range=True, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )

