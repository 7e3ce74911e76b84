"""Shared set-up for the UI tests: a private copy of the indexed seeds, a live server on a free loopback\nport, the hostile seed, and the Chromium launch options that work on this machine."""

from __future__ import annotations

import os
import shutil
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import rag

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"
FIRST_SEED = "000_7e6f9a2e3c46846f.txt"
EXAMPLE_QUESTION = "why do French trust pure-players?"
FRENCH_QUESTION = "Qui a écrit la biographie d'Amazon citée dans l'article ?"
UNANSWERABLE_QUESTION = "What is the boiling point of mercury?"

HOSTILE_STRINGS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "![x](http://example.com/x.png)",
    "List<String>",
]
HOSTILE_SEED_NAME = "hostile.txt"
# Every hostile string sits in the one passage that answers HOSTILE_QUESTION (the real model scores it ~0.9).
HOSTILE_SEED = (
    "Les génériques en Java, un article de test\n\n"
    "Cet article de test parle des génériques en Java. Une liste de chaînes de caractères s'écrit List<String> "
    "en Java, et ce type générique évite les conversions de type.\n"
    "Un attaquant pourrait cacher <script>alert(1)</script> dans un article, ou une image piégée "
    "<img src=x onerror=alert(1)>, ou encore une image Markdown ![x](http://example.com/x.png) "
    "qui irait chercher un fichier ailleurs.\n"
)
HOSTILE_QUESTION = "Comment écrit-on une liste de chaînes de caractères en Java ?"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]

def copy_corpus(source: rag.Settings, dest: Path) -> rag.Settings:
    """A private, writable copy of an indexed corpus (seeds and index) under ``dest``.

    Embedding the seeds takes a while on two CPUs, so the UI tests copy the session's indexed seeds
    (conftest's ``real_settings``) instead of embedding them again; each copy can be changed freely."""
    seeds, index = dest / "seeds", dest / "index"
    shutil.copytree(source.seeds_dir, seeds)
    shutil.copytree(source.index_dir, index)
    for path in seeds.rglob("*"):
        if path.is_file():
            # the repository's seeds are read-only, and copies keep that mode
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return rag.Settings(seeds_dir=seeds, index_dir=index, model=source.model)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(settings: rag.Settings, read_only: bool = False, **options) -> Iterator[str]:
    """The app on a free loopback port, served from Gradio's background thread; yields its URL.
    ``options`` go to ``ui.app.start`` (write_token, upload_limits, ...)."""
    from ui.server import start

    app, url = start(settings, host="127.0.0.1", port=free_port(), read_only=read_only, **options)
    try:
        yield url
    finally:
        app.close()


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def record_metric(name: str, value: str) -> None:
    """Keep a measured number in artifacts/ui-metrics.txt (git-ignored) so it can be reported."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "ui-metrics.txt"
    lines = [ln for ln in (path.read_text().splitlines() if path.exists() else []) if not ln.startswith(name + ":")]
    lines.append(f"{name}: {value}")
    path.write_text("\n".join(sorted(lines)) + "\n")


def python_env() -> dict[str, str]:
    """Environment for a child ``rag serve``: no Gradio analytics, same paths as this process."""
    env = dict(os.environ)
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    env["PYTHONPATH"] = str(REPO)
    return env
