"""The subset tokenizer: the same ids and offsets as the full tokenizer on every text it answers, the full
one loaded only when a text needs it (and then used for everything)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from rag.model.tokenize import SUBSET_FILE, SUBSET_IDS_FILE, SubsetTokenizer, in_subset, subset_vocabulary
from tests.conftest import DEV_QA, REPO, SEEDS

LATIN = "abcdeéèêàçôûïœ ABCÉ'’-.,;:!?()«»0123456789%€\t\n…–—\u00a0\u202f"


def _small_unigram(path, byte_fallback=False):
    """A real ``tokenizers`` Unigram tokenizer with a few Latin pieces, a few Greek ones and an emoji."""
    vocab = [("<unk>", 0.0), ("▁", -2.0), ("a", -3.0), ("b", -3.0), ("▁ab", -1.0), ("ba", -2.5), ("é", -3.5),
             ("α", -4.0), ("▁αβ", -1.5), ("β", -4.0), ("😀", -9.0), ("ab", -1.8)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=byte_fallback))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.save(str(path))
    return path


def test_subset_keeps_latin_pieces_the_unknown_and_the_lowest_score(tmp_path):
    config = json.loads(_small_unigram(tmp_path / "tokenizer.json").read_text())
    keep = subset_vocabulary(config)
    pieces = [config["model"]["vocab"][i][0] for i in keep]
    assert "α" not in pieces and "▁αβ" not in pieces and "β" not in pieces
    assert {"<unk>", "▁", "a", "b", "▁ab", "ba", "é", "ab"} <= set(pieces)
    assert "😀" in pieces  # the lowest score: the unknown character's score is computed from it
    config["model"]["byte_fallback"] = True
    assert subset_vocabulary(config) is None
    assert subset_vocabulary({"model": {"type": "BPE"}}) is None


def test_same_encodings_and_the_full_tokenizer_only_when_needed(tmp_path):
    path = _small_unigram(tmp_path / "tokenizer.json")
    full = Tokenizer.from_file(str(path))
    tok = SubsetTokenizer(path, tmp_path)
    assert (tmp_path / SUBSET_FILE).is_file() and (tmp_path / SUBSET_IDS_FILE).is_file()
    for text in ["ab ba", "abba é", "x y", "", "  ab  "]:
        e = full.encode(text)
        assert tok.encode(text, add_special_tokens=False) == (e.ids, e.offsets)
    assert not tok.full_loaded
    assert tok.token_to_id("▁ab") == full.token_to_id("▁ab")
    mixed = ["ab αβ", "ab"]
    assert tok.encode_batch(mixed, add_special_tokens=False) == [(e.ids, e.offsets) for e in full.encode_batch(mixed)]
    assert tok.full_loaded
    assert tok.encode("abba", add_special_tokens=False) == (full.encode("abba").ids, full.encode("abba").offsets)


def test_a_tokenizer_without_a_subset_is_used_whole(tmp_path):
    path = _small_unigram(tmp_path / "tokenizer.json", byte_fallback=True)
    tok = SubsetTokenizer(path, tmp_path)
    assert tok.full_loaded and not (tmp_path / SUBSET_FILE).exists()
    full = Tokenizer.from_file(str(path))
    assert tok.encode("ab αβ", add_special_tokens=False) == (full.encode("ab αβ").ids, full.encode("ab αβ").offsets)


def test_a_cache_folder_that_cannot_be_written_leaves_the_full_tokenizer(tmp_path):
    path = _small_unigram(tmp_path / "tokenizer.json")
    (tmp_path / "a-file").write_text("")
    tok = SubsetTokenizer(path, tmp_path / "a-file" / "cache")  # nothing can be created under a file
    assert tok.full_loaded
    full = Tokenizer.from_file(str(path))
    assert tok.encode("ab ba", add_special_tokens=False) == (full.encode("ab ba").ids, full.encode("ab ba").offsets)


def test_in_subset():
    assert in_subset("▁Pourquoi▁les▁Français▁font-ils▁confiance▁aux▁«▁pure-players▁»▁?▁25 %▁€")
    for other in ["αβ", "😀", "日本", "привет", "\u200b"]:
        assert in_subset(other) is (other == "\u200b")  # zero-width space is General Punctuation


def _texts() -> list[str]:
    texts = []
    for seed in sorted(SEEDS.iterdir()):
        text = seed.read_text(encoding="utf-8")
        texts += text.split("\n") + [text[i : i + 1500] for i in range(0, len(text), 600)]
    for qa in [DEV_QA, *sorted((REPO / "tests" / "data").glob("*.jsonl"))]:
        for line in qa.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                texts += [record[k] for k in ("q", "passage", "sentence") if k in record]
    assert sum(1 for t in texts if t.rstrip().endswith("?")) > 500  # the questions are in
    return texts


@pytest.fixture(scope="module")
def model_tokenizers(real_embedder, tmp_path_factory):
    from rag.model.base import model_dir_or_default

    path = model_dir_or_default(None) / "tokenizer.json"
    folder = tmp_path_factory.mktemp("subset")
    return Tokenizer.from_file(str(path)), SubsetTokenizer(path, folder), folder


@pytest.mark.model
def test_the_models_subset_equals_the_full_tokenizer_on_every_seed_and_question(model_tokenizers):
    full, tok, folder = model_tokenizers
    texts = _texts()
    assert len(texts) > 1000
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        assert tok.encode_batch(batch, add_special_tokens=True) == [
            (e.ids, e.offsets) for e in full.encode_batch(batch, add_special_tokens=True)
        ]
    assert not tok.full_loaded  # the seeds and every question set are Latin script
    assert json.loads((folder / SUBSET_FILE).read_text())["model"]["vocab"].__len__() < 0.5 * full.get_vocab_size()


@pytest.mark.model
@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(LATIN), max_size=120))
def test_the_models_subset_on_generated_latin_text(model_tokenizers, text):
    full, tok, _ = model_tokenizers
    e = full.encode(text, add_special_tokens=True)
    assert tok.encode(text, add_special_tokens=True) == (e.ids, e.offsets)
    assert not tok.full_loaded
