"""The default model's runtime (onnxruntime, no PyTorch) against the reference (sentence-transformers):
the same tokens, vectors, word-piece states and answers; and the query path imports neither torch nor
transformers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import rag
from rag.model import onnx
from rag.model.base import TOKEN_LAYER
from tests.conftest import DEV_QA, REPO, SEEDS

SETS = [DEV_QA, REPO / "tests" / "data" / "own_qa.jsonl", REPO / "tests" / "data" / "heldout_qa.jsonl"]


def _seed_passages(embedder) -> list[str]:
    from rag.documents.chunk import chunk_document
    from rag.documents.discover import discover, read_seed

    seeds, _ = discover(SEEDS, (".txt", ".md"))
    texts = []
    for seed in seeds:
        doc, _ = read_seed(seed, 10_000_000)
        chunks = chunk_document(doc, chunk_tokens=256, overlap_tokens=48, count_tokens=embedder.count_tokens, first_id=0)
        texts += [c.text for c in chunks] + [c.text[a:b] for c in chunks for a, b in c.sentences[:3]]
    return texts


@pytest.mark.model
def test_default_runtime_is_onnx_under_the_reference_identity(real_embedder, reference_embedder):
    assert isinstance(real_embedder, onnx.OnnxEmbedder) and real_embedder.quant == "fp32"
    assert type(reference_embedder).__name__ == "SentenceTransformerEmbedder"
    # the same identity: an index built by either runtime is read by the other
    assert (real_embedder.model_id, real_embedder.fingerprint, real_embedder.dim) == (
        reference_embedder.model_id, reference_embedder.fingerprint, reference_embedder.dim
    )
    assert real_embedder.content_tokens == reference_embedder.content_tokens


@pytest.mark.model
def test_same_tokens_vectors_and_states_as_the_reference(real_embedder, reference_embedder):
    texts = _seed_passages(real_embedder)
    assert len(texts) > 200
    assert [real_embedder.count_tokens(t) for t in texts] == [reference_embedder.count_tokens(t) for t in texts]
    long = " ".join(texts)
    assert real_embedder.truncate(long, 300) == reference_embedder.truncate(long, 300)
    ours, ref = real_embedder.embed_documents(texts), reference_embedder.embed_documents(texts)
    assert (ours * ref).sum(1).min() >= 0.9999
    for q in ["why do French trust pure-players?", "Qui a écrit la biographie d'Amazon ?", "x"]:
        assert float(real_embedder.embed_query(q) @ reference_embedder.embed_query(q)) >= 0.9999
    vec, states = real_embedder.embed_query_tokens("why do French trust pure-players?", layer=TOKEN_LAYER)
    ref_vec, ref_states = reference_embedder.embed_query_tokens("why do French trust pure-players?", layer=TOKEN_LAYER)
    assert float(vec @ ref_vec) >= 0.9999 and states.spans == ref_states.spans
    assert np.abs(states.vectors - ref_states.vectors).max() < 1e-3
    # a build's pass: vectors and passage states from one forward pass, as the reference gives them apart
    both_vec, both_states = real_embedder.embed_documents_with_tokens(texts[:40])
    assert np.abs(both_vec - ours[:40]).max() < 1e-5
    for got, want in zip(both_states, reference_embedder.embed_tokens(texts[:40], query=False, layer=TOKEN_LAYER)):
        assert got.spans == want.spans and np.abs(got.vectors - want.vectors).max() < 1e-3


@pytest.mark.model
def test_same_answers_as_the_reference_on_the_question_sets(real_settings, reference_embedder):
    """Over one index, the default runtime and the reference answer every question of three sets alike."""
    from rag import api

    reference_settings = real_settings.with_(model=rag.Settings().model + "#torch")
    differences = []
    for path in SETS:
        for line in path.read_text(encoding="utf-8").splitlines():
            q = json.loads(line)["q"]
            ours = rag.answer(q, settings=real_settings)
            ref = rag.answer(q, settings=reference_settings)
            if (ours.found, ours.text, [(c.source, c.start, c.quote_start) for c in ours.citations]) != (
                ref.found, ref.text, [(c.source, c.start, c.quote_start) for c in ref.citations]
            ):
                differences.append(q)
    assert not differences, differences
    assert api._readers  # both read the same build (same fingerprint): no second index was made
    assert len(list(real_settings.index_dir.glob("v-*"))) == 1


QUERY_PATH = """
import sys, json
import rag
settings = rag.Settings(seeds_dir=sys.argv[1], index_dir=sys.argv[2])
answer = rag.answer("why do French trust pure-players?", settings=settings)
heavy = [m for m in ("torch", "transformers", "sentence_transformers", "gradio", "langchain_text_splitters", "openai",
                     "pymilvus", "trafilatura", "pypdf") if m in sys.modules]
print(json.dumps({"found": answer.found, "heavy": heavy}))
"""


@pytest.mark.model
def test_the_query_path_imports_neither_torch_nor_transformers(real_settings):
    out = subprocess.run(
        [sys.executable, "-c", QUERY_PATH, str(real_settings.seeds_dir), str(real_settings.index_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"found": True, "heavy": []}
