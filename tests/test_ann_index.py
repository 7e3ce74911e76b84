"""Issue 6: the vector index's kind follows the corpus size (rag/store/kinds.py), wired into the real index.

Below ``kinds.EXACT_MAX`` chunks a build writes what it always wrote (exact search); from it on, an
IVF-SQ8 with float16 stores. The tests lower ``kinds.EXACT_MAX`` so that the fake embedder's small
corpora build the approximate kind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.model import FakeEmbedder
from rag.query import retrieve
from rag.store import CHUNKS_DB, MANIFEST, SENTENCE_STRIDE, IndexReader, checks, current_version, fp16, kinds, tokens
from rag.store.manifest import _content_digest
from rag.store.vectors import SENTENCE_VECTORS, VECTORS
from tests.conftest import SEEDS
from tests.robust_helpers import french_article, write_corpus

SMALL_MAX = 16  # the threshold the tests use: the five seeds (~40 chunks) are above it
QUESTIONS = ["service client Amazon", "confiance des consommateurs et délais de livraison", "motclef3x2 pratique"]


class CountingEmbedder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed_documents(self, texts, show_progress=False):
        self.texts += list(texts)
        return super().embed_documents(texts)


@pytest.fixture
def small_max(monkeypatch):
    monkeypatch.setattr(kinds, "EXACT_MAX", SMALL_MAX)
    return SMALL_MAX


def _settings(fake, base: Path) -> rag.Settings:
    return rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index", model=fake.model_id)


def _manifest(index_dir: Path) -> dict:
    return json.loads((current_version(index_dir) / MANIFEST).read_text(encoding="utf-8"))


def _queries(reader: IndexReader, fake, n: int, seed: int = 0) -> list[np.ndarray]:
    """Questions made of a few words of random chunks, and the fixed questions."""
    rng = np.random.default_rng(seed)
    chunks = list(reader.iter_chunks())
    out = [fake.embed_query(q) for q in QUESTIONS]
    for c in rng.choice(len(chunks), min(n, len(chunks)), replace=False):
        out.append(fake.embed_query(" ".join(rng.choice(chunks[c].text.split(), 6))))
    return out


def _check_live_index(index_dir: Path, fake) -> IndexReader:
    """Everything agrees id by id: the IVF, the float16 stores, the chunk table and the manifest;
    searches return only live chunks and never a -1."""
    reader = IndexReader.open(index_dir)  # runs the loader's own cross-checks
    rows = {c.id: c for c in reader.iter_chunks()}
    ids = np.asarray(sorted(rows), dtype=np.int64)
    vec = reader.loaded_vectors()
    for held in vec.chunk_ids():
        assert np.array_equal(np.sort(held), ids)
    assert sorted(i for e in reader.manifest.seeds.values() for i in e.chunk_ids) == ids.tolist()
    expected_sentences = [c * SENTENCE_STRIDE + j for c in ids.tolist() for j in range(len(rows[c].sentences))]
    assert np.sort(vec.sentence_ids()).tolist() == expected_sentences
    for q in _queries(reader, fake, 5):
        hits = reader.search(q, reader.ntotal)
        assert hits and all(i in rows for i, _ in hits) and len({i for i, _ in hits}) == len(hits)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        sentences = reader.search_sentences(q, 50)
        assert sentences and all(c in rows and 0 <= p < len(rows[c].sentences) for c, p, _ in sentences)
    return reader


# ----------------------------------------------------------------------------- the kind a build writes


def test_below_the_threshold_the_index_is_the_exact_one_written_before(fake, fake_settings):
    rag.build_index(settings=fake_settings)
    manifest = _manifest(fake_settings.index_dir)
    assert manifest["schema_version"] == 2 and "index" not in manifest
    # the vector files of the exact kind are the ones always written; the passages' token states beside them
    assert set(manifest["files"]) == {VECTORS, SENTENCE_VECTORS, CHUNKS_DB, *tokens.FILES}
    version = current_version(fake_settings.index_dir)
    assert sorted(p.name for p in version.iterdir()) == sorted([VECTORS, SENTENCE_VECTORS, CHUNKS_DB, MANIFEST, *tokens.FILES])
    reader = IndexReader.open(fake_settings.index_dir)
    assert type(reader.raw_vectors()).__name__ == "IndexIDMap2"
    assert type(reader.raw_sentence_vectors()).__name__ == "IndexIDMap2"
    reader.close()


def test_above_the_threshold_the_build_writes_an_ivf_sq8_with_float16_stores(fake, fake_settings, small_max):
    report = rag.build_index(settings=fake_settings)
    n = report.total_chunks
    assert n >= small_max
    manifest = _manifest(fake_settings.index_dir)
    spec = kinds.choose(n)
    assert manifest["schema_version"] == 3
    assert manifest["index"] == {**kinds.spec_to_manifest(spec), "kind": "ivf-sq8"}
    assert (manifest["index"]["nlist"], manifest["index"]["nprobe"]) == (spec.nlist, spec.nprobe)
    version = current_version(fake_settings.index_dir)
    files = {VECTORS, "vectors.f16.npy", "vectors.ids.npy", "sentences.f16.npy", "sentences.ids.npy", CHUNKS_DB,
             *tokens.FILES}
    assert set(manifest["files"]) == files
    assert sorted(p.name for p in version.iterdir()) == sorted(files | {MANIFEST})
    reader = _check_live_index(fake_settings.index_dir, fake)
    # the IVF holds the ids itself: never wrapped in an IndexIDMap2
    assert type(reader.raw_vectors()).__name__ == "IndexIVFScalarQuantizer"
    assert reader.raw_sentence_vectors() is None
    # the float16 vectors are the exact ones, to 1e-3
    ids = [c.id for c in reader.iter_chunks()]
    fresh = fake.embed_documents([retrieve_text(c, fake_settings, fake) for c in reader.iter_chunks()])
    assert np.allclose(reader.vectors_for(ids), fresh, atol=2e-3)
    reader.close()
    hits = rag.search("service client Amazon", k=5, settings=fake_settings)
    assert len(hits) == 5 and all(h.chunk_id in ids for h in hits)


def retrieve_text(chunk, settings, embedder) -> str:
    from rag.model.passages import model_text

    return model_text(chunk, chunk.text, settings, embedder)


def test_ivf_recall_at_10_against_exact_search_is_at_least_0_95(fake, tmp_path, small_max):
    settings = _settings(fake, tmp_path)
    write_corpus(settings.seeds_dir, 400, seed=3)
    rag.build_index(settings=settings)
    reader = IndexReader.open(settings.index_dir)
    assert reader.loaded_vectors().spec.kind == "ivf-sq8" and reader.ntotal > 500
    ids = np.asarray([c.id for c in reader.iter_chunks()])
    exact = reader.vectors_for(ids)  # float16 to 1e-3: the exact ranking, bar ties
    recalls = []
    for q in _queries(reader, fake, 200, seed=1):
        truth = set(ids[np.argsort(-(exact @ q))[:10]].tolist())
        recalls.append(len(truth & {i for i, _ in reader.search(q, 10)}) / 10)
    print(f"\nrecall@10 of {reader.loaded_vectors().spec.describe()} over {reader.ntotal} chunks, "
          f"{len(recalls)} queries: {np.mean(recalls):.3f}")
    assert np.mean(recalls) >= 0.95
    reader.close()


def test_reload_gives_identical_results(fake, fake_settings, small_max):
    rag.build_index(settings=fake_settings)
    first = [rag.search(q, k=5, settings=fake_settings) for q in QUESTIONS]
    answer = rag.answer(QUESTIONS[0], settings=fake_settings)
    rag.api._readers.clear()
    retrieve._lexical_cache.clear()
    assert [rag.search(q, k=5, settings=fake_settings) for q in QUESTIONS] == first
    assert rag.answer(QUESTIONS[0], settings=fake_settings) == answer
    a, b = IndexReader.open(fake_settings.index_dir), IndexReader.open(fake_settings.index_dir)
    for q in _queries(a, fake, 10):
        assert a.search(q, 20) == b.search(q, 20)
        assert a.search_sentences(q, 60) == b.search_sentences(q, 60)
    a.close()
    b.close()


# ----------------------------------------------------------------------------- incremental builds


def test_incremental_add_change_remove_with_the_ivf_stays_consistent(tmp_path, small_max):
    counting = CountingEmbedder()
    rag.register_embedder(counting)
    settings = _settings(counting, tmp_path)
    texts = write_corpus(settings.seeds_dir, 40, seed=4)
    rag.build_index(settings=settings)
    before = IndexReader.open(settings.index_dir)
    spec = before.loaded_vectors().spec
    old_rows = {c.id: c for c in before.iter_chunks()}
    old_vectors = before.vectors_for(sorted(old_rows))
    before.close()
    assert spec.kind == "ivf-sq8"

    changed, removed = sorted(texts)[3], sorted(texts)[7]
    (settings.seeds_dir / changed).write_text(texts[changed] + "\nUne phrase ajoutée sur le quinquagénaire.\n")
    (settings.seeds_dir / removed).unlink()
    write_corpus(settings.seeds_dir, 2, seed=40, prefix="nouveau")
    counting.texts.clear()
    report = rag.build_index(settings=settings)
    assert (report.added, report.changed, report.removed, report.unchanged, report.full_rebuild) == (2, 1, 1, 38, False)
    after = _check_live_index(settings.index_dir, counting)
    assert after.loaded_vectors().spec == spec  # edited in place (remove_ids, add_with_ids), not retrained
    rows = {c.id: c for c in after.iter_chunks()}
    new_ids = sorted(set(rows) - set(old_rows))
    assert report.chunks_embedded == len(new_ids) and len(counting.texts) == len(new_ids) + sum(
        len(rows[i].sentences) for i in new_ids
    )
    gone = {i for i, c in old_rows.items() if c.source in (changed, removed)}
    assert gone and gone.isdisjoint(rows) and set(rows) - set(new_ids) == set(old_rows) - gone
    kept = sorted(set(old_rows) - gone)
    assert np.array_equal(after.vectors_for(kept), old_vectors[np.searchsorted(sorted(old_rows), kept)])
    with pytest.raises(rag.IndexCorruptError):
        after.vectors_for([min(gone)])
    # no query can reach a removed chunk, through the chunks or the sentences
    for text in (texts[removed], texts[changed]):
        q = counting.embed_query(text[:300])
        assert gone.isdisjoint(i for i, _ in after.search(q, after.ntotal))
        assert gone.isdisjoint(c for c, _, _ in after.search_sentences(q, 10_000))
    hits = rag.search("Une phrase ajoutée sur le quinquagénaire", k=3, settings=settings)
    assert hits[0].source == changed
    after.close()


def test_crossing_the_threshold_both_ways_rebuilds_from_stored_vectors(tmp_path, monkeypatch):
    counting = CountingEmbedder()
    rag.register_embedder(counting)
    settings = _settings(counting, tmp_path)
    write_corpus(settings.seeds_dir, 12, seed=8)
    first = rag.build_index(settings=settings)
    monkeypatch.setattr(kinds, "EXACT_MAX", first.total_chunks + 5)
    assert _manifest(settings.index_dir)["schema_version"] == 2  # below: exact
    flat = IndexReader.open(settings.index_dir)
    flat_ids = [c.id for c in flat.iter_chunks()]
    flat_vectors = flat.vectors_for(flat_ids)
    flat.close()

    # up: the exact index becomes an IVF; only the new seeds are embedded
    write_corpus(settings.seeds_dir, 8, seed=9, prefix="haut")
    counting.texts.clear()
    up = rag.build_index(settings=settings)
    assert not up.full_rebuild and up.total_chunks >= kinds.EXACT_MAX
    assert len(counting.texts) < 8 * 40 and up.chunks_embedded < up.total_chunks
    manifest = _manifest(settings.index_dir)
    assert manifest["schema_version"] == 3 and manifest["index"]["kind"] == "ivf-sq8"
    ivf = _check_live_index(settings.index_dir, counting)
    assert np.allclose(ivf.vectors_for(flat_ids), flat_vectors, atol=2e-3)
    ivf_vectors = {c.id: v for c, v in zip(ivf.iter_chunks(), ivf.vectors_for([c.id for c in ivf.iter_chunks()]))}
    ivf.close()

    # down: seeds removed, the IVF becomes an exact index again, from the float16 vectors
    for p in sorted(settings.seeds_dir.glob("haut_*")):
        p.unlink()
    counting.texts.clear()
    down = rag.build_index(settings=settings)
    assert not down.full_rebuild and down.chunks_embedded == 0 and counting.texts == []
    manifest = _manifest(settings.index_dir)
    assert manifest["schema_version"] == 2 and "index" not in manifest
    exact = _check_live_index(settings.index_dir, counting)
    assert type(exact.raw_vectors()).__name__ == "IndexIDMap2"
    assert [c.id for c in exact.iter_chunks()] == flat_ids
    assert np.array_equal(exact.vectors_for(flat_ids), np.stack([ivf_vectors[i] for i in flat_ids]))
    # the same ranking a fresh exact build gives (scores to float16 precision)
    full = tmp_path / "full"
    shutil.copytree(settings.seeds_dir, full / "seeds")
    rag.build_index(settings=_settings(counting, full))
    fresh = IndexReader.open(full / "index")
    for q in _queries(exact, counting, 20):
        a, b = exact.search(q, 10), fresh.search(q, 10)
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=2e-3)
        assert [i for i, _ in a][:3] == [i for i, _ in b][:3] or np.isclose(a[2][1], a[3][1], atol=2e-3)
    exact.close()
    fresh.close()


def test_an_ivf_grown_far_beyond_its_training_is_retrained(fake, tmp_path, small_max):
    settings = _settings(fake, tmp_path)
    write_corpus(settings.seeds_dir, 10, seed=12)
    rag.build_index(settings=settings)
    small = _manifest(settings.index_dir)["index"]
    write_corpus(settings.seeds_dir, 330, seed=13, prefix="plus")
    report = rag.build_index(settings=settings)
    assert not report.full_rebuild
    grown = _manifest(settings.index_dir)["index"]
    want = kinds.choose(report.total_chunks)
    assert grown["nlist"] > 4 * small["nlist"] and (grown["nlist"], grown["nprobe"]) == (want.nlist, want.nprobe)
    _check_live_index(settings.index_dir, fake).close()


def test_needs_rebuild_when_the_kind_changes_or_the_lists_are_4x_off():
    dim = 8
    flat = kinds.build_vector_index(dim, 10, exact_max=100)
    assert not kinds.needs_rebuild(flat, 99, exact_max=100) and kinds.needs_rebuild(flat, 100, exact_max=100)
    ivf = kinds.build_vector_index(dim, 1000, exact_max=100)  # 64 lists
    assert kinds.spec_of(ivf).nlist == 64
    assert kinds.needs_rebuild(ivf, 99, exact_max=100)
    assert not kinds.needs_rebuild(ivf, 1000, exact_max=100) and not kinds.needs_rebuild(ivf, 16_000, exact_max=100)
    assert kinds.needs_rebuild(ivf, 70_000, exact_max=100)


# ----------------------------------------------------------------------------- what the loader refuses


def _edit(version: Path, edit) -> None:
    data = json.loads((version / MANIFEST).read_text(encoding="utf-8"))
    edit(data)
    data["checksum"] = _content_digest(data)
    (version / MANIFEST).write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda d: d.update(schema_version=2), "manifest"),  # an IVF under the exact kind's schema
        (lambda d: d.pop("index"), "manifest"),
        (lambda d: d["index"].update(kind="hnsw"), "manifest"),
        (lambda d: d["index"].update(nprobe=d["index"]["nlist"] + 1), "manifest"),
        (lambda d: d["index"].update(nprobe=1), "layout"),  # valid, but not what the file holds
        (lambda d: d["files"].pop("sentences.ids.npy"), "manifest"),
    ],
)
def test_ivf_manifest_edits_are_refused(fake, fake_settings, small_max, edit, problem):
    rag.build_index(settings=fake_settings)
    version = current_version(fake_settings.index_dir)
    _edit(version, edit)
    with pytest.raises(rag.IndexCorruptError, match=r"rag index --full") as err:
        IndexReader.open(fake_settings.index_dir)
    assert problem in str(err.value)


def test_an_ivf_index_under_an_unknown_schema_is_refused_then_rebuilt_in_full(fake, fake_settings, small_max):
    rag.build_index(settings=fake_settings)
    _edit(current_version(fake_settings.index_dir), lambda d: d.update(schema_version=4))
    with pytest.raises(rag.IndexMismatchError, match=r"schema version 4.*rag index --full"):
        IndexReader.open(fake_settings.index_dir)
    report = rag.build_index(settings=fake_settings)
    assert report.full_rebuild and "schema version 4" in report.rebuild_reason
    _check_live_index(fake_settings.index_dir, fake).close()


@pytest.mark.parametrize("store", ["vectors", "sentences"])
def test_float16_store_with_a_wrong_shape_or_order_is_refused(fake, fake_settings, small_max, store):
    rag.build_index(settings=fake_settings)
    version = current_version(fake_settings.index_dir)
    vec_path, ids_path = fp16.Fp16Vectors.paths(version / store)
    ids = np.load(ids_path)
    for bad, path in [(ids[::-1].copy(), ids_path), (np.load(vec_path)[:, :-1].copy(), vec_path),
                      (np.load(vec_path).astype(np.float32), vec_path)]:
        saved = path.read_bytes()
        np.save(path, bad)
        _edit(version, lambda d, p=path: d["files"].update({p.name: ann_sha(p)}))
        with pytest.raises(rag.IndexCorruptError, match=r"layout a build writes.*rag index --full"):
            IndexReader.open(fake_settings.index_dir)
        path.write_bytes(saved)
        _edit(version, lambda d, p=path: d["files"].update({p.name: ann_sha(p)}))
    IndexReader.open(fake_settings.index_dir).close()


def ann_sha(path: Path) -> str:
    from rag.checksum import sha256_file as sha256_path

    return sha256_path(path)


def test_ivf_layout_check_accepts_what_faiss_writes_full_or_sparse_and_nothing_else(tmp_path):
    import faiss

    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for n_added in (400, 3):  # most lists filled ("full" sizes), or a few ("sprs")
        spec = kinds.IndexSpec("ivf-sq8", 16, 4)
        index = kinds.build_vector_index(16, 400, spec=spec)
        kinds.train(index, x)
        index.add_with_ids(x[:n_added], np.arange(n_added, dtype=np.int64) * 3)
        path = tmp_path / f"ivf{n_added}.faiss"
        faiss.write_index(index, str(path))
        checks.check_ivf_layout(path, 16, spec)
        for bad_dim, bad_spec in [(15, spec), (16, kinds.IndexSpec("ivf-sq8", 16, 5)), (16, kinds.IndexSpec("ivf-sq8", 32, 4))]:
            with pytest.raises(checks.LayoutError):
                checks.check_ivf_layout(path, bad_dim, bad_spec)
        data = path.read_bytes()
        for cut in (0, 40, len(data) // 2, len(data) - 1):
            path.write_bytes(data[:cut])
            with pytest.raises(checks.LayoutError):
                checks.check_ivf_layout(path, 16, spec)
        path.write_bytes(data + b"\x00")
        with pytest.raises(checks.LayoutError):
            checks.check_ivf_layout(path, 16, spec)


def test_search_on_the_ivf_kind_handles_odd_queries(fake, fake_settings, small_max):
    rag.build_index(settings=fake_settings)
    reader = IndexReader.open(fake_settings.index_dir)
    nan = np.full(fake.dim, np.nan, dtype=np.float32)
    assert reader.search(nan, 5) == [] and reader.search_sentences(nan, 5) == []
    zero = np.zeros(fake.dim, dtype=np.float32)
    assert len(reader.search(zero, 5)) <= 5
    assert reader.search(fake.embed_query("Amazon"), 0) == []
    assert reader.vectors_for([]).shape == (0, fake.dim)
    assert len(reader.search(fake.embed_query("Amazon"), 10**6)) <= reader.ntotal
    reader.close()


def test_the_five_seeds_give_the_same_top_answer_with_either_kind(fake, tmp_path, monkeypatch):
    """Not a guarantee (the IVF is approximate), but on the five seeds the IVF probes half its lists."""
    shutil.copytree(SEEDS, tmp_path / "a" / "seeds")
    shutil.copytree(SEEDS, tmp_path / "b" / "seeds")
    rag.build_index(settings=_settings(fake, tmp_path / "a"))
    monkeypatch.setattr(kinds, "EXACT_MAX", SMALL_MAX)
    rag.build_index(settings=_settings(fake, tmp_path / "b"))
    for q in ["service client Amazon", "pure players confiance"]:
        a = rag.search(q, k=1, settings=_settings(fake, tmp_path / "a"))
        b = rag.search(q, k=1, settings=_settings(fake, tmp_path / "b"))
        assert (a[0].source, a[0].start) == (b[0].source, b[0].start)


def test_new_article_is_found_after_an_incremental_ivf_build(fake, fake_settings, small_max):
    import random

    rag.build_index(settings=fake_settings)
    text = french_article(random.Random(5), 3, marker="nouveaumotunique")
    (fake_settings.seeds_dir / "zz.txt").write_text(text)
    report = rag.build_index(settings=fake_settings)
    assert report.added == 1 and not report.full_rebuild
    assert rag.search(text[:300], k=1, settings=fake_settings)[0].source == "zz.txt"


# ----------------------------------------------------------------------------- the float16 store


def test_float16_store_merges_sources_by_id_and_reads_rows_with_pread(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((50, 8)).astype(np.float32)
    b = rng.standard_normal((20, 8)).astype(np.float32)
    a_ids = np.arange(50, dtype=np.int64) * 2  # even ids
    b_ids = np.arange(20, dtype=np.int64) * 2 + 1  # odd ids, interleaved with a's
    keep = np.nonzero(a_ids % 3 != 0)[0]  # some of a removed
    n = fp16.save_rows(tmp_path / "s", 8, [(a_ids[keep], lambda p: a[keep[p]]), (b_ids, lambda p: b[p])])
    store = fp16.Fp16Vectors.open(tmp_path / "s")
    assert n == len(store) == len(keep) + 20
    assert (np.diff(store.ids) > 0).all() and set(store.ids.tolist()) == set(a_ids[keep].tolist()) | set(b_ids.tolist())
    checks.check_fp16_store(store, 8)
    ask = np.array([a_ids[keep][3], b_ids[7], a_ids[keep][0], b_ids[0]])
    want = np.stack([a[keep][3], b[7], a[keep][0], b[0]])
    assert np.allclose(store.get(ask), want, atol=2e-3)  # pread path, any order
    assert np.array_equal(store.get(ask), np.asarray(store.vectors[np.searchsorted(store.ids, ask)], dtype=np.float32))
    with pytest.raises(KeyError):
        store.get([a_ids[0]])  # removed
    with pytest.raises(ValueError, match="repeated"):
        fp16.save_rows(tmp_path / "t", 8, [(a_ids, lambda p: a[p]), (a_ids[:1], lambda p: a[p])])
    # the sentences of chunks: every row whose id is in [c * stride, (c + 1) * stride)
    pos, ids = store.positions_of_chunks([0, 3, 10], 4)
    assert ids.tolist() == [i for i in store.ids.tolist() if i // 4 in (0, 3, 10)]


def test_concurrent_questions_on_the_ivf_get_their_own_results(fake, fake_settings, small_max):
    from concurrent.futures import ThreadPoolExecutor

    rag.build_index(settings=fake_settings)
    reader = IndexReader.open(fake_settings.index_dir)
    queries = _queries(reader, fake, 20)
    alone = [(reader.search(q, 10), reader.search_sentences(q, 30)) for q in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda q: (reader.search(q, 10), reader.search_sentences(q, 30)), queries * 3))
    assert together == alone * 3
    reader.close()
