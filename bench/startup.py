"""Start-up and footprint sections of ``python -m bench`` (issue 18): a cold ``rag ask`` against a bare
process that loads the same model files with the same runtime and embeds one query, and ``rag serve``'s
time to its first answer and resident memory after ten questions. Each side runs in its own process,
the two alternating; the reference runtime (sentence-transformers, ``#torch``) is measured in the same
run, as the "before"."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .common import PY, REPO, child_env, child_with_rss, median, peak_rss_mb

DEFAULT = "intfloat/multilingual-e5-small"
REFERENCE = DEFAULT + "#torch"
QUESTION = "Qui a écrit la biographie d'Amazon citée dans l'article ?"
SERVE_QUESTIONS = [
    "why do French trust pure-players?",
    "Qui a écrit la biographie d'Amazon citée dans l'article ?",
    "Why would Walmart ask its customers to deliver orders?",
    "Quel est le point de douleur numéro 1 de l'expérience client ?",
    "What is the boiling point of mercury?",
    "How does Darty answer an unhappy customer?",
    "Combien de clients ont répondu à l'enquête ?",
    "Who wrote the opinion piece on Amazon?",
    "What do self-service checkouts change for shoppers?",
    "Pourquoi le client est-il aussi un peu valet ?",
]

# A bare process: the same files (tokenizer.json, the ONNX graph and its word table) through the same
# libraries (tokenizers, onnxruntime, numpy), one query embedded; no part of rag imported.
BARE_CHILD = r"""
import json, os, sys
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
model_dir, onnx_dir = sys.argv[1], sys.argv[2]
tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
opts = ort.SessionOptions(); opts.log_severity_level = 3
opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(os.path.join(onnx_dir, "model.onnx"), opts, providers=["CPUExecutionProvider"])
ids = np.asarray([tok.encode("query: " + sys.argv[3]).ids], dtype=np.int64)
unique, local = np.unique(ids, return_inverse=True)
table = np.load(os.path.join(onnx_dir, "word_embeddings.npy"), mmap_mode="r")
vec = session.run(["embedding"], {"input_ids": local.reshape(ids.shape), "attention_mask": np.ones_like(ids),
                                  "word_embeddings": np.ascontiguousarray(table[unique])})[0]
print(json.dumps({"norm": float(np.linalg.norm(vec))}))
"""

LOAD_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import rag
t1 = time.perf_counter()
e = rag.get_embedder(sys.argv[1])
t2 = time.perf_counter()
rag.get_embedder(sys.argv[1])
t3 = time.perf_counter()
e.embed_query("warm")
t4 = time.perf_counter()
print(json.dumps({"import_rag": t1 - t0, "load": t2 - t1, "second_load": t3 - t2, "first_query": t4 - t3,
                  "torch_imported": "torch" in sys.modules}))
"""


def _model_files() -> tuple[Path, Path]:
    from rag.model.build import ensure_default_model
    from rag.model.onnx_convert import ensure_onnx

    model_dir = ensure_default_model()
    return model_dir, ensure_onnx(model_dir, "fp32")


def section_load(repeats: int, index_dir: Path | None) -> dict:
    """A cold ``rag ask`` (default runtime, and the reference runtime as the before) against the bare
    process, alternating, each in a fresh process; and the model load inside a process."""
    model_dir, onnx_dir = _model_files()
    env = child_env()
    out: dict = {"model_dir": str(model_dir), "load": [], "second_load": [], "import_rag": [], "first_query": [],
                 "bare": [], "ask": [], "ask_reference": [], "bare_rss_mb": [], "ask_rss_mb": [], "ask_reference_rss_mb": []}
    for r in range(repeats):
        wall, rss, text, code = child_with_rss([PY, "-c", LOAD_CHILD, DEFAULT], env=env, cwd=REPO)
        if code:
            raise RuntimeError(text)
        d = json.loads(text.strip().splitlines()[-1])
        for key in ("load", "second_load", "import_rag", "first_query"):
            out[key].append(d[key])
        out["torch_imported"] = d["torch_imported"]
        if index_dir is None:
            continue
        ask = [str(Path(PY).parent / "rag"), "ask", QUESTION, "--index", str(index_dir / "index"),
               "--seeds", str(index_dir / "seeds")]
        commands = {
            "ask": ask,
            "ask_reference": [str(Path(PY).parent / "rag"), "--model", REFERENCE, *ask[1:]],
            "bare": [PY, "-c", BARE_CHILD, str(model_dir), str(onnx_dir), QUESTION],
        }
        names = list(commands) if r % 2 == 0 else list(reversed(commands))
        for name in names:
            wall, rss, text, code = child_with_rss(commands[name], env=env, cwd=REPO)
            if code:
                raise RuntimeError(f"{name} failed: {text[-2000:]}")
            out[name].append(wall)
            out[name + "_rss_mb"].append(rss)
        print(f"  cold ask {out['ask'][-1]:.2f} s, bare {out['bare'][-1]:.2f} s, reference ask {out['ask_reference'][-1]:.1f} s",
              file=sys.stderr, flush=True)
    if out["ask"]:
        out["ask_over_bare"] = median(a / b for a, b in zip(out["ask"], out["bare"]))
        out["reference_over_ask"] = median(a / b for a, b in zip(out["ask_reference"], out["ask"]))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(pid: int) -> dict[str, float]:
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def _serve_once(index_dir: Path, model: str) -> dict:
    """Start ``rag serve``; seconds until /chat gives its first answer, then RSS after ten questions."""
    from gradio_client import Client

    port = _free_port()
    cmd = [str(Path(PY).parent / "rag"), "--model", model, "serve", "--port", str(port), "--read-only",
           "--index", str(index_dir / "index"), "--seeds", str(index_dir / "seeds")]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=child_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        client = None
        while client is None:
            if proc.poll() is not None:
                raise RuntimeError(f"rag serve exited with {proc.returncode}")
            if time.perf_counter() - started > 300:
                raise RuntimeError("rag serve did not start within 300 s")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # not listening yet
                time.sleep(0.1)
        client.predict(SERVE_QUESTIONS[0], api_name="/chat")
        first_answer = time.perf_counter() - started
        after_start = _status(proc.pid)
        times = []
        for q in SERVE_QUESTIONS:
            t = time.perf_counter()
            client.predict(q, api_name="/chat")
            times.append(time.perf_counter() - t)
        after_ten = _status(proc.pid)
        return {"first_answer_s": first_answer, "answer_s": times, "after_start": after_start, "after_ten": after_ten}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def section_serve(repeats: int, index_dir: Path) -> dict:
    """``rag serve`` with the default runtime and with the reference one, alternating."""
    out: dict = {"default": [], "reference": []}
    for r in range(repeats):
        for name in (["default", "reference"] if r % 2 == 0 else ["reference", "default"]):
            run = _serve_once(index_dir, DEFAULT if name == "default" else REFERENCE)
            out[name].append(run)
            print(f"  serve {name}: first answer {run['first_answer_s']:.1f} s, RSS after ten "
                  f"{run['after_ten']['VmRSS']:.0f} MB", file=sys.stderr, flush=True)
    for name in ("default", "reference"):
        runs = out[name]
        out[name + "_summary"] = {
            "first_answer_s": median(r["first_answer_s"] for r in runs),
            "rss_after_ten_mb": median(r["after_ten"]["VmRSS"] for r in runs),
            "anon_after_ten_mb": median(r["after_ten"]["RssAnon"] for r in runs),
            "answer_p50_ms": 1000 * median(t for r in runs for t in r["answer_s"]),
        }
    out["peak_rss_mb"] = peak_rss_mb()
    return out
