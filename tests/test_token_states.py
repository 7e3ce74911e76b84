"""The passages' word-piece states stored with a build (rag/store/tokens.py): written once, kept across
incremental builds, checked like every other file, and used by the token match instead of a recompute."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import rag
from rag.model import FakeEmbedder
from rag.model.base import TOKEN_LAYER
from rag.query import token_match
from rag.store import IndexReader, current_version, tokens
from tests.conftest import SEEDS


class CountingFake(FakeEmbedder):
    """The fake embedder, counting the passages whose word-piece states it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.model_id = "fake-counting-64"
        self.token_texts = 0

    def embed_tokens(self, texts, query=False, layer=8):
        if not query:
            self.token_texts += len(texts)
        return super().embed_tokens(texts, query=query, layer=layer)

    def embed_documents_with_tokens(self, texts, layer=8):
        # one pass, as the real runtimes do: not a separate request for states
        return self.embed_documents(texts), FakeEmbedder.embed_tokens(self, texts, query=False, layer=layer)


@pytest.fixture
def counting(tmp_path):
    fake = CountingFake()
    rag.register_embedder(fake)
    shutil.copytree(SEEDS, tmp_path / "seeds")
    return fake, rag.Settings(seeds_dir=tmp_path / "seeds", index_dir=tmp_path / "index", model=fake.model_id)


def _stored(settings) -> dict[int, np.ndarray]:
    reader = IndexReader.open(settings.index_dir)
    try:
        ids = [c.id for c in reader.iter_chunks()]
        return dict(zip(ids, reader.token_states(ids)))
    finally:
        reader.close()


def test_a_build_stores_every_chunks_states(counting):
    fake, settings = counting
    report = rag.build_index(settings=settings)
    manifest = json.loads((current_version(settings.index_dir) / "manifest.json").read_text())
    assert manifest["token_states"]["layer"] == TOKEN_LAYER and manifest["token_states"]["dim"] == fake.dim
    stored = _stored(settings)
    assert len(stored) == report.total_chunks
    reader = IndexReader.open(settings.index_dir)
    chunks = list(reader.iter_chunks())
    reader.close()
    expected = fake.embed_tokens([c.text for c in chunks])
    for chunk, want in zip(chunks, expected):
        got = stored[chunk.id]
        assert got.dtype == np.float16 and got.shape == want.vectors.shape
        assert np.allclose(got, want.vectors, atol=1e-3)
    assert sum(len(v) for v in stored.values()) == manifest["token_states"]["rows"]


def test_an_incremental_build_keeps_the_kept_chunks_states_and_adds_the_new(counting):
    fake, settings = counting
    rag.build_index(settings=settings)
    before = _stored(settings)
    (settings.seeds_dir / "ajout.txt").write_text("La Fnac répond aux clients en magasin et en ligne, chaque jour.")
    (settings.seeds_dir / "004_edf32be8c308088b.txt").unlink()
    fake.token_texts = 0
    report = rag.build_index(settings=settings)
    after = _stored(settings)
    assert report.added == 1 and report.removed == 1
    assert fake.token_texts == 0  # nothing recomputed: the new chunk's states came with its vectors
    kept = set(before) & set(after)
    assert kept and all(np.array_equal(before[i], after[i]) for i in kept)
    assert len(after) == report.total_chunks


def test_no_states_above_the_limit_and_the_token_match_computes_them(counting):
    fake, settings = counting
    settings = settings.with_(token_states_max_chunks=10)
    rag.build_index(settings=settings)
    manifest = json.loads((current_version(settings.index_dir) / "manifest.json").read_text())
    assert "token_states" not in manifest and not (current_version(settings.index_dir) / tokens.ROWS_FILE).exists()
    fake.token_texts = 0
    hits = rag.search("la confiance des clients envers Amazon", k=3, settings=settings)
    assert hits and fake.token_texts > 0


def test_stored_states_spare_the_recompute_and_give_the_same_ranking(counting, tmp_path):
    fake, settings = counting
    rag.build_index(settings=settings)
    fake.token_texts = 0
    question = "pourquoi les clients font-ils confiance à Amazon ?"
    with_stored = rag.search(question, k=10, settings=settings)
    assert fake.token_texts == 0
    token_match._matchers.clear()
    shutil.copytree(settings.seeds_dir, tmp_path / "other" / "seeds")
    plain = settings.with_(seeds_dir=tmp_path / "other" / "seeds", index_dir=tmp_path / "other" / "index",
                           token_states_max_chunks=0)
    computed = rag.search(question, k=10, settings=plain)
    assert fake.token_texts > 0
    assert [(h.source, h.start) for h in with_stored] == [(h.source, h.start) for h in computed]


def test_damaged_token_files_are_refused(counting):
    fake, settings = counting
    rag.build_index(settings=settings)
    version = current_version(settings.index_dir)
    path = version / tokens.ROWS_FILE
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    from rag.api import _readers

    _readers.clear()
    with pytest.raises(rag.IndexCorruptError, match="checksum"):
        IndexReader.open(settings.index_dir)


def test_token_files_layout_checks(tmp_path):
    tokens.save(tmp_path, 4, [(1, np.ones((2, 4))), (5, np.zeros((3, 4)))])
    store = tokens.TokenStore(tmp_path, 4)
    got = store.get([5, 1, 7])
    assert got[0].shape == (3, 4) and got[1].shape == (2, 4) and got[2] is None
    with pytest.raises(tokens.TokenLayoutError):
        tokens.TokenStore(tmp_path, 8)  # rows of another width
    with pytest.raises(ValueError):
        tokens.save(tmp_path, 4, [(5, np.ones((1, 4))), (1, np.ones((1, 4)))])  # ids out of order
    np.save(tmp_path / tokens.INDEX_FILE, np.asarray([[1, 0, 2], [5, 2, 9]], dtype=np.int64))
    with pytest.raises(tokens.TokenLayoutError):
        tokens.TokenStore(tmp_path, 4)  # the index claims more rows than the file holds
