"""The ``rag`` command: index the seeds, ask a question, evaluate, serve the chat UI."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from .errors import RagError
from .settings import Settings

TOKEN_ENV = "RAG_SERVE_TOKEN"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rag", description="Ask questions about a folder of articles, with cited passages.")
    p.add_argument("--model", help="sentence-transformers model name or directory (default: multilingual-e5-small)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def paths(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seeds", metavar="DIR", help="seeds folder (default ./seeds or RAG_SEEDS_DIR)")
        sp.add_argument("--index", metavar="DIR", help="index folder (default ./index or RAG_INDEX_DIR)")

    sp = sub.add_parser("index", help="build or update the index after seeds are added, changed or removed")
    paths(sp)
    sp.add_argument("--full", action="store_true", help="re-embed every seed")
    sp.add_argument("--no-wait", action="store_true", help="fail at once if another rebuild is running")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")

    sp = sub.add_parser("ask", help="answer a question with cited passages")
    sp.add_argument("question")
    sp.add_argument("--k", type=int, default=5, help="passages to retrieve (default 5)")
    paths(sp)
    sp.add_argument("--json", action="store_true", help="print the answer as JSON")

    sp = sub.add_parser("status", help="what the index holds and whether the seeds changed since")
    paths(sp)
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("eval", help="score retrieval and answers on a JSON-lines question set")
    sp.add_argument("file", help="questions: one JSON object a line with q, source, keys")
    sp.add_argument("--k", type=int, default=10, help="passages retrieved per question (default 10)")
    paths(sp)
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("remove", help="move a document to the trash and update the index")
    sp.add_argument("name", help="the document's name in the seeds folder")
    paths(sp)

    sp = sub.add_parser("restore", help="bring back a replaced or removed document (without NAME: list the trash)")
    sp.add_argument("name", nargs="?", help="the document's name in the seeds folder")
    paths(sp)

    sp = sub.add_parser("serve", help="start the chat UI in the browser")
    paths(sp)
    sp.add_argument("--host", default="127.0.0.1", help="beyond 127.0.0.1, writes need a token (or --read-only)")
    sp.add_argument("--port", type=int, default=7860)
    sp.add_argument("--read-only", action="store_true", help="no upload and no rebuild from the page")
    sp.add_argument("--token", help=f"write token for upload and rebuild (better: {TOKEN_ENV}, unseen by ps)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s: %(message)s" if not args.debug else "%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings.from_env(
            seeds_dir=getattr(args, "seeds", None), index_dir=getattr(args, "index", None), model=args.model
        )
        return COMMANDS[args.command](args, settings)
    except RagError as exc:
        if args.debug:
            raise
        print(f"rag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130


def _index(args, settings: Settings) -> int:
    from .api import build_index

    report = build_index(full=args.full, wait=not args.no_wait, show_progress=not args.json, settings=settings)
    if args.json:
        print(json.dumps(asdict(report), indent=2, ensure_ascii=False))
        return 0
    if report.rebuild_reason:
        print(f"Full rebuild: {report.rebuild_reason}")
    print(
        f"Indexed {settings.seeds_dir}: {report.added} added, {report.changed} changed, {report.removed} removed, "
        f"{report.unchanged} unchanged; {report.chunks_embedded} chunks embedded, {report.total_chunks} in the index "
        f"({report.seconds:.1f} s)."
    )
    for source, reason in report.skipped:
        print(f"  skipped {source}: {reason}")
    return 0


def _ask(args, settings: Settings) -> int:
    from .api import answer

    ans = answer(args.question, k=args.k, settings=settings)
    if args.json:
        print(json.dumps(asdict(ans), indent=2, ensure_ascii=False))
        return 0
    print(ans.text)
    if not ans.found:
        print(f"({ans.reason})")
    for c in ans.citations:
        print(f"\n[{c.n}] {c.source} (characters {c.start}-{c.end}, score {c.score:.3f})")
        if c.title:
            print(f"    {c.title}")
        print(f"    “{c.quote}”")
    return 0


def _status(args, settings: Settings) -> int:
    from .api import index_status

    st = index_status(settings=settings)
    if args.json:
        print(json.dumps(asdict(st), indent=2, ensure_ascii=False))
    elif not st.exists:
        print(f"No index in {settings.index_dir}; run `rag index`.")
    else:
        print(f"{st.documents} documents, {st.chunks} chunks, model {st.model_id}, built {st.built_at}.")
        if st.stale:
            print(f"The index is out of date: {st.stale_detail}; run `rag index`.")
    return 0


def _serve(args, settings: Settings) -> int:
    import os

    from ui.app import serve

    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    serve(settings, host=args.host, port=args.port, read_only=args.read_only, write_token=token)
    return 0


def _remove(args, settings: Settings) -> int:
    from .api import remove_document

    entry, report = remove_document(args.name, settings=settings)
    print(f"Moved {entry.source} to the trash ({entry.folder}); {report.total_chunks} chunks left in the index. "
          f"`rag restore {entry.source}` brings it back within {settings.trash_days} days.")
    return 0


def _restore(args, settings: Settings) -> int:
    from .api import list_trash, restore_document

    if args.name is None:
        entries = list_trash(settings=settings)
        if not entries:
            print(f"The trash of {settings.index_dir} is empty.")
        for e in entries:
            print(f"{e.trashed_at}  {e.bytes:>10,} bytes  {e.source}")
        return 0
    entry, report = restore_document(args.name, settings=settings)
    print(f"Restored {entry.source} as it was on {entry.trashed_at}; {report.added + report.changed} document(s) "
          f"re-indexed, {report.total_chunks} chunks in the index.")
    return 0


def _eval(args, settings: Settings) -> int:
    from pathlib import Path

    from . import evaluate
    from .api import answer, search

    result = evaluate.run(
        Path(args.file),
        lambda q, k: search(q, k=k, settings=settings),
        lambda q: answer(q, settings=settings),
        k=args.k,
    )
    print(json.dumps(asdict(result), indent=2, ensure_ascii=False) if args.json else evaluate.format_table(result))
    return 0


COMMANDS = {
    "index": _index, "ask": _ask, "status": _status, "eval": _eval, "serve": _serve, "remove": _remove,
    "restore": _restore,
}

if __name__ == "__main__":
    sys.exit(main())
