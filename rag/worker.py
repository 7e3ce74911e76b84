"""The child process of ``rag.background``: one indexing request in, JSON lines out.

    python -m rag.worker < request.json

``rag.background`` starts it under ``nice -n 19``, so every thread of it, even those importing numpy
starts, has the lowest niceness; its first act is then to move itself to Linux's ``SCHED_IDLE`` policy,
which the threads it starts afterwards (the model's) inherit. Next to a server's threads at niceness 0,
a thread at niceness 19 weighs 15 against 1024 (about 1.5% of a busy core) and a ``SCHED_IDLE`` one 3
(about 0.3%); on an idle core either runs at full speed. Standard output carries the protocol and
nothing else."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
from dataclasses import asdict

from .background import LOWEST_PRIORITY, settings_from_json


def lower_priority() -> str:
    """Give this process and the threads it will start the lowest CPU priority there is; says which."""
    with contextlib.suppress(OSError):
        os.nice(LOWEST_PRIORITY - os.nice(0))  # where the parent could not start it under `nice`
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (AttributeError, OSError):  # not Linux: niceness 19 it is
        return f"nice {os.nice(0)}"


def main() -> int:
    lower_priority()
    # the protocol gets its own copy of standard output; anything a library prints goes to standard error
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def send(message: dict) -> None:
        protocol.write(json.dumps(message, ensure_ascii=True) + "\n")
        protocol.flush()

    from . import api
    from .errors import RagError

    try:
        request = json.loads(sys.stdin.read())
        settings = settings_from_json(request["settings"])
        progress = lambda done, total: send({"progress": [done, total]})  # noqa: E731
        if request["action"] == "build_index":
            report = api.build_index(
                settings=settings, full=bool(request.get("full")), wait=bool(request.get("wait", True)),
                on_progress=progress, ray_address=request.get("ray_address") or None,
            )
            send({"result": {"report": asdict(report)}})
        elif request["action"] == "add_document":
            source, report = api.add_document(
                request["name"], base64.b64decode(request["content"]), settings=settings,
                overwrite=bool(request.get("overwrite")), url=str(request.get("url", "")), on_progress=progress,
            )
            send({"result": {"source": source, "report": asdict(report)}})
        else:
            send({"error": {"type": "RagError", "message": f"unknown request {request['action']!r}"}})
            return 2
    except RagError as exc:
        send({"error": {"type": type(exc).__name__, "message": str(exc)}})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
