"""Small helpers shared by the benchmark sections: timing statistics, memory, child processes."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
CACHE = Path(os.environ.get("RAG_BENCH_CACHE", Path.home() / ".cache" / "rag" / "bench"))


def median(xs) -> float:
    xs = list(xs)
    return float(statistics.median(xs)) if xs else float("nan")


def pct(xs, q: float) -> float:
    """The q-th percentile (0-100), linear interpolation."""
    import numpy as np

    xs = list(xs)
    return float(np.percentile(xs, q)) if xs else float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident set size (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child_with_rss(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, float, str, int]:
    """Run ``cmd``; (wall seconds, its own peak RSS in MB, output, exit code). Reaps the child with ``os.wait4`` to read its own peak RSS."""
    started = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - started
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, out, p.returncode


def child_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_section(name: str, *args: str, timeout: float = 3600, module: str = "") -> dict:
    """Run ``python -m bench.sections NAME ARGS`` (or ``python -m MODULE ARGS``) in a fresh process; its JSON
    result, plus its peak RSS."""
    out_file = CACHE / f".section-{name}-{os.getpid()}.json"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [PY, "-m", module, "--out", str(out_file), *args] if module else [PY, "-m", "bench.sections", name,
                                                                            "--out", str(out_file), *args]
    started = time.perf_counter()
    p = subprocess.Popen(cmd, env=child_env(), cwd=REPO)
    _, status, usage = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not out_file.is_file():
        raise RuntimeError(f"bench section {name} failed (exit {code})")
    result = json.loads(out_file.read_text())
    out_file.unlink()
    result["_peak_rss_mb"] = usage.ru_maxrss / 1024
    result["_seconds"] = time.perf_counter() - started
    return result


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"
