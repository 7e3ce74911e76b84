"""The chat UI as a server: ``start`` launches the page (``ui.app``) behind ``ui.guard`` without blocking (tests
use it); ``serve`` is what ``rag serve`` runs: it refuses to listen beyond loopback without a write token or
read-only, checks the port, loads the model and the index, then serves until Ctrl+C."""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import gradio as gr
from starlette.middleware import Middleware

import rag
from rag import MAX_UPLOAD_BYTES

from . import guard
from .app import ANSWER_CONCURRENCY, INDEX_WRITES, MAX_QUEUE, STYLE, THEME, build_app


def start(
    settings: rag.Settings,
    host: str = "127.0.0.1",
    port: int = 7860,
    read_only: bool = False,
    quiet: bool = True,
    allow_private_urls: bool = False,
    *,
    write_token: str | None = None,
    separate_indexing: bool = True,
    upload_limits: guard.UploadLimits | None = None,
) -> tuple[gr.Blocks, str]:
    """Launch the app in Gradio's server thread, behind ``ui.guard``, and return (app, local URL) at once."""
    app = build_app(
        settings, read_only=read_only, allow_private_urls=allow_private_urls, token_box=bool(write_token),
        separate_indexing=separate_indexing,
    )
    app.queue(default_concurrency_limit=ANSWER_CONCURRENCY, max_size=MAX_QUEUE)
    limits = upload_limits or guard.UploadLimits(extensions=tuple(settings.extensions), max_file_bytes=MAX_UPLOAD_BYTES)
    policy = guard.policy_for(app, read_only, write_token, limits, write_group=INDEX_WRITES)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        share=False,
        quiet=quiet,
        inbrowser=False,
        show_error=False,  # handlers report RagErrors themselves; other errors stay in the server log
        # Gradio serves only its own assets and its upload cache; the documents and the index are
        # blocked outright, and read-only refuses every upload (nothing there accepts a file).
        allowed_paths=[],
        blocked_paths=[str(settings.seeds_dir.resolve()), str(settings.index_dir.resolve())],
        max_file_size=0 if read_only else MAX_UPLOAD_BYTES,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        run_history=False,
        footer_links=["api"],
        theme=THEME,
        css=STYLE,
        app_kwargs={"middleware": [Middleware(guard.Guard, policy=policy)]},
    )
    return app, url


def serve(
    settings: rag.Settings, host: str = "127.0.0.1", port: int = 7860, read_only: bool = False,
    allow_private_urls: bool = False, write_token: str | None = None,
) -> None:
    """Run the chat UI until Ctrl+C (``rag serve``)."""
    problem = guard.exposure_problem(host, write_token, read_only)
    if problem:
        raise rag.ConfigError(problem)
    # No usage statistics and no update check: the product works offline.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Find out before the model loads, not after.
    _check_port_free(host, port)
    print(f"Loading the model and the index from {settings.store or settings.index_dir} …", flush=True)
    _warm_up(settings, read_only)
    try:
        app, url = start(
            settings, host=host, port=port, read_only=read_only, quiet=True, allow_private_urls=allow_private_urls,
            write_token=write_token,
        )
    except OSError:
        _port_refused(host, port)
    mode = " (read-only)" if read_only else (" (writes need the token)" if write_token else "")
    print(f"Ask the articles{mode} is running at {url}  (Ctrl+C to stop)", flush=True)
    if settings.llm_configured:
        print(f"Answers are written by the language model {settings.llm_model} and checked against the passages.",
              flush=True)
    app.block_thread()


def _check_port_free(host: str, port: int) -> None:
    try:
        with socket.create_server((host, port)):
            pass
    except OSError:
        _port_refused(host, port)


def _port_refused(host: str, port: int) -> NoReturn:
    raise SystemExit(f"rag: error: cannot listen on {host}:{port} (in use or not allowed); choose another --port")


def _warm_up(settings: rag.Settings, read_only: bool) -> None:
    """Load the model and the index now, so the first person to ask does not wait for them."""
    status = rag.index_status(settings=settings)
    try:
        if not status.exists and not read_only:
            print("No index yet: building it from", settings.seeds_dir, flush=True)
            rag.build_index(settings=settings, show_progress=True)
        rag.answer("warm-up", settings=settings, generate=False)
    except (rag.IndexNotFoundError, rag.EmptyCorpusError) as exc:
        # Still serve: the side panel says there is no index, and an upload can start one.
        print(f"No index yet ({exc}); the page will say so until one is built.", flush=True)
