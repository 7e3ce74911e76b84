import json
import shutil

import numpy as np
import pytest

import rag
from rag.documents.chunk import CHUNKER_VERSION
from rag.model import FakeEmbedder
from rag.query import retrieve
from rag.store import CURRENT, MANIFEST, IndexReader, current_version


def test_build_then_load_gives_identical_search_results(fake_settings):
    report = rag.build_index(settings=fake_settings)
    assert report.added == 5 and report.total_chunks == report.chunks_embedded > 0
    first = rag.search("service client Amazon", k=5, settings=fake_settings)
    # forget everything loaded in this process: the files alone give the same answer
    rag.api._readers.clear()
    retrieve._lexical_cache.clear()
    second = rag.search("service client Amazon", k=5, settings=fake_settings)
    assert first == second and len(first) == 5
    reader = IndexReader.open(fake_settings.index_dir)
    q = FakeEmbedder().embed_query("service client Amazon")
    dense = reader.search(q, 3)
    assert np.allclose(reader.vectors_for([i for i, _ in dense]) @ q, [s for _, s in dense], atol=1e-5)


def test_manifest_records_model_chunker_and_seeds(fake_settings, fake):
    rag.build_index(settings=fake_settings)
    manifest = json.loads((current_version(fake_settings.index_dir) / MANIFEST).read_text())
    assert manifest["schema_version"] == 2
    assert manifest["model_id"] == fake.model_id and manifest["dim"] == fake.dim
    assert manifest["model_fingerprint"] == fake.fingerprint
    assert manifest["chunker"]["chunk_tokens"] == fake_settings.chunk_tokens
    assert set(manifest["seeds"]) == {p.name for p in fake_settings.seeds_dir.iterdir()}
    assert all(len(e["sha256"]) == 64 and e["chunk_ids"] for e in manifest["seeds"].values())
    assert "faiss-cpu" in manifest["library_versions"]
    assert not list(fake_settings.index_dir.rglob("*.pkl")) and not list(fake_settings.index_dir.rglob("*.pickle"))


def test_index_built_with_another_model_is_refused(fake_settings):
    rag.build_index(settings=fake_settings)
    other = FakeEmbedder(dim=64)
    other.model_id = "another-model"
    other.fingerprint = "other:1"
    rag.register_embedder(other)
    with pytest.raises(rag.IndexMismatchError, match="rag index --full"):
        rag.search("Amazon", settings=fake_settings.with_(model="another-model"))


def test_incremental_build_embeds_only_added_and_changed_seeds(fake_settings):
    first = rag.build_index(settings=fake_settings)
    seeds = fake_settings.seeds_dir
    (seeds / "new.txt").write_text("Un nouvel article sur la fidélité des clients de la Fnac.\n" * 3)
    changed = sorted(seeds.glob("004_*.txt"))[0]
    changed.write_text(changed.read_text() + "\nUne phrase ajoutée à la fin.\n")
    removed = sorted(seeds.glob("001_*.txt"))[0]
    removed.unlink()
    second = rag.build_index(settings=fake_settings)
    assert (second.added, second.changed, second.removed, second.unchanged) == (1, 1, 1, 3)
    new_chunks = {f.source: f.chunks for f in second.files if f.status in {"added", "changed"}}
    assert second.chunks_embedded == sum(new_chunks.values())
    assert second.chunks_embedded < first.chunks_embedded
    reader = IndexReader.open(fake_settings.index_dir)
    sources = {c.source for c in reader.iter_chunks()}
    assert "new.txt" in sources and removed.name not in sources
    assert reader.ntotal == second.total_chunks
    third = rag.build_index(settings=fake_settings)
    assert (third.added, third.changed, third.removed, third.chunks_embedded) == (0, 0, 0, 0)


def test_full_rebuild_when_chunker_settings_change(fake_settings):
    rag.build_index(settings=fake_settings)
    report = rag.build_index(settings=fake_settings.with_(chunk_tokens=100))
    assert report.full_rebuild and "chunker settings changed" in report.rebuild_reason


def test_querying_an_index_built_with_other_chunker_settings_warns(fake_settings, caplog):
    rag.build_index(settings=fake_settings)
    other = fake_settings.with_(chunk_tokens=100)
    with caplog.at_level("WARNING", logger="rag.api"):
        hits = rag.search("Amazon", settings=other)
    assert hits  # the index still answers: same model, only the chunking differs
    assert "chunk_tokens: 256 -> 100" in caplog.text and "rag index" in caplog.text
    status = rag.index_status(settings=other)
    assert status.stale and "chunking settings changed (chunk_tokens: 256 -> 100)" in status.stale_detail
    assert not rag.index_status(settings=fake_settings).stale


def test_empty_corpus_is_a_clear_error_and_writes_no_index(fake, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "empty.txt").write_text("")
    settings = rag.Settings(seeds_dir=seeds, index_dir=tmp_path / "index", model=fake.model_id)
    with pytest.raises(rag.EmptyCorpusError, match="no readable"):
        rag.build_index(settings=settings)
    assert not (tmp_path / "index" / CURRENT).exists()


def test_search_builds_the_index_when_missing(fake_settings):
    assert current_version(fake_settings.index_dir) is None
    hits = rag.search("Amazon", k=3, settings=fake_settings)
    assert len(hits) == 3 and current_version(fake_settings.index_dir) is not None


def test_damaged_vectors_file_is_refused_with_rebuild_hint(fake_settings):
    rag.build_index(settings=fake_settings)
    vectors = current_version(fake_settings.index_dir) / "vectors.faiss"
    data = bytearray(vectors.read_bytes())
    data[len(data) // 2] ^= 0xFF
    vectors.write_bytes(bytes(data))
    with pytest.raises(rag.IndexCorruptError, match="rag index --full"):
        IndexReader.open(fake_settings.index_dir)
    # the indexer notices and rebuilds fully
    report = rag.build_index(settings=fake_settings)
    assert report.full_rebuild and "cannot be reused" in report.rebuild_reason
    assert IndexReader.open(fake_settings.index_dir).ntotal == report.total_chunks


def test_old_builds_are_collected(fake_settings):
    for i in range(4):
        (fake_settings.seeds_dir / f"extra{i}.txt").write_text(f"Texte supplémentaire numéro {i} sur les clients.")
        rag.build_index(settings=fake_settings)
    builds = [p for p in fake_settings.index_dir.glob("v-*")]
    assert len(builds) == 2  # the live one and the previous one, for readers still using it
    shutil.rmtree(fake_settings.index_dir)


def test_an_index_built_by_older_chunking_code_is_rebuilt(fake_settings, monkeypatch, caplog):
    """Sentence spans come from the chunker: after it changes, an old index would quote stale spans."""
    rag.build_index(settings=fake_settings)
    monkeypatch.setattr("rag.settings.CHUNKER_VERSION", CHUNKER_VERSION + 1)
    with caplog.at_level("WARNING", logger="rag.api"):
        assert rag.search("Amazon", settings=fake_settings)
    assert f"chunker_version: {CHUNKER_VERSION} -> {CHUNKER_VERSION + 1}" in caplog.text
    report = rag.build_index(settings=fake_settings)
    assert report.full_rebuild and "chunker_version" in report.rebuild_reason
    manifest = json.loads((IndexReader.open(fake_settings.index_dir).version_dir / MANIFEST).read_text())
    assert manifest["chunker"]["chunker_version"] == CHUNKER_VERSION + 1
