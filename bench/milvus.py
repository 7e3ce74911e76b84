"""The ``milvus`` bench section: the Milvus backend beside the FAISS store at the same size, same
vectors, same queries, in one run (``python -m bench --only milvus``; ``--quick``: 20k chunks).

Vectors are synthetic (clustered unit vectors of the model's 384 dimensions, so that neighbours are
close as the model's are; the real-vector cache of ``bench.scale`` takes half an hour to make) and
the same for every store. Each store is built as the library builds it at that size:

* FAISS: ``kinds.choose`` (IVF-SQ8 re-scored from the float16 store above 30k chunks);
* Milvus Lite 2.5 (in this process's child): the backend's collections (rag/store/milvus/schema.py:
  exact (FLAT) at every size, BM25 over the rows' words), rows written 1,000 per request with a 1,000-character text;
* the Milvus 2.3.5 standalone server (a child on a loopback port): the same rows, HNSW.

Figures: insert rate (rows per second, index build included where the engine builds it before
serving), search p50/p95 (one query at a time, top 10, as the reader asks), recall@10 against exact
search, and the memory of the engine's process (RSS after the searches, and its peak)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import pct

DIM = 384


def clustered_vectors(n: int, seed: int = 0, clusters: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top10(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.argsort(-(q @ x.T), axis=1)[:, :10]


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth)]))


def _rss(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out.get("VmRSS", float("nan")), out.get("VmHWM", float("nan"))


def _lite_pid() -> int:
    """The Milvus Lite engine: this process's child running its ``milvus`` binary."""
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except OSError:
            continue
        if int(fields[1]) == me and comm == "milvus":
            return int(stat.parent.name)
    raise RuntimeError("no Milvus Lite process found")


def faiss_row(x: np.ndarray, q: np.ndarray, truth: np.ndarray, tmp: Path) -> dict:
    from rag.store import fp16, kinds

    n = len(x)
    ids = np.arange(n, dtype=np.int64)
    spec = kinds.choose(n)
    started = time.perf_counter()
    index = kinds.build_vector_index(DIM, n, spec=spec)
    kinds.train(index, x)
    index.add_with_ids(x, ids)
    store = None
    if spec.kind != "flat":
        fp16.Fp16Vectors.save(tmp / "vectors", ids, x)
        store = fp16.Fp16Vectors.open(tmp / "vectors")
    build = time.perf_counter() - started
    times, found = [], []
    for v in q:
        t = time.perf_counter()
        with kinds.one_search_thread():
            _, i = kinds.search(index, v, 10, store=store)
        times.append(time.perf_counter() - t)
        found.append([int(j) for j in i])
    return {"store": f"FAISS {spec.describe()}", "n": n, "insert_per_s": n / build, "build_s": build,
            "p50_ms": 1000 * pct(times, 50), "p95_ms": 1000 * pct(times, 95), "recall10": recall(found, truth),
            "engine_mb": kinds.vector_bytes(index) / 2**20, "engine_peak_mb": None,
            "memory_note": "vectors in RAM (FAISS runs in the query process; float16 store on disk, paged)"}


def milvus_row(client, lite: bool, x: np.ndarray, q: np.ndarray, truth: np.ndarray, pid_of) -> dict:
    from rag.store.milvus import schema

    n = len(x)
    names = schema.BuildNames.new("bench")
    index_type, params = schema.vector_index(n, lite)
    bm25 = lite
    schema.create_build(client, names, DIM, index_type, params, bm25)
    words = ("client service prix livraison confiance magasin commande retour enseigne achat " * 15).split()
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    for start in range(0, n, 1000):
        rows = []
        for i in range(start, min(n, start + 1000)):
            text = " ".join(rng.choice(words, 150))
            row = {"id": i, "gen": 1, "source": f"doc{i // 10}.txt", "start_char": 0, "end_char": len(text),
                   "title": "titre", "text": text, "sentences": "[[0, 10]]", "vec": x[i].tolist()}
            if bm25:
                row["lex"] = text
            rows.append(row)
        client.upsert(names.chunks, rows)
    client.flush(names.chunks)
    inserted = time.perf_counter() - started
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:  # the engine builds its index on sealed segments after the flush
        info = client.describe_index(names.chunks, "vec")
        if info.get("state") == "Finished" and not int(info.get("pending_index_rows", 0)):
            break
        time.sleep(2)
    built = time.perf_counter() - started
    client.query(names.chunks, filter="gen <= 1", output_fields=["count(*)"], consistency_level="Strong")
    times, found = [], []
    sp = schema.search_params(index_type, params, 10)
    for v in q:
        t = time.perf_counter()
        hits = client.search(names.chunks, data=[v.tolist()], anns_field="vec", filter="gen <= 1", limit=10,
                             search_params=sp)
        times.append(time.perf_counter() - t)
        found.append([h["id"] for h in hits[0]])
    rss, peak = _rss(pid_of())
    for collection in names.all():
        client.drop_collection(collection)
    return {"store": f"Milvus {'Lite 2.5' if lite else '2.3.5 server'} {index_type} {json.dumps(params)}", "n": n,
            "insert_per_s": n / built, "insert_only_per_s": n / inserted, "build_s": built,
            "p50_ms": 1000 * pct(times, 50), "p95_ms": 1000 * pct(times, 95), "recall10": recall(found, truth),
            "engine_mb": rss, "engine_peak_mb": peak, "memory_note": "RSS of the engine's process"}


def warm_questions(stores: dict[str, dict]) -> dict:
    """``rag.search(k=5)`` over the five seeds on each store, the question sets' questions in turn,
    stores alternating question by question (the sha256-seeded fake embedder: the time is the store's
    and the ranking's, not the model's)."""
    import shutil

    import rag
    from rag.model import FakeEmbedder
    from rag.store.backend import open_store

    from .sections import SEEDS, questions

    fake = FakeEmbedder()
    rag.register_embedder(fake)
    settings = {}
    for name, extra in stores.items():
        base = Path(extra.pop("_dir"))
        shutil.copytree(SEEDS, base / "seeds")
        settings[name] = rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index", model=fake.model_id, **extra)
        rag.build_index(settings=settings[name])
        store = open_store(settings[name])
        if hasattr(store, "strong_until"):
            store.strong_until = 0.0  # the steady state: not within seconds of this process's own build
    qs = questions()
    times: dict[str, list[float]] = {name: [] for name in settings}
    same = 0
    for q in qs:
        hits = {}
        for name, s in settings.items():
            t = time.perf_counter()
            hits[name] = rag.search(q, k=5, settings=s)
            times[name].append(time.perf_counter() - t)
        same += all(h == hits["faiss"] for h in hits.values())
    return {"questions": len(qs), "same_hits": same,
            "p50_ms": {k: 1000 * pct(v, 50) for k, v in times.items()},
            "p95_ms": {k: 1000 * pct(v, 95) for k, v in times.items()}}


def run_milvus(n: int, queries: int = 200, server: bool = True) -> dict:
    x = clustered_vectors(n)
    q = clustered_vectors(queries, seed=99)
    truth = exact_top10(x, q)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-bench-milvus-") as tmp:
        tmp = Path(tmp)
        rows.append(faiss_row(x, q, truth, tmp))
        from rag.store.milvus.connect import client_for, forget

        stores = {"faiss": {"_dir": tmp / "q-faiss"}, "lite": {"_dir": tmp / "q-lite", "store": str(tmp / "q-lite.db")}}
        lite_db = str(tmp / "bench.db")
        rows.append(milvus_row(client_for(lite_db, ""), True, x, q, truth, _lite_pid))
        forget(lite_db)
        if server:
            from tests.milvus_helpers import TOKEN, MilvusServerProcess

            proc = MilvusServerProcess(tmp / "server")
            proc.start()
            try:
                rows.append(milvus_row(client_for(proc.url, TOKEN), False, x, q, truth, lambda: proc.proc.pid))
                stores["server"] = {"_dir": tmp / "q-server", "store": proc.url, "store_token": TOKEN}
                warm = warm_questions(stores)
                forget(proc.url)
            finally:
                proc.stop()
        else:
            warm = warm_questions(stores)
    return {"n": n, "queries": queries, "rows": rows, "warm": warm}
