"""The child process of ``rag.background``: one indexing request in, JSON lines out.

    python -m rag.worker < request.json

``rag.background`` starts it at the lowest CPU priority (``nice -n 19``): next to a server's threads at
niceness 0 it gets about 1.5% of a busy core (weights 15 and 1024) and all of an idle one. (Linux's
``SCHED_IDLE`` would give it nothing at all while any other process runs: on a shared machine an upload
would wait indefinitely.) Its first act is to lower itself too, for a parent without ``nice``. Standard
output carries the protocol and nothing else."""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import asdict

from .background import LOWEST_PRIORITY, settings_from_json


def lower_priority() -> int:
    """Give this process (and the threads it will start) the lowest CPU priority; returns its niceness."""
    try:
        return os.nice(LOWEST_PRIORITY - os.nice(0))
    except OSError:  # not allowed here: indexing still works, at the priority it has
        return os.nice(0)


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
                on_progress=progress,
            )
            send({"result": {"report": asdict(report)}})
        elif request["action"] == "add_document":
            source, report = api.add_document(
                request["name"], base64.b64decode(request["content"]), settings=settings,
                overwrite=bool(request.get("overwrite")), on_progress=progress,
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
