"""Indexing in a child process at the lowest CPU priority, so that a server's answers keep their speed.

A server that embedded an upload in its own process made every answer wait for the model (20 concurrent
answers took 36-60 s during a rebuild of five seeds); the same rebuild run by another process left them
at 0.3-3.6 s. The child, ``python -m rag.worker``, reads one JSON request on its standard input, runs
``rag.build_index`` or ``rag.add_document`` there, and writes JSON lines back: progress, then the result or
the error. Nothing is pickled; the child builds under the same lock as ``rag index`` and swaps the new
build in, which readers pick up at their next question (``CURRENT`` changed)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from . import errors
from .errors import RagError
from .settings import Settings
from .types import IndexReport, SeedChange

log = logging.getLogger(__name__)
LOWEST_PRIORITY = 19  # niceness (rag.worker then moves itself to SCHED_IDLE)
# the folder that holds this ``rag`` package: the child imports the same code as its parent
_CODE_ROOT = str(Path(__file__).resolve().parent.parent)
_STDERR_LINES_KEPT = 40


def build_index(
    settings: Settings, *, full: bool = False, wait: bool = True, on_progress: Callable[[int, int], None] | None = None,
    ray_address: str | None = None,
) -> IndexReport:
    """``rag.build_index`` in a child process; its report, or the RagError it raised. The child builds into
    the same store (``settings`` travel whole, the store's token included, on its standard input)."""
    result = run({"action": "build_index", "settings": settings_to_json(settings), "full": full, "wait": wait,
                  "ray_address": ray_address}, on_progress)
    return report_from_json(result["report"])


def add_document(
    name: str, content: bytes, settings: Settings, *, overwrite: bool = False, url: str = "",
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[str, IndexReport]:
    """``rag.add_document`` in a child process: (source, report), or the RagError it raised."""
    request = {
        "action": "add_document", "settings": settings_to_json(settings), "name": name, "overwrite": overwrite,
        "url": url, "content": base64.b64encode(content).decode("ascii"),
    }
    result = run(request, on_progress)
    return result["source"], report_from_json(result["report"])


def run(request: dict, on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Send ``request`` to a new worker process and follow it to its end, in the calling thread (so that
    ``on_progress`` is called from the thread that asked)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_CODE_ROOT, env.get("PYTHONPATH")]))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        child = subprocess.Popen(
            [*low_priority_prefix(), sys.executable, "-m", "rag.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, text=True, encoding="utf-8", errors="replace",
        )
    except OSError as exc:
        raise RagError(f"the indexing process cannot start: {exc.strerror or exc}") from None
    stderr_tail: deque[str] = deque(maxlen=_STDERR_LINES_KEPT)
    drain = threading.Thread(target=lambda: stderr_tail.extend(child.stderr), daemon=True)
    drain.start()
    outcome: dict = {}
    try:
        with contextlib.suppress(BrokenPipeError):  # a child that died at once says why on its stderr
            child.stdin.write(json.dumps(request))
            child.stdin.close()
        for line in child.stdout:
            message = _message(line)
            if "progress" in message and on_progress is not None:
                done, total = message["progress"]
                on_progress(int(done), int(total))
            elif "result" in message or "error" in message:
                outcome = message
        code = child.wait()
    finally:
        if child.poll() is None:  # the caller was interrupted: a killed build leaves the index as it was
            child.kill()
            child.wait()
        drain.join(timeout=5)
    if "error" in outcome:
        raise _error(outcome["error"])
    if "result" not in outcome:
        log.error("The indexing process ended with code %s:\n%s", code, "".join(stderr_tail))
        raise RagError(f"the indexing process stopped (exit code {code}) before it finished; nothing was changed")
    return outcome["result"]


def low_priority_prefix() -> list[str]:
    """``nice -n 19``: the child starts at the lowest niceness, so even the threads that importing numpy
    starts (before any code of ours runs) have it. The worker lowers itself further (``SCHED_IDLE``), and
    to niceness 19 where ``nice`` is missing."""
    nice = shutil.which("nice")
    return [nice, "-n", str(LOWEST_PRIORITY)] if nice else []


def _message(line: str) -> dict:
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _error(payload: dict) -> RagError:
    """The child's RagError, as the same class here (or RagError when the name is not one of ours)."""
    cls = getattr(errors, str(payload.get("type", "")), RagError)
    if not (isinstance(cls, type) and issubclass(cls, RagError)):
        cls = RagError
    return cls(str(payload.get("message", "the indexing process failed")))


def settings_to_json(settings: Settings) -> dict:
    out = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, Path):
            value = str(value.absolute())  # the child may not share the working directory's meaning
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def settings_from_json(data: dict) -> Settings:
    values = dict(data)
    if "extensions" in values:
        values["extensions"] = tuple(values["extensions"])
    return Settings(**values)


def report_from_json(data: dict) -> IndexReport:
    values = dict(data)
    values["skipped"] = [tuple(pair) for pair in values.get("skipped", [])]
    values["files"] = [SeedChange(**f) for f in values.get("files", [])]
    return IndexReport(**values)
