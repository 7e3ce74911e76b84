"""Answers under load while the server indexes (issue 20): 20 concurrent ``/chat`` clients, answer latency
without indexing and during a full rebuild started from ``/rebuild_index``, for each way of indexing.

    .venv/bin/python -m bench.serving --out /tmp/serving.json [--quick]

Ways measured, one fresh ``ui.app`` server process each, all in one run:

- ``in-process``: the rebuild runs in the server's own process, sharing its model (the behaviour before
  issue 20);
- ``query-first``: the same, but documents are embedded 16 texts at a time and only while no question
  is being embedded (waiting at most 2 s), a prototype of "queries get priority" (``QueryFirst`` below);
- ``child-process``: the rebuild runs in a separate process at the lowest CPU priority (``rag.background``,
  what ``rag serve`` does now).

Each server first answers for a baseline window (answers asked and received in it), then the rebuild starts
and the clients keep asking; every answer asked while the rebuild ran (up to the window's end) makes the
second sample, however long it took. The ratio of the two p95s is measured within one server, seconds apart."""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .common import PY, REPO, child_env, pct, peak_rss_mb
from .sections import SEEDS, questions

CLIENTS = 20
WAYS = ("in-process", "query-first", "child-process")

SERVER = r"""
import sys, threading
import rag
from bench.serving import QueryFirst
from ui.server import start

way, seeds, index, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = rag.Settings(seeds_dir=seeds, index_dir=index)
if way == "query-first":
    rag.register_embedder(QueryFirst(rag.get_embedder(settings.model)))
rag.answer("warm-up", settings=settings)
app, url = start(settings, port=port, separate_indexing=(way == "child-process"))
print("URL", url, flush=True)
threading.Event().wait()
"""


class QueryFirst:
    """An embedder that lets questions pass first: ``embed_documents`` works 16 texts at a time, each
    group waiting (at most ``patience`` s) until no question is being embedded."""

    GROUP = 16

    def __init__(self, inner, patience: float = 2.0) -> None:
        self.inner = inner
        self.model_id, self.fingerprint, self.dim = inner.model_id, inner.fingerprint, inner.dim
        self.max_tokens, self.content_tokens = inner.max_tokens, inner.content_tokens
        self.patience = patience
        self._questions = 0
        self._idle = threading.Condition()

    def _asking(self, call, *args, **kwargs):
        with self._idle:
            self._questions += 1
        try:
            return call(*args, **kwargs)
        finally:
            with self._idle:
                self._questions -= 1
                self._idle.notify_all()

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def truncate(self, text, n):
        return self.inner.truncate(text, n)

    def embed_query(self, text):
        return self._asking(self.inner.embed_query, text)

    def embed_query_tokens(self, text, layer=8):
        return self._asking(self.inner.embed_query_tokens, text, layer=layer)

    def embed_tokens(self, texts, query=False, layer=8):
        return self._asking(self.inner.embed_tokens, texts, query=query, layer=layer)

    def embed_documents(self, texts, show_progress=False):
        import numpy as np

        out = []
        for i in range(0, len(texts), self.GROUP):
            with self._idle:
                self._idle.wait_for(lambda: self._questions == 0, timeout=self.patience)
            out.append(self.inner.embed_documents(texts[i : i + self.GROUP]))
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)


def _start_server(way: str, base: Path, port: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [PY, "-c", SERVER, way, str(base / "seeds"), str(base / "index"), str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env(GRADIO_ANALYTICS_ENABLED="False"),
        cwd=REPO,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line.startswith("URL "):
            return process, line.split()[1]
    process.kill()
    raise RuntimeError(f"the {way} server did not start")


def _status_mib(pid: int, field: str) -> float:
    """A memory figure of a process from /proc (VmRSS now, VmHWM its peak), in MiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(way: str, base: Path, baseline_s: float, during_s: float) -> dict:
    from gradio_client import Client

    process, url = _start_server(way, base, _free_port())
    try:
        qs = questions()
        samples: list[tuple[float, float]] = []  # (asked at, seconds)
        errors: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()
        ready = threading.Barrier(CLIENTS + 1)

        def asker(n: int) -> None:
            client = Client(url, verbose=False)
            client.predict(qs[n % len(qs)], api_name="/chat")
            ready.wait(timeout=600)
            i = n
            while not stop.is_set():
                asked = time.monotonic()
                try:
                    client.predict(qs[i % len(qs)], api_name="/chat")
                except Exception as exc:  # measured, not fatal: a refused answer is a result too
                    errors.append(type(exc).__name__)
                    continue
                finally:
                    i += 1
                with lock:
                    samples.append((asked, time.monotonic() - asked))

        threads = [threading.Thread(target=asker, args=(n,), daemon=True) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        ready.wait(timeout=600)  # every client connected and answered once
        base_from = time.monotonic()
        time.sleep(baseline_s)
        started = time.monotonic()
        rebuild: dict = {}

        def run_rebuild() -> None:
            notice, _ = Client(url, verbose=False).predict(True, api_name="/rebuild_index")
            rebuild["notice"], rebuild["ended"] = notice, time.monotonic()

        rebuilder = threading.Thread(target=run_rebuild, daemon=True)
        rebuilder.start()
        child_peak = [0.0]

        def watch_children() -> None:  # the indexing process, when there is one: its largest resident size
            while rebuilder.is_alive():
                for pid in _children(process.pid):
                    child_peak[0] = max(child_peak[0], _status_mib(pid, "VmRSS"))
                time.sleep(0.5)

        threading.Thread(target=watch_children, daemon=True).start()
        rebuilder.join(timeout=during_s)
        window_end = rebuild.get("ended", time.monotonic())
        stop.set()
        for t in threads:
            t.join(timeout=120)
        rebuilder.join(timeout=1800)
        with lock:
            before = [s for a, s in samples if base_from <= a and a + s < started]
            # every answer asked while the rebuild ran, however long it then took
            during = [s for a, s in samples if started <= a < window_end]
        out = {
            "baseline_n": len(before), "during_n": len(during), "errors": len(errors),
            "baseline_p50_s": pct(before, 50), "baseline_p95_s": pct(before, 95),
            "during_p50_s": pct(during, 50), "during_p95_s": pct(during, 95),
            "during_max_s": max(during, default=float("nan")),
            "rebuild_s": rebuild.get("ended", float("nan")) - started,
            "rebuild_done_in_window": "ended" in rebuild and rebuild["ended"] - started <= during_s,
            "rebuild_ok": "success" in rebuild.get("notice", ""),
            "server_peak_rss_mib": _status_mib(process.pid, "VmHWM"), "indexing_child_rss_mib": child_peak[0],
        }
        out["p95_ratio"] = out["during_p95_s"] / out["baseline_p95_s"]
        print(f"  {way}: p95 {out['baseline_p95_s']:.2f} s -> {out['during_p95_s']:.2f} s during the rebuild "
              f"({out['p95_ratio']:.2f}x; n={out['baseline_n']}/{out['during_n']}), rebuild {out['rebuild_s']:.0f} s",
              file=sys.stderr, flush=True)
        return out
    finally:
        process.kill()
        process.wait()


def measure_uploads(base: Path, sizes: list[int]) -> dict:
    """Seconds to add (check, save, index) documents of ordinary prose of growing size, through
    ``rag.add_document`` in this process, as wall time and as this process's CPU time (the work itself,
    whatever else the machine runs); and the seconds to refuse 2 MB of one repeated word."""
    import rag

    settings = rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index")
    prose = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.iterdir()))
    out: dict = {"prose": []}
    for size in sizes:
        text = (prose * (size // len(prose) + 1))[:size]
        started, cpu = time.perf_counter(), time.process_time()
        _, report = rag.add_document(f"prose-{size}.txt", text.encode("utf-8"), settings=settings)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        out["prose"].append({"bytes": len(text.encode("utf-8")), "chunks": report.chunks_embedded, "s": seconds,
                             "cpu_s": cpu})
        rag.remove_document(f"prose-{size}.txt", settings=settings)
        print(f"  upload of {size:,} bytes of prose: {seconds:.1f} s, {cpu:.1f} CPU s ({report.chunks_embedded} "
              "passages)", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        rag.add_document("mots.txt", b"mot " * 500_000, settings=settings)
        out["repeated_refused"] = False
    except rag.InvalidDocumentError as exc:
        out["repeated_refused"], out["repeated_reason"] = True, str(exc)
    out["repeated_s"] = time.perf_counter() - started
    print(f"  2 MB of one repeated word: refused={out['repeated_refused']} in {out['repeated_s']:.1f} s",
          file=sys.stderr, flush=True)
    return out


def run(quick: bool, ways: list[str], upload_sizes: list[int] | None = None) -> dict:
    import rag

    base = Path(tempfile.mkdtemp(prefix="rag-bench-serving-"))
    try:
        shutil.copytree(SEEDS, base / "seeds")
        for p in (base / "seeds").iterdir():
            p.chmod(0o644)
        report = rag.build_index(settings=rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index"))
        out = {"clients": CLIENTS, "chunks": report.total_chunks, "baseline_s": 10 if quick else 20,
               "during_s": 30 if quick else 60, "ways": {}}
        for way in ways:
            out["ways"][way] = measure(way, base, out["baseline_s"], out["during_s"])
        if upload_sizes is None:
            upload_sizes = [25_000, 50_000] if quick else [25_000, 50_000, 100_000, 200_000]
        if upload_sizes:
            out["uploads"] = measure_uploads(base, upload_sizes)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ways", default=",".join(WAYS))
    p.add_argument("--upload-sizes", help="bytes of prose to add, comma-separated ('' for none)")
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sizes = None if args.upload_sizes is None else [int(x) for x in args.upload_sizes.split(",") if x]
    result = run(args.quick, [w for w in args.ways.split(",") if w], sizes)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
