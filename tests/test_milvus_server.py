"""The Milvus backend over the network: PyPI's ``milvus`` standalone server (the real engine, 2.3.5),
started once for the session on a loopback port with authorization on. Slow: the server takes 5-30 s
to start, and each build creates collections on it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import rag
from rag.store.backend import open_store
from tests.conftest import REPO
from tests.milvus_helpers import TOKEN, MilvusServerProcess, forget_store
from tests.test_store_contract import QUESTIONS, _snapshot, assert_same

pytest.importorskip("pymilvus")
pytest.importorskip("milvus")
pytestmark = pytest.mark.slow


# one server for this module's tests, stopped after them: left running (it keeps two cores busy), it made
# the two-node Ray test's raylets miss Ray's 30 s start-up limit
@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    server = MilvusServerProcess(tmp_path_factory.mktemp("milvus-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_settings(milvus_server, fake_settings):
    settings = fake_settings.with_(store=milvus_server.url, store_token=TOKEN,
                                   store_collection="t" + secrets.token_hex(4))
    yield settings
    if milvus_server.proc is not None:
        open_store(settings).drop_everything()
    forget_store(settings)


def test_the_network_path_answers_like_faiss_through_changes(server_settings, fake_settings, tmp_path):
    faiss = fake_settings.with_(index_dir=tmp_path / "faiss")
    rag.build_index(settings=faiss)
    report = rag.build_index(settings=server_settings)
    assert report.total_chunks == report.chunks_embedded > 0 and "#t" in report.index_path
    assert_same(_snapshot(server_settings), _snapshot(faiss))
    store = open_store(server_settings)
    assert store.client.describe_alias(f"{server_settings.store_collection}_live")["collection_name"] == store.live_names().chunks
    assert not store.bm25  # Milvus 2.3 predates full-text search: bm25s over the chunk texts read back
    seeds = server_settings.seeds_dir
    (seeds / "new.txt").write_text("Un nouvel article sur la fidélité des clients de la Fnac.\n" * 3)
    sorted(seeds.glob("001_*.txt"))[0].unlink()
    assert rag.build_index(settings=server_settings).chunks_embedded > 0
    assert rag.build_index(settings=faiss).chunks_embedded > 0
    assert_same(_snapshot(server_settings), _snapshot(faiss))


def test_a_servers_indexing_child_builds_into_the_same_store(server_settings, fake_settings, tmp_path):
    """``rag serve`` indexes in a child process (rag.background): the store and its token go with the
    settings, so the child builds into the same Milvus collections this process reads."""
    progress: list[tuple[int, int]] = []
    report = rag.build_index(settings=server_settings, separate_process=True, on_progress=lambda d, t: progress.append((d, t)))
    assert report.added == 5 and f"#{server_settings.store_collection}__" in report.index_path
    assert progress and progress[-1][0] == progress[-1][1]
    assert not (server_settings.index_dir / "CURRENT").exists()  # nothing went to the FAISS folder
    faiss = fake_settings.with_(index_dir=tmp_path / "faiss")
    rag.build_index(settings=faiss)
    assert_same(_snapshot(server_settings), _snapshot(faiss))
    text = "La tarte Tatin fut inventée par les sœurs Tatin, à Lamotte-Beuvron, en Sologne.\n"
    source, report = rag.add_document("tatin.txt", text.encode(), settings=server_settings, separate_process=True)
    assert report.added == 1 and rag.document_text(source, settings=server_settings) == text
    assert rag.search("tarte Tatin Sologne", k=1, settings=server_settings)[0].source == "tatin.txt"


def test_wrong_credentials_are_one_line_without_the_token(server_settings):
    cli = subprocess.run([sys.executable, "-m", "rag.cli", "status", "--store", server_settings.store],
                         capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "RAG_STORE_TOKEN": "root:n0t-the-password"})
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert "refused the credentials" in cli.stderr and "n0t-the-password" not in cli.stderr + cli.stdout
    with pytest.raises(rag.StoreAuthError, match="refused the credentials"):
        rag.index_status(settings=server_settings.with_(store_token="root:other"))


OTHER_PROCESS_BUILD = """
import sys
import rag
from rag.model import FakeEmbedder
rag.register_embedder(FakeEmbedder())
settings = rag.Settings(seeds_dir=sys.argv[1], index_dir=sys.argv[2], store=sys.argv[3], store_token=sys.argv[4],
                        store_collection=sys.argv[5], model="fake-sha256-64")
print(rag.build_index(settings=settings).chunks_embedded)
"""


def test_a_build_by_another_process_is_seen_at_once(server_settings):
    rag.build_index(settings=server_settings)
    assert not any(h.source == "ajout.txt" for h in rag.search("Darty garantie", k=10, settings=server_settings))
    (server_settings.seeds_dir / "ajout.txt").write_text("La garantie Darty rassure les acheteurs d'électroménager.\n")
    removed = sorted(server_settings.seeds_dir.glob("002_*.txt"))[0]
    removed.unlink()
    s = server_settings
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(OTHER_PROCESS_BUILD), str(s.seeds_dir),
                            str(s.index_dir), s.store, s.store_token, s.store_collection],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
    assert child.returncode == 0 and int(child.stdout.split()[-1]) > 0, child.stderr[-2000:]
    # another process's build is picked up within the engine's graceful time (questions read the live
    # version Bounded), and then whole: the reader's Strong read on opening waits for all its rows
    deadline = time.monotonic() + 15
    while rag.search("Darty garantie", k=1, settings=server_settings)[0].source != "ajout.txt":
        assert time.monotonic() < deadline, "the other process's build was not picked up in 15 s"
        time.sleep(0.5)
    reader = open_store(server_settings).open_reader()
    sources = {c.source for c in reader.iter_chunks()}
    assert "ajout.txt" in sources and removed.name not in sources
    assert all(src != removed.name for q in QUESTIONS for src in [h.source for h in rag.search(q, k=20, settings=s)])


def test_full_rebuilds_switch_the_alias_under_concurrent_readers(server_settings):
    seeds = server_settings.seeds_dir
    extra = seeds / "extra.txt"
    rag.build_index(settings=server_settings)
    results = {"a": {q: rag.search(q, k=5, settings=server_settings) for q in QUESTIONS}}
    extra.write_text("Un article de plus sur le service client de la Fnac et d'Amazon.\n" * 4)
    rag.build_index(settings=server_settings, full=True)
    results["b"] = {q: rag.search(q, k=5, settings=server_settings) for q in QUESTIONS}
    assert results["a"] != results["b"]
    stop, seen, errors = threading.Event(), [], []

    def read():
        while not stop.is_set():
            for q in QUESTIONS:
                try:
                    seen.append((q, rag.search(q, k=5, settings=server_settings)))
                except rag.RagError as exc:
                    errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for n in range(4):  # a -> b -> a -> b, each a new set of collections and an alias switch
            if n % 2 == 0:
                extra.unlink()
            else:
                extra.write_text("Un article de plus sur le service client de la Fnac et d'Amazon.\n" * 4)
            rag.build_index(settings=server_settings, full=True)
    finally:
        stop.set()
        for t in readers:
            t.join(120)
    assert not errors, errors[:3]
    assert len(seen) > 20
    assert all(hits in (results["a"][q], results["b"][q]) for q, hits in seen)  # never a mix of two builds
    builds = open_store(server_settings).build_sets()
    assert len(builds) == 2  # the live build and the one before it (for readers still on it)


def test_the_index_outlives_a_server_restart(server_settings, milvus_server):
    rag.build_index(settings=server_settings)
    before = _snapshot(server_settings)
    milvus_server.stop()
    try:
        rag.api._readers.clear()
        with pytest.raises(rag.StoreUnreachableError, match="cannot reach the Milvus server"):
            rag.search("Amazon", settings=server_settings)
    finally:
        milvus_server.start()
    rag.api._readers.clear()
    assert_same(_snapshot(server_settings), before)
