"""The fast CPU embedders (rag/model/onnx.py): registry selection, convert-once, and (with the real
model) vectors and rankings close to the fp32 model's."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ModelError
from rag.model import onnx, onnx_convert, registry
from rag.model.build import DEFAULT_MODEL_ID

# ----------------------------------------------------------------------------- no model needed


def test_split_backend():
    assert registry.split_backend(DEFAULT_MODEL_ID) == (DEFAULT_MODEL_ID, None)
    assert registry.split_backend(DEFAULT_MODEL_ID + "#onnx-int8") == (DEFAULT_MODEL_ID, "onnx-int8")
    assert registry.split_backend("/some/dir#onnx-fp32") == ("/some/dir", "onnx-fp32")
    with pytest.raises(ModelError, match="unknown embedding backend"):
        registry.split_backend(DEFAULT_MODEL_ID + "#tensorrt")


def test_directory_with_hash_is_a_plain_model(tmp_path):
    d = tmp_path / "my#model"
    d.mkdir()
    assert registry.split_backend(str(d)) == (str(d), None)


def test_load_backend_refuses_unknown_backend():
    with pytest.raises(ModelError, match="unknown embedding backend"):
        onnx.load_backend(DEFAULT_MODEL_ID, "int3")


def _fake_conversion(monkeypatch) -> list[Path]:
    calls: list[Path] = []

    def export(model_dir, out_dir):
        calls.append(out_dir)
        (Path(out_dir) / onnx_convert.ONNX_FILE).write_bytes(b"fp32")
        (Path(out_dir) / onnx_convert.WORD_TABLE_FILE).write_bytes(b"table")

    def quant(src, dst):
        Path(dst).write_bytes(b"int8:" + Path(src).read_bytes())

    monkeypatch.setattr(onnx_convert, "export_onnx", export)
    monkeypatch.setattr(onnx_convert, "quantize_int8", quant)
    return calls


def test_converted_once_and_reused(tmp_path, monkeypatch):
    calls = _fake_conversion(monkeypatch)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    first = onnx_convert.ensure_onnx(model_dir, "int8", tmp_path / "cache")
    again = onnx_convert.ensure_onnx(model_dir, "int8", tmp_path / "cache")
    assert first == again and (first / onnx_convert.ONNX_FILE).read_bytes() == b"int8:fp32"
    assert (first / onnx_convert.WORD_TABLE_FILE).read_bytes() == b"table"
    assert len(calls) == 1
    # fp32 and int8 live in distinct folders; no temporary folder is left behind
    fp32 = onnx_convert.ensure_onnx(model_dir, "fp32", tmp_path / "cache")
    assert fp32 != first and (fp32 / onnx_convert.ONNX_FILE).read_bytes() == b"fp32"
    assert len(calls) == 2
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".onnx-")]


def test_concurrent_callers_convert_once(tmp_path, monkeypatch):
    calls = _fake_conversion(monkeypatch)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(onnx_convert.ensure_onnx(model_dir, "int8", tmp_path / "c")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 4


# ----------------------------------------------------------------------------- the real model

TEXTS = [
    "Les Français font davantage confiance aux médias pure-players qu'aux chaînes de télévision.",
    "La réforme des retraites a provoqué des grèves dans les transports publics pendant plusieurs semaines.",
    "Le prix du pain a augmenté de dix pour cent en un an à cause du coût de l'énergie.",
    "The central bank raised interest rates by a quarter point to fight inflation.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The football club signed a new striker from Brazil for a record transfer fee.",
]
QUESTIONS = [
    ("pourquoi les Français font-ils confiance aux pure-players ?", 0),
    ("quelles ont été les conséquences de la réforme des retraites ?", 1),
    ("combien coûte le pain ?", 2),
    ("what did the central bank do about inflation?", 3),
    ("how do plants turn light into energy?", 4),
    ("which player did the club buy?", 5),
]


@pytest.fixture(scope="module", params=sorted(onnx.BACKENDS))
def fast(request):
    return registry.get_embedder(f"{DEFAULT_MODEL_ID}#{request.param}")


@pytest.mark.model
def test_selected_through_the_registry(fast, reference_embedder, real_embedder):
    assert isinstance(fast, onnx.OnnxEmbedder)
    assert fast.model_id.endswith("#onnx-" + fast.quant)
    assert fast.fingerprint != real_embedder.fingerprint  # an index of the default runtime is rebuilt, not mixed
    assert fast.dim == reference_embedder.dim and fast.max_tokens == reference_embedder.max_tokens
    assert registry.get_embedder(fast.model_id) is fast  # loaded once per process


@pytest.mark.model
def test_conversion_reused(fast):
    graph = fast.onnx_dir / onnx_convert.ONNX_FILE
    before = graph.stat().st_mtime_ns
    assert onnx_convert.ensure_onnx(None, fast.quant) == fast.onnx_dir
    assert graph.stat().st_mtime_ns == before


@pytest.mark.model
def test_same_tokens_as_fp32(fast, reference_embedder):
    for t in TEXTS:
        assert fast.count_tokens(t) == reference_embedder.count_tokens(t)
    long = " ".join(TEXTS * 20)
    assert fast.truncate(long, 100) == reference_embedder.truncate(long, 100)


@pytest.mark.model
def test_vectors_close_to_fp32(fast, reference_embedder):
    docs = fast.embed_documents(TEXTS)
    ref = reference_embedder.embed_documents(TEXTS)
    assert docs.dtype == np.float32 and docs.shape == ref.shape
    assert np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-4)
    assert (docs * ref).sum(1).min() >= 0.99
    for q, _ in QUESTIONS:
        assert float(fast.embed_query(q) @ reference_embedder.embed_query(q)) >= 0.99
    assert fast.embed_documents([]).shape == (0, fast.dim)


@pytest.mark.model
def test_same_top1_as_fp32(fast, reference_embedder):
    docs, ref = fast.embed_documents(TEXTS), reference_embedder.embed_documents(TEXTS)
    for q, expected in QUESTIONS:
        top_fast = int(np.argmax(docs @ fast.embed_query(q)))
        top_ref = int(np.argmax(ref @ reference_embedder.embed_query(q)))
        assert top_fast == top_ref == expected, q
