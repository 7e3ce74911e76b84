"""The child process of ``rag.background``: one indexing request in, JSON lines out.

    python -m rag.worker < request.json

Its first act is to lower its own CPU priority (Linux ``SCHED_IDLE``: it runs only on a core nothing else
wants; ``nice 19`` where that policy is missing), before any library starts a thread, so that every
thread it starts inherits the priority. Standard output carries the protocol and nothing else."""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import asdict


def lower_priority() -> str:
    """Run this process (and the threads it will start) only when a core is otherwise idle."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (AttributeError, OSError):
        try:
            os.nice(19)
            return "nice 19"
        except OSError:
            return "normal"


def main() -> int:
    lower_priority()
    # the protocol gets its own copy of standard output; anything a library prints goes to standard error
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def send(message: dict) -> None:
        protocol.write(json.dumps(message, ensure_ascii=True) + "\n")
        protocol.flush()

    from . import api
    from .background import settings_from_json
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
