"""The benchmark sections; each runs in its own process (``python -m bench.sections NAME``) so that
its peak RSS is its own and no section warms the next one's caches in memory.

Every comparison is measured in the same process, alternating the two sides run by run, and the
ratio reported is the median of the per-pair ratios (robust to the other users of the 2 cores)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import PY, REPO, child_env, child_with_rss, median, pct, peak_rss_mb

SEEDS = REPO / "seeds"
QUESTION_FILES = [REPO.parent / "shared" / "eval" / "dev_qa.jsonl", REPO / "tests" / "data" / "own_qa.jsonl"]


def questions() -> list[str]:
    out = []
    for f in QUESTION_FILES:
        if f.is_file():
            out += [json.loads(line)["q"] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


class Recorder:
    """Wraps an embedder: records the texts the indexer embeds and the time spent in the model."""

    def __init__(self, inner, fake_vectors: bool = False):
        self.inner = inner
        self.model_id, self.fingerprint, self.dim = inner.model_id, inner.fingerprint, inner.dim
        self.max_tokens, self.content_tokens = inner.max_tokens, inner.content_tokens
        self.texts: list[str] = []
        self.calls: list[int] = []
        self.seconds = 0.0
        self.fake = fake_vectors

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def truncate(self, text, n):
        return self.inner.truncate(text, n)

    def embed_query(self, text):
        return self.inner.embed_query(text)

    # without these two the token match would be left out of the answers measured
    def embed_query_tokens(self, text, layer=8):
        return self.inner.embed_query_tokens(text, layer=layer)

    def embed_tokens(self, texts, query=False, layer=8):
        return self.inner.embed_tokens(texts, query=query, layer=layer)

    def embed_documents(self, texts, show_progress=False):
        return self._record(texts, lambda: self.inner.embed_documents(texts), with_states=False)

    def embed_documents_with_tokens(self, texts, layer=8):
        """What a build calls for chunks: their vectors and word-piece states from one pass."""
        return self._record(texts, lambda: self.inner.embed_documents_with_tokens(texts, layer=layer), with_states=True)

    def _record(self, texts, run, with_states: bool):
        self.texts += list(texts)
        self.calls.append(len(texts))
        if self.fake:
            from rag.model.base import TokenStates

            v = np.zeros((len(texts), self.dim), dtype=np.float32)
            v[:, 0] = 1
            return (v, [TokenStates(np.zeros((0, self.dim), np.float32), ()) for _ in texts]) if with_states else v
        t = time.perf_counter()
        out = run()
        self.seconds += time.perf_counter() - t
        return out


def _workdir(keep: Path | None) -> Path:
    base = keep or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    if not (base / "seeds").exists():
        shutil.copytree(SEEDS, base / "seeds")
        for p in (base / "seeds").iterdir():
            p.chmod(0o644)
    return base


def raw_encode(emb, texts: list[str]) -> np.ndarray:
    """What the pipeline is compared with: one call of the runtime on the same texts, with the same model
    object, prompt and batch size (it sorts them by length itself); vectors only, no word-piece states."""
    return emb.embed_documents(texts)


# ----------------------------------------------------------------------------- build + warm answer


def section_pipeline(repeats: int, keep: Path | None) -> dict:
    import rag
    from rag import api, indexer
    from rag.query.retrieve import fit_to_model, validate_question

    base = _workdir(keep)
    settings = rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index")
    emb = rag.get_embedder()
    # warm-up build (not timed) through a recorder: the exact texts the indexer embeds
    rec = Recorder(emb)
    report = indexer.build_index(settings, rec, full=True)
    texts = list(rec.texts)
    raw_encode(emb, texts[:64])
    out = {"chunks": report.total_chunks, "texts": len(texts), "chunk_texts": report.total_chunks,
           "sentence_texts": len(texts) - report.total_chunks, "groups": rec.calls,
           "mean_tokens": float(np.mean([emb.count_tokens(t) for t in texts])), "build_s": [], "raw_s": [],
           "embed_in_build_s": [], "raw_grouped_s": []}
    for r in range(repeats):
        order = ("build", "raw") if r % 2 == 0 else ("raw", "build")
        for side in order:
            if side == "build":
                rec = Recorder(emb)
                t = time.perf_counter()
                indexer.build_index(settings, rec, full=True)
                out["build_s"].append(time.perf_counter() - t)
                out["embed_in_build_s"].append(rec.seconds)
            else:
                t = time.perf_counter()
                raw_encode(emb, texts)
                out["raw_s"].append(time.perf_counter() - t)
        print(f"  build {out['build_s'][-1]:.1f} s, raw encode {out['raw_s'][-1]:.1f} s", file=sys.stderr, flush=True)
    # the same texts in the indexer's groups of 256, for the breakdown of the overhead
    t = time.perf_counter()
    from rag.model.passages import EMBED_GROUP

    for i in range(0, len(texts), EMBED_GROUP):
        raw_encode(emb, texts[i : i + EMBED_GROUP])
    out["raw_grouped_s"].append(time.perf_counter() - t)
    ratios = [b / r for b, r in zip(out["build_s"], out["raw_s"])]
    out["overhead"] = median(ratios) - 1
    out["chunks_per_s"] = report.total_chunks / median(out["build_s"])
    out["texts_per_s_build"] = len(texts) / median(out["build_s"])
    out["texts_per_s_raw"] = len(texts) / median(out["raw_s"])

    # warm answer() vs embed_query on the same questions (index and BM25 already loaded once)
    qs = questions()
    api.register_embedder(emb)  # the same object through the public API
    rag.answer(qs[0], settings=settings)
    for q in qs[:5]:
        emb.embed_query(q)
    answer_s, query_s = [], []
    passes = max(1, repeats)
    for r in range(passes):
        for q in qs:
            text = fit_to_model(validate_question(q), emb)
            if r % 2 == 0:
                t = time.perf_counter(); rag.answer(q, settings=settings); answer_s.append(time.perf_counter() - t)  # noqa: E702
                t = time.perf_counter(); emb.embed_query(text); query_s.append(time.perf_counter() - t)  # noqa: E702
            else:
                t = time.perf_counter(); emb.embed_query(text); query_s.append(time.perf_counter() - t)  # noqa: E702
                t = time.perf_counter(); rag.answer(q, settings=settings); answer_s.append(time.perf_counter() - t)  # noqa: E702
    out.update({
        "questions": len(qs), "answer_passes": passes,
        "answer_p50_ms": 1000 * pct(answer_s, 50), "answer_p95_ms": 1000 * pct(answer_s, 95),
        "query_p50_ms": 1000 * pct(query_s, 50), "query_p95_ms": 1000 * pct(query_s, 95),
    })
    out["answer_over_query"] = out["answer_p50_ms"] / out["query_p50_ms"]
    # where answer() spends the rest: rank() without the model, per question
    from rag.query import retrieve
    from rag.query.decide import BACKGROUND_POOL
    from rag.query.token_match import embed_question

    reader = api._reader(settings, emb)
    rank_s = []
    for q in qs:
        text = fit_to_model(validate_question(q), emb)
        vec, token_scorer = embed_question(emb, text, api._stored_states(reader))
        t = time.perf_counter()
        retrieve.rank(reader, text, vec, max(5, BACKGROUND_POOL), token_scorer)
        rank_s.append(time.perf_counter() - t)
    out["rank_p50_ms"] = 1000 * pct(rank_s, 50)
    out["index_dir"] = str(base)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# ----------------------------------------------------------------------------- fast embedders


def section_fastembed(repeats: int, variants: list[str], eval_variants: list[str]) -> dict:
    import rag
    from rag import api, evaluate, indexer
    from rag.model import onnx

    # the reference: the model through sentence-transformers (PyTorch); onnx-fp32 is the default runtime
    emb = rag.get_embedder(rag.Settings().model + "#torch")
    base = Path(tempfile.mkdtemp(prefix="rag-bench-fast-"))
    try:
        shutil.copytree(SEEDS, base / "seeds")
        for p in (base / "seeds").iterdir():
            p.chmod(0o644)
        # the texts the indexer embeds (a build with placeholder vectors: only the texts are kept)
        rec = Recorder(emb, fake_vectors=True)
        indexer.build_index(rag.Settings(seeds_dir=base / "seeds", index_dir=base / "texts"), rec, full=True)
        texts = rec.texts
        embedders = {"fp32": emb}
        load_s = {}
        for v in variants:
            t = time.perf_counter()
            if v == "onnx-int8":
                embedders[v] = onnx.OnnxEmbedder(quant="int8")
            elif v == "onnx-fp32":
                embedders[v] = onnx.OnnxEmbedder(quant="fp32")
            load_s[v] = time.perf_counter() - t
        for e in embedders.values():
            e.embed_documents(texts[:32])
        ref = None
        times = {k: [] for k in embedders}
        cpu = {k: [] for k in embedders}  # process CPU seconds: less sensitive to the other users of the cores
        cos = {}
        for r in range(repeats):
            names = list(embedders) if r % 2 == 0 else list(reversed(embedders))
            for k in names:
                t, c = time.perf_counter(), time.process_time()
                vecs = embedders[k].embed_documents(texts)
                times[k].append(time.perf_counter() - t)
                cpu[k].append(time.process_time() - c)
                if k == "fp32" and ref is None:
                    ref = vecs
                elif ref is not None and k not in cos:
                    cos[k] = vecs
            print("  " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), file=sys.stderr, flush=True)
        out = {"texts": len(texts), "chunks": None, "load_s": load_s, "times": times}
        out["speedup"] = {k: median(f / t for f, t in zip(times["fp32"], times[k])) for k in embedders}
        out["cpu_speedup"] = {k: median(f / t for f, t in zip(cpu["fp32"], cpu[k])) for k in embedders}
        out["texts_per_s"] = {k: len(texts) / median(v) for k, v in times.items()}
        if ref is None:
            ref = embedders["fp32"].embed_documents(texts)
        for k in embedders:
            if k != "fp32":
                v = cos.get(k)
                if v is None:
                    v = embedders[k].embed_documents(texts)
                c = (v * ref).sum(1)
                cos[k] = {"min": float(c.min()), "mean": float(c.mean())}
        out["cosine_to_fp32"] = {k: v for k, v in cos.items() if isinstance(v, dict)}
        # dev-set recall, end to end: a full build and both question sets, per embedder
        out["eval"] = {}
        out["build_s"] = {}
        answers = {}
        for k, e in embedders.items():
            if k != "fp32" and k not in eval_variants:
                continue
            api.register_embedder(e)
            # the fast embedders' model_id is "<model>#<backend>": search/answer must look that one up
            s = rag.Settings(seeds_dir=base / "seeds", index_dir=base / f"index-{k}", model=e.model_id)
            t = time.perf_counter()
            report = indexer.build_index(s, e, full=True)
            out["build_s"][k] = time.perf_counter() - t
            out["chunks"] = report.total_chunks
            out["eval"][k] = {}
            answers[k] = []
            for f in QUESTION_FILES:
                qs = evaluate.load_questions(f)
                searches = [rag.search(q.q, k=10, settings=s) for q in qs]
                ans = [rag.answer(q.q, settings=s) for q in qs]
                res = evaluate.score(qs, searches, ans)
                out["eval"][k][f.name] = {"questions": res.questions, "recall_at": res.recall_at, "mrr": res.mrr,
                                          "cited_right": res.cited_right, "declined": res.declined,
                                          "unanswerable": res.unanswerable, "wrongly_declined": res.wrongly_declined}
                answers[k] += [(a.found, tuple((c.source, c.start) for c in a.citations[:1])) for a in ans]
        api.register_embedder(emb)
        out["same_answers"] = {k: float(np.mean([a == b for a, b in zip(answers["fp32"], answers[k])]))
                               for k in answers if k != "fp32"}
        out["build_speedup"] = {k: out["build_s"]["fp32"] / out["build_s"][k] for k in out["build_s"]}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# ----------------------------------------------------------------------------- add one


def section_addone(repeats: int, seeds: int) -> dict:
    """bench/add_one.py (another engineer's script) run as it is, its printed times parsed."""
    out = {"seeds": seeds, "full_s": [], "add_s": [], "noop_s": [], "chunks": None, "source": "bench/add_one.py"}
    for _ in range(repeats):
        wall, rss, text, code = child_with_rss([PY, "-m", "bench.add_one", "--seeds", str(seeds)], env=child_env(), cwd=REPO)
        full = re.search(r"full build\s+\d+ seeds, (\d+) chunks.*?: ([\d.]+) s", text)
        add = re.search(r"add one seed.*?: ([\d.]+) s", text)
        noop = re.search(r"nothing to do\s+([\d.]+) s", text)
        if not (full and add):
            raise RuntimeError(f"cannot read bench/add_one.py's output (exit {code}):\n{text[-1500:]}")
        out["chunks"] = int(full.group(1))
        out["full_s"].append(float(full.group(2)))
        out["add_s"].append(float(add.group(1)))
        if noop:
            out["noop_s"].append(float(noop.group(1)))
        out["rss_mb"] = rss
        print(f"  full {out['full_s'][-1]:.1f} s, add one {out['add_s'][-1]:.2f} s", file=sys.stderr, flush=True)
    out["ratio"] = median(a / f for a, f in zip(out["add_s"], out["full_s"]))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("section")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", type=Path)
    p.add_argument("--index-dir", type=Path)
    p.add_argument("--variants", default="onnx-int8,onnx-fp32")
    p.add_argument("--eval-variants", default="onnx-int8")
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.section == "pipeline":
        result = section_pipeline(args.repeats, args.keep)
    elif args.section == "load":
        from .startup import section_load

        result = section_load(args.repeats, args.index_dir)
    elif args.section == "serve":
        from .startup import section_serve

        result = section_serve(args.repeats, args.index_dir)
    elif args.section == "fastembed":
        result = section_fastembed(
            args.repeats, [v for v in args.variants.split(",") if v], [v for v in args.eval_variants.split(",") if v]
        )
    elif args.section == "addone":
        result = section_addone(args.repeats, args.seeds)
    elif args.section == "ann":
        from .scale import run_ann

        result = run_ann([int(s) for s in args.sizes.split(",")], args.quick)
    elif args.section == "milvus":
        from .milvus import run_milvus

        result = run_milvus(args.rows)
    elif args.section == "sqlite":
        from .scale import run_sqlite

        result = run_sqlite(args.rows)
    else:
        raise SystemExit(f"unknown section {args.section}")
    args.out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
