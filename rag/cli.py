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
    p.add_argument("--llm-url", metavar="URL",
                   help="an OpenAI-compatible server that writes the answers, e.g. http://127.0.0.1:11434/v1 "
                        "(default RAG_LLM_URL; none: answers quote the passages)")
    p.add_argument("--llm-model", metavar="NAME", help="the model to ask at --llm-url (default RAG_LLM_MODEL)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def paths(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seeds", metavar="DIR", help="seeds folder (default ./seeds or RAG_SEEDS_DIR)")
        sp.add_argument("--index", metavar="DIR", help="index folder (default ./index or RAG_INDEX_DIR)")
        sp.add_argument("--store", metavar="URL", help="a Milvus server (http://host:19530) or Milvus Lite file "
                        "(name.db) instead of the FAISS folder (default RAG_STORE; token: RAG_STORE_TOKEN)")

    sp = sub.add_parser("index", help="build or update the index after seeds are added, changed or removed")
    paths(sp)
    sp.add_argument("--full", action="store_true", help="re-embed every seed")
    sp.add_argument("--no-wait", action="store_true", help="fail at once if another rebuild is running")
    sp.add_argument("--ray", metavar="ADDRESS", help="embed on this Ray cluster (host:port; pip install 'rag-seeds[ray]')")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")

    sp = sub.add_parser("add", help="add documents (files or http(s) links) to the seeds folder and index them")
    sp.add_argument("items", nargs="+", metavar="PATH_OR_URL", help=".txt .md .html .pdf .docx files, or links to pages")
    paths(sp)
    sp.add_argument("--replace", action="store_true", help="replace a document of the same name")

    sp = sub.add_parser("ask", help="answer a question with cited passages")
    sp.add_argument("question")
    sp.add_argument("--k", type=int, default=5, help="passages to retrieve (default 5)")
    paths(sp)
    sp.add_argument("--json", action="store_true", help="print the answer as JSON")
    sp.add_argument("--quote", action="store_true", help="quote the passages even when a language model is set")

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
    sp.add_argument(
        "--allow-private-urls", action="store_true",
        help="let visitors add links to this machine or its private network (refused by default)",
    )
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
            seeds_dir=getattr(args, "seeds", None), index_dir=getattr(args, "index", None), model=args.model,
            store=getattr(args, "store", None), llm_url=args.llm_url, llm_model=args.llm_model,
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

    report = build_index(full=args.full, wait=not args.no_wait, show_progress=not args.json, settings=settings,
                         ray_address=args.ray)
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
    if report.by_format:
        print("Documents by format: " + ", ".join(f"{kind} {n}" for kind, n in report.by_format.items()) + ".")
    for source, reason in report.skipped:
        print(f"  skipped {source}: {reason}")
    return 0


def _add(args, settings: Settings) -> int:
    """Each item is added on its own: one that cannot be added is reported and the others still are."""
    from pathlib import Path

    from .api import add_document, add_url

    failed = 0
    for item in args.items:
        try:
            if "://" in item:
                source, report = add_url(item, settings=settings)
            else:
                path = Path(item)
                if not path.is_file():
                    raise RagError(f"{item} is not a file")
                if path.stat().st_size > settings.max_file_bytes:
                    raise RagError(f"{item} is {path.stat().st_size:,} bytes; the limit is {settings.max_file_bytes:,}")
                source, report = add_document(
                    path.name, path.read_bytes(), overwrite=args.replace, max_bytes=settings.max_file_bytes,
                    settings=settings,
                )
        except (RagError, OSError) as exc:
            failed += 1
            print(f"rag: error: {item}: {exc}", file=sys.stderr)
            continue
        chunks = next((f.chunks for f in report.files if f.source == source), 0)
        print(f"Added {item} as {settings.seeds_dir / source} ({chunks} chunks).")
    return 2 if failed else 0


def _ask(args, settings: Settings) -> int:
    from .api import answer

    ans = answer(args.question, k=args.k, settings=settings, generate=False if args.quote else None)
    if args.json:
        print(json.dumps(asdict(ans), indent=2, ensure_ascii=False))
        return 0
    print(ans.text)
    if ans.generated:
        print(f"(written by {settings.llm_model} from the passages below; each sentence checked against its source)")
    if ans.note:
        print(f"({ans.note})")
    if ans.found:
        print(f"({ans.support}, confidence {ans.confidence:.2f})")
    else:
        print(f"({ans.reason})")
    for c in ans.citations:
        page = f"page {c.page}, " if c.page else ""
        print(f"\n[{c.n}] {c.source} ({page}characters {c.start}-{c.end}, score {c.score:.3f})")
        if c.title:
            print(f"    {c.title}")
        if c.url:
            print(f"    {c.url}")
        print(f"    “{c.quote}”")
    return 0


def _status(args, settings: Settings) -> int:
    from .api import index_status

    st = index_status(settings=settings)
    if args.json:
        print(json.dumps(asdict(st), indent=2, ensure_ascii=False))
    elif not st.exists:
        print(f"No index in {settings.store or settings.index_dir}; run `rag index`.")
    else:
        print(f"{st.documents} documents, {st.chunks} chunks, model {st.model_id}, built {st.built_at}.")
        if st.stale:
            print(f"The index is out of date: {st.stale_detail}; run `rag index`.")
    return 0


def _serve(args, settings: Settings) -> int:
    import contextlib
    import os
    import threading

    from .api import get_embedder

    def load_model() -> None:
        with contextlib.suppress(RagError):  # the server's own warm-up reports it
            get_embedder(settings.model)

    # the model loads while the web framework is imported (two cores; ~1 s of the time to the first answer)
    threading.Thread(target=load_model, name="rag-model-load", daemon=True).start()
    from ui.server import serve

    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    serve(settings, host=args.host, port=args.port, read_only=args.read_only,
          allow_private_urls=args.allow_private_urls, write_token=token)
    return 0


def _remove(args, settings: Settings) -> int:
    from .seeds import remove_document

    entry, report = remove_document(args.name, settings=settings)
    print(f"Moved {entry.source} to the trash ({entry.folder}); {report.total_chunks} chunks left in the index. "
          f"`rag restore {entry.source}` brings it back within {settings.trash_days} days.")
    return 0


def _restore(args, settings: Settings) -> int:
    from .seeds import list_trash, restore_document

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
        lambda q: answer(q, settings=settings, generate=False),  # scores retrieval and the quoted answer
        k=args.k,
    )
    print(json.dumps(asdict(result), indent=2, ensure_ascii=False) if args.json else evaluate.format_table(result))
    return 0


COMMANDS = {
    "index": _index, "add": _add, "ask": _ask, "status": _status, "eval": _eval, "serve": _serve, "remove": _remove,
    "restore": _restore,
}

if __name__ == "__main__":
    sys.exit(main())
