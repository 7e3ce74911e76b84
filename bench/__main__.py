"""``python -m bench``: one table of the library's performance on this machine (issue 6).

    .venv/bin/python -m bench            # every section, ~15 min on 2 cores (results: docs/benchmarks.md)
    .venv/bin/python -m bench --quick    # fewer repeats, smaller scale runs
    .venv/bin/python -m bench --only pipeline,load
    .venv/bin/python -m bench --only concurrent   # answers under 20 /chat clients during a rebuild (issue 20)

Each section runs in its own process (bench/sections.py); each figure is a median over repeated
runs, and each comparison a ratio measured in the same run, the two sides alternating. The raw
results go to ~/.cache/rag/bench/results-<time>.json. The scale section needs the real vectors
made once by ``python -m bench.scale embed`` (it runs that first if they are missing)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from .common import CACHE, PY, REPO, child_env, cpu_model, load_average, median
from .common import run_section as _run

SECTIONS = ("pipeline", "load", "serve", "addone", "fastembed", "ann", "sqlite", "milvus", "concurrent")


def _yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def table(r: dict) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    p = r.get("pipeline")
    if p:
        n_b = len(p["build_s"])
        rows.append((
            f"index build, 5 seeds ({p['chunks']} chunks + {p['sentence_texts']} sentences = {p['texts']} texts, n={n_b})",
            f"{p['chunks_per_s']:.2f} chunks/s ({median(p['build_s']):.1f} s)",
            f"raw encode of the same {p['texts']} texts: {median(p['raw_s']):.1f} s",
            f"overhead {100 * p['overhead']:+.1f}%", "<= +10%", _yes(p["overhead"] <= 0.10),
        ))
        rows.append((
            f"warm answer() p50 / p95 ({p['questions']} questions x {p['answer_passes']})",
            f"{p['answer_p50_ms']:.0f} / {p['answer_p95_ms']:.0f} ms",
            f"embed_query p50 {p['query_p50_ms']:.0f} ms (rank() alone p50 {p['rank_p50_ms']:.0f} ms)",
            f"{p['answer_over_query']:.2f}x", "<= 1.5x", _yes(p["answer_over_query"] <= 1.5),
        ))
    ld = r.get("load")
    if ld:
        if ld.get("ask"):
            rows.append((
                f"cold `rag ask` wall (n={len(ld['ask'])})", f"{median(ld['ask']):.2f} s",
                f"bare process, same model files and runtime, one query: {median(ld['bare']):.2f} s",
                f"{ld['ask_over_bare']:.2f}x", "<= 2.5 s and <= 2x",
                _yes(median(ld["ask"]) <= 2.5 and ld["ask_over_bare"] <= 2.0),
            ))
            rows.append((
                f"cold `rag ask`, reference runtime (sentence-transformers, #torch; n={len(ld['ask_reference'])})",
                f"{median(ld['ask_reference']):.1f} s", "the default runtime's cold ask, same run",
                f"{ld['reference_over_ask']:.2f}x slower", "", "",
            ))
        rows.append((
            f"model load in a process: get_embedder() after `import rag` (n={len(ld['load'])})", f"{median(ld['load']):.2f} s",
            f"import rag {median(ld['import_rag']):.2f} s; first query {1000 * median(ld['first_query']):.0f} ms; "
            f"torch imported: {ld.get('torch_imported')}",
            "", "<= 2 s", _yes(median(ld["load"]) <= 2.0),
        ))
    sv = r.get("serve")
    if sv:
        d, ref = sv["default_summary"], sv["reference_summary"]
        rows.append((
            f"`rag serve`: RSS after start-up and ten questions (n={len(sv['default'])})", f"{d['rss_after_ten_mb']:.0f} MB",
            f"reference runtime {ref['rss_after_ten_mb']:.0f} MB (anonymous {d['anon_after_ten_mb']:.0f} vs "
            f"{ref['anon_after_ten_mb']:.0f} MB)", f"{d['rss_after_ten_mb'] / ref['rss_after_ten_mb']:.2f}x",
            "<= 500 MB", _yes(d["rss_after_ten_mb"] <= 500),
        ))
        rows.append((
            "`rag serve`: start to first answer", f"{d['first_answer_s']:.1f} s",
            f"reference runtime {ref['first_answer_s']:.1f} s; /chat p50 {d['answer_p50_ms']:.0f} vs {ref['answer_p50_ms']:.0f} ms",
            "", "<= 5 s", _yes(d["first_answer_s"] <= 5.0),
        ))
    a = r.get("addone")
    if a:
        rows.append((
            f"add one seed vs full build ({a['seeds']} synthetic seeds, {a['chunks']} chunks; bench/add_one.py, n={len(a['add_s'])})",
            f"{median(a['add_s']):.2f} s", f"full build {median(a['full_s']):.1f} s", f"{a['ratio']:.3f}",
            "<= 0.05 at 200 seeds (issue 5)", _yes(a["ratio"] <= 0.05) if a["seeds"] >= 200 else "n/a",
        ))
    f = r.get("fastembed")
    if f:
        for k, sp in f["speedup"].items():
            if k == "fp32":
                continue
            cos = f["cosine_to_fp32"].get(k, {})
            rows.append((
                f"embedding {f['texts']} pipeline texts, {k} (n={len(f['times'][k])})",
                f"{f['texts_per_s'][k]:.1f} texts/s",
                f"fp32 {f['texts_per_s']['fp32']:.1f} texts/s; cosine to fp32 min {cos.get('min', float('nan')):.4f}",
                f"{sp:.2f}x", ">= 2x", _yes(sp >= 2.0),
            ))
        for k, ev in f["eval"].items():
            if k == "fp32":
                continue
            worst = 0.0
            parts = []
            for name, res in ev.items():
                ref = f["eval"]["fp32"][name]
                d = {kk: 100 * (res["recall_at"][kk] - ref["recall_at"][kk]) for kk in res["recall_at"]}
                worst = min(worst, *d.values())
                mine = "/".join(f"{v:.3f}" for v in res["recall_at"].values())
                theirs = "/".join(f"{v:.3f}" for v in ref["recall_at"].values())
                parts.append(f"{name.split('.')[0]} R@1/5/10 {mine} vs {theirs}")
            rows.append((
                f"recall, {k} vs fp32 (full build {f['build_speedup'][k]:.2f}x faster; same answer+top citation "
                f"{100 * f['same_answers'][k]:.0f}%)",
                "; ".join(parts), "fp32, same run", f"worst {worst:+.1f} pt", ">= -1 pt", _yes(worst >= -1.0),
            ))
    ann = r.get("ann")
    if ann:
        for row in ann["rows"]:
            goal = ""
            met = ""
            if row["n"] >= 1_000_000 and row.get("library"):
                ok = row["recall10"] >= 0.95 and row["p95_ms"] <= 20 and row["mem_mb"] <= 1024
                goal, met = "R@10>=0.95, p95<=20 ms, <=1 GB", _yes(ok)
            rows.append((
                f"ANN {row['n']:,} {row['origin']} vectors: {row['index']}",
                f"search p50/p95 {row['p50_ms']:.2f}/{row['p95_ms']:.2f} ms; recall@10 {row['recall10']:.3f}"
                + (" (library's choice)" if row.get("library") else ""),
                f"build {row['build_s']:.1f} s, load {row['load_s']:.2f} s, vectors in RAM {row['mem_mb']:.0f} MB"
                + (f", float16 store {row['fp16_store']['disk_mb']:.0f} MB on disk" if row.get("fp16_store") else ""),
                "", goal, met,
            ))
    s = r.get("sqlite")
    if s:
        rows.append((
            f"SQLite chunks table, {s['rows']:,} rows ({s['file_mb']:.0f} MB)",
            f"60 ids p50/p95 {s['lookup60_p50_ms']:.1f}/{s['lookup60_p95_ms']:.1f} ms; 200 ids {s['lookup200_p50_ms']:.1f}/{s['lookup200_p95_ms']:.1f} ms",
            f"open-time id scan {s['open_scan_s']:.1f} s (+{s['open_scan_rss_mb']:.0f} MB); full text scan (BM25) {s['full_text_scan_s']:.1f} s",
            "", "cheap lookups", _yes(s["lookup200_p95_ms"] <= 20),
        ))
    mv = r.get("milvus")
    if mv:
        for row in mv["rows"]:
            engine = f"engine {row['engine_mb']:.0f} MB" + (f" (peak {row['engine_peak_mb']:.0f})" if row["engine_peak_mb"] else "")
            rows.append((
                f"store at {row['n']:,} chunks ({mv['queries']} queries, synthetic vectors): {row['store']}",
                f"search p50/p95 {row['p50_ms']:.2f}/{row['p95_ms']:.2f} ms; recall@10 {row['recall10']:.3f}",
                f"insert {row['insert_per_s']:.0f} rows/s (index built, {row['build_s']:.0f} s); {engine}",
                "", "", "",
            ))
        w = mv.get("warm")
        if w:
            p50, p95 = w["p50_ms"], w["p95_ms"]
            rows.append((
                f"warm search(k=5) over the 5 seeds, {w['questions']} questions, fake embedder: per store",
                "; ".join(f"{k} {p50[k]:.1f}/{p95[k]:.1f} ms" for k in p50),
                f"same hits as FAISS on {w['same_hits']} of {w['questions']} questions",
                "/".join(f"{p50[k] / p50['faiss']:.1f}x" for k in p50), "", "",
            ))
    sv = r.get("concurrent")
    if sv:
        for way, w in sv["ways"].items():
            rows.append((
                f"/chat p95 under {sv['clients']} clients during a full rebuild ({sv['chunks']} chunks), indexing {way} "
                f"(n={w['baseline_n']}/{w['during_n']})",
                f"{w['during_p95_s']:.2f} s during (p50 {w['during_p50_s']:.2f} s, max {w['during_max_s']:.1f} s)",
                f"{w['baseline_p95_s']:.2f} s without indexing (p50 {w['baseline_p50_s']:.2f} s); rebuild took "
                f"{w['rebuild_s']:.0f} s{'' if w['rebuild_done_in_window'] else ' (past the window)'}; RSS: server "
                f"peak {w.get('server_peak_rss_mib', 0):.0f} MiB, indexing process {w.get('indexing_child_rss_mib', 0):.0f} MiB",
                f"{w['p95_ratio']:.2f}x", "<= 2x (issue 20)", _yes(w["p95_ratio"] <= 2.0),
            ))
    up = sv.get("uploads") if sv else None
    if up:
        per_mb = [u["cpu_s"] / (u["bytes"] / 1e6) for u in up["prose"]]
        rows.append((
            "upload of prose indexed in the server's process (" + ", ".join(
                f"{u['bytes'] // 1000} KB {u['s']:.0f} s / {u['cpu_s']:.0f} CPU s" for u in up["prose"]) + ")",
            f"{median(per_mb):.0f} CPU s per MB (from {min(per_mb):.0f} to {max(per_mb):.0f})",
            f"2 MB of one repeated word: {'refused' if up['repeated_refused'] else 'ACCEPTED'} in {up['repeated_s']:.0f} s",
            f"{max(per_mb) / min(per_mb):.2f}x", "CPU time proportional to size (<= 1.5x)",
            _yes(max(per_mb) / min(per_mb) <= 1.5),
        ))
    peaks = [f"{k} {v['_peak_rss_mb']:.0f}" for k, v in r.items()
             if isinstance(v, dict) and "_peak_rss_mb" in v and k != "addone"]
    if a and a.get("rss_mb"):
        peaks.append(f"add_one.py {a['rss_mb']:.0f}")
    if ld and ld.get("ask_rss_mb"):
        peaks.append(f"cold rag ask {median(ld['ask_rss_mb']):.0f} (reference runtime {median(ld['ask_reference_rss_mb']):.0f})")
    if peaks:
        rows.append(("peak RSS (MB, per section process)", ", ".join(peaks), "", "", "", ""))
    return rows


def render(rows: list[tuple[str, ...]], markdown: bool = False) -> str:
    head = ("measure", "median", "compared with (same run)", "ratio", "goal", "met")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    widths = [min(w, 90) for w in widths]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*head), sep, *(fmt.format(*row) for row in rows)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and smaller scale runs")
    p.add_argument("--only", help=f"comma-separated sections among {', '.join(SECTIONS)}")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--from-json", type=Path, help="print the table of saved results instead of measuring")
    args = p.parse_args(argv)

    if args.from_json:
        results = json.loads(args.from_json.read_text())
        print(render(table(results), args.markdown))
        return 0
    only = [s for s in (args.only or ",".join(SECTIONS)).split(",") if s]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    q = args.quick
    reps = 2 if q else 3
    results: dict = {"_meta": {"cpu": cpu_model(), "cores": os.cpu_count(), "quick": q, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "load_average_start": load_average(), "command": " ".join(["python -m bench", *(argv or sys.argv[1:])])}}
    workdir = CACHE / f"work-{os.getpid()}"
    started = time.perf_counter()
    try:
        def step(name: str, *extra: str, module: str = "") -> None:
            t = time.perf_counter()
            print(f"[bench] {name} ... (load average {load_average()})", file=sys.stderr, flush=True)
            results[name] = _run(name, *extra, module=module)
            print(f"[bench] {name} done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)

        if "pipeline" in only or "load" in only or "serve" in only:
            if "pipeline" in only:
                step("pipeline", "--repeats", "3" if q else "5", "--keep", str(workdir))
            else:  # the cold ask needs an index: build one, untimed
                from .sections import _workdir

                _workdir(workdir)
                import subprocess

                subprocess.run([str(Path(PY).parent / "rag"), "index", "--seeds", str(workdir / "seeds"), "--index",
                                str(workdir / "index"), "--json"], env=child_env(), cwd=REPO, check=True, capture_output=True)
        if "load" in only:
            step("load", "--repeats", str(reps), "--index-dir", str(workdir))
        if "serve" in only:
            step("serve", "--repeats", "2" if q else "3", "--index-dir", str(workdir))
        if "addone" in only:
            step("addone", "--repeats", "1", "--seeds", "30" if q else "200")
        if "fastembed" in only:
            step("fastembed", "--repeats", str(reps), "--variants", "onnx-int8" if q else "onnx-int8,onnx-fp32",
                 "--eval-variants", "onnx-int8" if q else "onnx-int8,onnx-fp32")
        if "ann" in only:
            from .scale import REAL_VECTORS

            if not REAL_VECTORS.is_file():
                import subprocess

                print("[bench] real vectors missing: python -m bench.scale embed (once, ~20-30 min)", file=sys.stderr)
                subprocess.run([PY, "-m", "bench.scale", "embed"], env=child_env(), cwd=REPO, check=True)
            step("ann", "--sizes", "0,100000" if q else "0,100000,1000000", *(["--quick"] if q else []))
        if "sqlite" in only:
            step("sqlite", "--rows", "100000" if q else "1000000")
        if "milvus" in only:  # FAISS, Milvus Lite and the Milvus server at the same size (~15 min at 100k)
            step("milvus", "--rows", "20000" if q else "100000")
        if "concurrent" in only:
            step("concurrent", *(["--quick"] if q else []), module="bench.serving")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["_meta"]["seconds"] = time.perf_counter() - started
    results["_meta"]["load_average_end"] = load_average()
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"results-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    m = results["_meta"]
    print(f"\n{m['cpu']}, {m['cores']} cores; load average {m['load_average_start']} -> {m['load_average_end']}; "
          f"{m['seconds'] / 60:.1f} min; results in {out}\n")
    print(render(table(results), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
