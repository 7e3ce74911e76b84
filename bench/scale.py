"""Scale benchmarks: a real embedded corpus, FAISS index types at 10k / 100k / 1M, SQLite lookups at 1M.

    .venv/bin/python -m bench.scale embed [--n 10000] [--budget-min 20]  # real vectors, cached
    .venv/bin/python -m bench.scale ann [--sizes 10000,100000,1000000] [--quick]
    .venv/bin/python -m bench.scale sqlite [--rows 1000000]

``embed`` embeds synthetic chunks (bench/synth.py) with the real model, in blocks, and stops at 5k
instead of 10k when the measured rate projects more than ``--budget-min`` minutes. The vectors and
the rate are cached in ~/.cache/rag/bench/ (``RAG_BENCH_CACHE``): ``python -m bench`` reuses them.

``ann`` uses the real vectors as they are for the smallest size, and for the larger ones vectors
"from the real model's distribution": a real vector, moved toward one of its 10 nearest real
neighbours by a random share (0-50 %), plus Gaussian noise, renormalised. The noise level is
calibrated so the synthetic set's median nearest-neighbour cosine matches the real set's. The
queries are real: ``embed_query`` of the dev and own question sets and of held-out synthetic
sentences."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.store import fp16, kinds

from .common import CACHE, REPO, median, pct, peak_rss_mb, rss_mb

REAL_VECTORS = CACHE / "real_chunks.npy"
REAL_INFO = CACHE / "real_chunks.json"
QUERY_VECTORS = CACHE / "queries.npy"
QUESTION_FILES = [REPO.parent / "shared" / "eval" / "dev_qa.jsonl", REPO / "tests" / "data" / "own_qa.jsonl"]


# ----------------------------------------------------------------------------- real vectors


def embed_real(n: int = 10_000, budget_min: float = 20.0, block: int = 256, fallback: int = 5_000) -> dict:
    """Embed ``n`` synthetic chunks with the real model into REAL_VECTORS. A cached run with fewer
    vectors (the generator is deterministic) is resumed after checking that its first block still
    embeds the same, so 10k can be reached over several sittings."""
    import rag
    from rag.documents.chunk import embedding_text

    from .synth import Generator

    emb = rag.get_embedder()
    emb.embed_documents(["chauffe le modèle", "warm up"])
    chunks = list(Generator(seed=10).chunks(n))
    # with the title line, as the indexer embedded chunks when this corpus was first made; kept so that
    # a resumed run extends the same vectors
    texts = [embedding_text(c.title, c.text, True) for c in chunks]
    tokens = [emb.count_tokens(t) for t in texts]
    parts: list[np.ndarray] = []
    seconds_before = 0.0
    if REAL_VECTORS.is_file() and REAL_INFO.is_file():
        cached = np.load(REAL_VECTORS)
        info = json.loads(REAL_INFO.read_text())
        check = emb.embed_documents(texts[:32])
        same = info.get("model") == emb.model_id and float(np.min(np.sum(check * cached[:32], axis=1))) > 0.999
        if same and len(cached) < n:
            parts.append(cached)
            seconds_before = float(info["seconds"])
            print(f"  resuming after the {len(cached)} cached vectors", flush=True)
    target = n
    done = sum(len(p) for p in parts)
    started = time.perf_counter()
    done_before = done
    while done < target:
        parts.append(emb.embed_documents(texts[done : done + block]))
        done += len(parts[-1])
        elapsed = time.perf_counter() - started
        rate = (done - done_before) / elapsed
        if done - done_before == 2 * block and target > fallback and (target - done) / rate > budget_min * 60:
            target = max(fallback, done)
            print(f"  {rate:.1f} chunks/s projects {(n - done) / rate / 60:.0f} more min: stopping at {target}",
                  flush=True)
        print(f"  embedded {done}/{target} chunks, {rate:.2f} chunks/s", flush=True)
    seconds = seconds_before + time.perf_counter() - started
    vecs = np.concatenate(parts)[:target]
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = REAL_VECTORS.with_suffix(".tmp.npy")
    np.save(tmp, vecs.astype(np.float32))
    os.replace(tmp, REAL_VECTORS)
    info = {
        "asked": n, "chunks": int(target), "seconds": seconds, "chunks_per_s": target / seconds,
        "mean_tokens": float(np.mean(tokens[:target])), "model": emb.model_id, "batch_size": emb.batch_size,
        "when": time.strftime("%Y-%m-%d %H:%M"), "load_average_end": Path("/proc/loadavg").read_text().split()[:3],
    }
    REAL_INFO.write_text(json.dumps(info, indent=2))
    return info


def query_vectors(n_synthetic: int = 230) -> np.ndarray:
    """Real query embeddings: every question of the question sets, then held-out synthetic sentences."""
    if QUERY_VECTORS.is_file():
        return np.load(QUERY_VECTORS)
    import rag

    from .synth import Generator

    emb = rag.get_embedder()
    qs = []
    for f in QUESTION_FILES:
        if f.is_file():
            qs += [json.loads(line)["q"] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    g = Generator(seed=999)
    qs += [g.sentence(g.lang()) for _ in range(n_synthetic)]
    vecs = np.stack([emb.embed_query(q) for q in qs]).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(QUERY_VECTORS, vecs)
    return vecs


def nn_cosines(x: np.ndarray, sample: int = 500, seed: int = 0) -> np.ndarray:
    """Top-1 cosine (self excluded) of ``sample`` rows of x against all of x."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), min(sample, len(x)), replace=False)
    out = []
    for start in range(0, len(rows), 100):
        r = rows[start : start + 100]
        s = x[r] @ x.T
        s[np.arange(len(r)), r] = -2
        out.append(s.max(1))
    return np.concatenate(out)


def synthetic_vectors(real: np.ndarray, n: int, sigma: float, seed: int = 0, block: int = 100_000) -> np.ndarray:
    """n vectors of the real vectors' distribution (see the module docstring), float32, normalised."""
    rng = np.random.default_rng(seed)
    d = real.shape[1]
    # each real vector's 10 nearest real neighbours
    neigh = np.empty((len(real), 10), dtype=np.int64)
    for start in range(0, len(real), 1000):
        s = real[start : start + 1000] @ real.T
        s[np.arange(len(s)), np.arange(start, start + len(s))] = -2
        neigh[start : start + 1000] = np.argpartition(-s, 10, axis=1)[:, :10]
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, block):
        m = min(block, n - start)
        base = rng.integers(0, len(real), m)
        other = neigh[base, rng.integers(0, 10, m)]
        lam = rng.uniform(0, 0.5, (m, 1)).astype(np.float32)
        v = real[base] + lam * (real[other] - real[base])
        v += rng.standard_normal((m, d), dtype=np.float32) * (sigma / np.sqrt(d))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[start : start + m] = v
    return out


def calibrate_sigma(real: np.ndarray, target: float, n: int = 100_000) -> tuple[float, float]:
    """The noise level whose synthetic set of ``n`` has the median NN cosine ``target``."""
    best = None
    for sigma in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3):
        syn = synthetic_vectors(real, n, sigma, seed=7)
        med = float(np.median(nn_cosines(syn, 300)))
        if best is None or abs(med - target) < abs(best[1] - target):
            best = (sigma, med)
        if med < target:
            break
    return best


# ----------------------------------------------------------------------------- ANN


def exact_topk(x: np.ndarray, q: np.ndarray, k: int = 10, block: int = 200_000) -> np.ndarray:
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    for start in range(0, len(x), block):
        s = q @ x[start : start + block].T
        idx = np.argpartition(-s, k, axis=1)[:, :k]
        cs = np.take_along_axis(s, idx, 1)
        all_s = np.concatenate([best_s, cs], 1)
        all_i = np.concatenate([best_i, idx + start], 1)
        top = np.argsort(-all_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    return best_i


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def search_times(index, q: np.ndarray, repeats: int = 1) -> tuple[list[float], np.ndarray]:
    """Single-query searches (as the library does them): per-query seconds, and the ids found."""
    times, ids = [], None
    for _r in range(repeats):
        found = []
        for v in q:
            t = time.perf_counter()
            with kinds.one_search_thread():  # as rag.store's IndexReader searches
                _, i = index.search(v.reshape(1, -1), 10)
            times.append(time.perf_counter() - t)
            found.append(i[0])
        ids = np.stack(found)
    return times, ids


def file_load(index, tmpdir: Path, repeats: int = 3) -> tuple[float, float, float]:
    """(file MB, median load seconds, RSS growth MB of one load) for faiss.write_index / read_index."""
    import faiss

    path = tmpdir / "index.faiss"
    faiss.write_index(index, str(path))
    mb = path.stat().st_size / 2**20
    loads, grow = [], []
    for _ in range(repeats):
        gc.collect()
        before = rss_mb()
        t = time.perf_counter()
        loaded = faiss.read_index(str(path))
        loads.append(time.perf_counter() - t)
        grow.append(rss_mb() - before)
        del loaded
        gc.collect()
    path.unlink()
    return mb, median(loads), median(grow)


def ann_size(x: np.ndarray, q: np.ndarray, origin: str, quick: bool, tmpdir: Path) -> list[dict]:
    """Exact flat (ground truth and latency), the library's approximate index (rag.store.kinds: HNSW-SQ8 +
    float16 re-scoring, efSearch sweep) and IVF-SQ8 (nprobe sweep) for comparison."""
    import faiss


    n, d = x.shape
    rows = []
    truth = exact_topk(x, q)
    reps = 1 if quick or n >= 500_000 else 3
    ids = np.arange(n, dtype=np.int64)
    # exact, as the library builds it today (at 1M: 100 queries, it is slow)
    qf = q if n < 500_000 else q[:100]
    t = time.perf_counter()
    flat = kinds.build_vector_index(d, n, exact_max=n + 1)
    flat.add_with_ids(x, ids)
    build = time.perf_counter() - t
    times, found = search_times(flat, qf, reps)
    mb, load, grow = file_load(flat, tmpdir, repeats=1 if n >= 500_000 else 3)
    rows.append({"n": n, "origin": origin, "index": "IDMap2,Flat (exact)", "build_s": build, "load_s": load,
                 "file_mb": mb, "mem_mb": kinds.vector_bytes(flat) / 2**20, "rss_load_mb": grow, "queries": len(qf),
                 "p50_ms": 1000 * pct(times, 50), "p95_ms": 1000 * pct(times, 95),
                 "recall10": recall_at(found, truth[: len(qf)])})
    del flat
    gc.collect()
    if n < 20_000:
        return rows

    # the library's approximate tier (rag.store.kinds): IVF-SQ8 + exact re-scoring from the float16 store
    stem = tmpdir / "vectors"
    t = time.perf_counter()
    fp16.Fp16Vectors.save(stem, ids, x)
    save_s = time.perf_counter() - t
    store = fp16.Fp16Vectors.open(stem)
    spec = kinds.choose(n, exact_max=0)
    t = time.perf_counter()
    ivf = kinds.build_vector_index(d, n, spec=spec)
    kinds.train(ivf, x)
    train_s = time.perf_counter() - t
    ivf.add_with_ids(x, ids)
    build = time.perf_counter() - t

    def timed(st, index):
        tt, ff = [], []
        for v in q:
            t0 = time.perf_counter()
            with kinds.one_search_thread():  # as rag.store's IndexReader searches
                _, i = kinds.search(index, v, 10, store=st)
            tt.append(time.perf_counter() - t0)
            ff.append(np.pad(i, (0, 10 - len(i)), constant_values=-1))
        return tt, np.stack(ff)

    sweep = {}
    for frac in (16, 8, 4):
        ivf.nprobe = max(1, spec.nlist // frac)
        for st in (None, store):
            tt, ff = timed(st, ivf)
            sweep[f"nprobe{ivf.nprobe}{'+rerank' if st is not None else ''}"] = [
                round(recall_at(ff, truth), 4), round(1000 * pct(tt, 50), 3), round(1000 * pct(tt, 95), 3)]
    ivf.nprobe = spec.nprobe
    times, found = [], None
    for _ in range(reps):
        tt, found = timed(store, ivf)
        times += tt
    mb, load, grow = file_load(ivf, tmpdir, repeats=1 if n >= 500_000 else 3)
    # FAISS's own alternative for reconstruct(): a direct map, memory measured
    gc.collect()
    before = rss_mb()
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    direct_map_mb = rss_mb() - before
    look = []
    rng = np.random.default_rng(0)
    for _ in range(200):
        pick = np.sort(rng.choice(n, 60, replace=False))
        t = time.perf_counter()
        store.get(pick)
        look.append(time.perf_counter() - t)
    rows.append({"n": n, "origin": origin, "index": spec.describe(), "build_s": build, "train_s": train_s,
                 "load_s": load, "file_mb": mb, "mem_mb": kinds.vector_bytes(ivf) / 2**20, "rss_load_mb": grow,
                 "queries": len(q), "p50_ms": 1000 * pct(times, 50), "p95_ms": 1000 * pct(times, 95),
                 "recall10": recall_at(found, truth), "sweep": sweep, "library": True, "direct_map_mb": direct_map_mb,
                 "fp16_store": {"save_s": save_s, "get60_p50_ms": 1000 * pct(look, 50),
                                "disk_mb": sum(p.stat().st_size for p in fp16.Fp16Vectors.paths(stem)) / 2**20}})
    del ivf, store
    gc.collect()
    for p in fp16.Fp16Vectors.paths(stem):
        p.unlink()

    # HNSW over SQ8, for comparison (no remove_ids; its build is slow at 1M, so only up to 200k here)
    if n <= 200_000:
        t = time.perf_counter()
        h = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, 32, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = 40
        h.train(x[: min(n, 100_000)])
        h.add(x)
        build = time.perf_counter() - t
        sweep = {}
        for ef in (256, 512):
            h.hnsw.efSearch = ef
            tt, ff = search_times(h, q, 1)
            sweep[f"efS{ef}"] = [round(recall_at(ff, truth), 4), round(1000 * pct(tt, 50), 3), round(1000 * pct(tt, 95), 3)]
        rows.append({"n": n, "origin": origin, "index": "HNSW32,SQ8 efC=40 efS=512 (comparison)", "build_s": build,
                     "load_s": float("nan"), "file_mb": float("nan"), "mem_mb": float("nan"), "rss_load_mb": float("nan"),
                     "queries": len(q), "p50_ms": sweep["efS512"][1], "p95_ms": sweep["efS512"][2],
                     "recall10": sweep["efS512"][0], "sweep": sweep})
        del h
        gc.collect()
    return rows


def run_ann(sizes: list[int], quick: bool = False) -> dict:
    import faiss

    real = np.load(REAL_VECTORS)
    info = json.loads(REAL_INFO.read_text())
    q = query_vectors()
    real_nn = float(np.median(nn_cosines(real)))
    sigma, syn_nn = calibrate_sigma(real, real_nn, n=min(100_000, max(sizes)))
    out = {"real": info, "queries": len(q), "real_nn_cos_median": real_nn, "sigma": sigma,
           "synthetic_nn_cos_median": syn_nn, "rows": [], "faiss": faiss.__version__,
           "omp_threads": faiss.omp_get_max_threads()}
    sizes = [len(real) if n == 0 else n for n in sizes]
    with tempfile.TemporaryDirectory(prefix="rag-bench-ann-") as tmp:
        for n in sizes:
            if n <= len(real):
                x, origin = np.ascontiguousarray(real[:n]), "real"
            else:
                x, origin = synthetic_vectors(real, n, sigma, seed=n), "real-distribution"
            rows = ann_size(x, q, origin, quick, Path(tmp))
            out["rows"] += rows
            for row in rows:
                print(json.dumps(row), file=sys.stderr, flush=True)
            del x
            gc.collect()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# ----------------------------------------------------------------------------- SQLite at 1M


def run_sqlite(rows: int = 1_000_000, lookups: int = 300) -> dict:
    """A chunks table like the store's, ``rows`` rows of synthetic text; cost of the lookups ``rank``
    makes (one ``WHERE id IN (...)`` of ~60-200 ids), opened read-only/immutable as the reader does."""
    from .synth import Generator

    out = {"rows": rows}
    with tempfile.TemporaryDirectory(prefix="rag-bench-sqlite-") as tmp:
        path = Path(tmp) / "chunks.sqlite"
        t = time.perf_counter()
        db = sqlite3.connect(path)
        db.execute(
            "CREATE TABLE chunks (id INTEGER PRIMARY KEY, source TEXT NOT NULL, start INTEGER NOT NULL, "
            "end INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, sentences TEXT NOT NULL)"
        )
        db.execute("CREATE INDEX chunks_source ON chunks(source)")
        gen = Generator(seed=3)
        batch = []
        for c in gen.chunks(rows):
            batch.append(c.row())
            if len(batch) == 20_000:
                db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
                batch = []
        if batch:
            db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
        db.commit()
        db.close()
        out["write_s"] = time.perf_counter() - t
        out["file_mb"] = path.stat().st_size / 2**20
        rss0 = rss_mb()
        t = time.perf_counter()
        uri = f"file:{path.as_posix()}?mode=ro&immutable=1"
        ro = sqlite3.connect(uri, uri=True, check_same_thread=False)
        out["open_s"] = time.perf_counter() - t
        # what IndexReader.open_version does today at open: read every row's id, source, sentence count
        t = time.perf_counter()
        allrows = ro.execute("SELECT id, source, json_array_length(sentences) FROM chunks ORDER BY id").fetchall()
        out["open_scan_s"] = time.perf_counter() - t
        out["open_scan_rss_mb"] = rss_mb() - rss0
        del allrows
        gc.collect()
        rng = np.random.default_rng(0)
        cols = "id, source, text, start, end, title, sentences"
        for n_ids in (60, 200):
            times = []
            for _ in range(lookups):
                ids = [int(i) for i in rng.choice(rows, n_ids, replace=False)]
                t = time.perf_counter()
                res = ro.execute(f"SELECT {cols} FROM chunks WHERE id IN ({','.join('?' * n_ids)})", ids).fetchall()
                [json.loads(r[6]) for r in res]
                times.append(time.perf_counter() - t)
            out[f"lookup{n_ids}_p50_ms"] = 1000 * pct(times, 50)
            out[f"lookup{n_ids}_p95_ms"] = 1000 * pct(times, 95)
        # BM25 needs every chunk's text at first query (retrieve.lexical_index): time a full text scan
        t = time.perf_counter()
        n = sum(len(r[0]) for r in ro.execute("SELECT text FROM chunks"))
        out["full_text_scan_s"] = time.perf_counter() - t
        out["text_mb"] = n / 2**20
        ro.close()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["embed", "ann", "sqlite"])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--budget-min", type=float, default=20.0)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.what == "embed":
        result = embed_real(args.n, args.budget_min)
    elif args.what == "ann":
        result = run_ann([int(s) for s in args.sizes.split(",")], args.quick)
    else:
        result = run_sqlite(args.rows)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
