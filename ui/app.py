"""The chat UI: ask the articles, read a cited answer, keep the index up to date.

``build_app`` wires the page; ``start`` launches it without blocking (tests use it); ``serve`` is what
``rag serve`` runs. All retrieval goes through the public ``rag`` API and all HTML through ``ui.render``.

Endpoints a script can call with gradio_client:
- ``/chat`` (question) -> answer text with [n] markers and the numbered sources, plain text;
- ``/add_document`` (file, replace) and ``/rebuild_index`` (full: re-embed everything) -> (notice, index panel),
  both absent, not just hidden, when the app is read-only, and needing the write token when the server has
  one (``Client(url, headers={"Authorization": "Bearer <token>"})``).
Every other event is the page's own: ``ui.guard`` lets only a page this server sent call it, and refuses
every route Gradio has that the page and those endpoints do not need. Indexing (upload, rebuild) runs in a
separate low-priority process (``rag.background``), so answers keep their speed meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from pathlib import Path
from typing import NoReturn

import gradio as gr
from starlette.middleware import Middleware

import rag
from rag import MAX_UPLOAD_BYTES

from . import guard, render

log = logging.getLogger("ui")

TITLE = "Ask the articles — cited answers from your documents"
SUBTITLE = (
    "Ask in English or French. Each answer quotes the sentences it rests on; "
    "a number like [1] links to the card of the passage it comes from."
)
EXAMPLE_QUESTIONS = [
    "why do French trust pure-players?",
    "Qui a écrit la biographie d'Amazon citée dans l'article ?",
    "Why would Walmart ask its customers to deliver orders?",
    "Quel est le point de douleur numéro 1 de l'expérience client ?",
    "What is the boiling point of mercury?",
]
INDEX_HINT = (
    "Added, changed or removed files in the seeds folder? Rebuild the index. "
    "Uploaded documents are indexed at once."
)
# Two CPUs: two answers embed at once; more would only queue inside the model's lock and use memory.
ANSWER_CONCURRENCY = 2
# Events waiting beyond this are refused with "queue full" instead of piling up.
MAX_QUEUE = 64
MAX_QUESTION_CHARS = 2000
# Answers from the page and from /chat share the two slots; upload and rebuild write the seeds and the
# index, one at a time. Every event in INDEX_WRITES needs the write token (ui.guard).
ANSWERS = "answers"
INDEX_WRITES = "index-writes"
# Gradio's upload cache: checked every 5 minutes, a file older than 15 is deleted (each upload is deleted
# as soon as it is indexed; this catches uploads no event ever used), and all of it when the server stops.
DELETE_CACHE = (300, 900)
# Sets the cookie ui.guard reads, so the page's uploads and events carry the token (never sent as data).
SET_TOKEN_COOKIE = (
    f"(token) => {{ document.cookie = '{guard.TOKEN_COOKIE}=' + encodeURIComponent(token || '') "
    "+ '; path=/; SameSite=Strict'; return []; }"
)
STYLE = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")
# System fonts: nothing to download for the page to look right.
THEME = gr.themes.Default(
    primary_hue="indigo",
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)


def build_app(
    settings: rag.Settings, read_only: bool = False, *, token_box: bool = False, separate_indexing: bool = True
) -> gr.Blocks:
    """The page. With ``read_only`` the upload and rebuild controls and their endpoints do not exist; with
    ``token_box`` the page asks for the write token; ``separate_indexing`` indexes in a child process."""
    handlers = _Handlers(settings, read_only, separate_indexing)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=DELETE_CACHE) as app:
        gr.HTML(
            f'<header class="rag-header"><h1>{render.escape(TITLE)}</h1><p>{render.escape(SUBTITLE)}</p></header>',
            js_on_load=None,
        )
        with gr.Row(equal_height=False, elem_classes="rag-layout"):
            with gr.Column(scale=3, min_width=340):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    show_label=False,
                    elem_id="rag-chat",
                    height="62vh",
                    min_height=320,
                    layout="panel",
                    placeholder="Ask a question about the articles, or pick an example below.",
                    # Messages are HTML that ui.render built with every document string escaped.
                    # No Markdown and no LaTeX, so "![x](http://…)" or "$$…$$" in a seed stays text;
                    # the sanitiser stays on as a second guard.
                    render_markdown=False,
                    sanitize_html=True,
                    latex_delimiters=[],
                    allow_tags=False,
                    buttons=[],
                    feedback_options=None,
                    autoscroll=True,
                )
                question_box = gr.Textbox(
                    show_label=False,
                    placeholder="Type a question and press Enter",
                    elem_id="rag-question",
                    submit_btn="Ask",
                    max_length=MAX_QUESTION_CHARS,
                    autofocus=True,
                    lines=1,
                    max_lines=4,
                )
                examples = gr.Dataset(
                    label="Examples",
                    components=[question_box],
                    samples=[[q] for q in EXAMPLE_QUESTIONS],
                    elem_id="rag-examples",
                    samples_per_page=len(EXAMPLE_QUESTIONS),
                )
            with gr.Column(scale=1, min_width=260, elem_classes="rag-side"):
                status_panel = gr.HTML(render.STATUS_HEADING, elem_id="rag-status", js_on_load=None)
                if not read_only:
                    if token_box:
                        token = gr.Textbox(
                            label="Write token", type="password", elem_id="rag-token", max_lines=1,
                            placeholder="needed to add documents or rebuild",
                        )
                        token.change(None, [token], None, js=SET_TOKEN_COOKIE)
                    rebuild_button = gr.Button("Rebuild index", variant="secondary", elem_id="rag-rebuild")
                    full_rebuild = gr.Checkbox(label="Re-embed every document (slower)", value=False, container=False)
                    # Starts with a hint, so the progress of a rebuild or an upload has room to show here.
                    notice = gr.HTML(
                        render.render_notice(INDEX_HINT), elem_id="rag-notice", js_on_load=None, min_height=64
                    )
                    upload = gr.File(
                        label=f"Add a .txt or .md document (up to {MAX_UPLOAD_BYTES // 1_000_000} MB)",
                        file_types=list(settings.extensions),
                        file_count="single",
                        type="filepath",
                        elem_id="rag-upload",
                        height=120,
                    )
                    replace_existing = gr.Checkbox(
                        label="Replace a document with the same name", value=False, container=False
                    )
                else:
                    gr.HTML('<p class="rag-readonly">Read-only: documents cannot be added here.</p>', js_on_load=None)

        pending_question = gr.State("")  # per session: the question between "show it" and "answer it"
        ask = {"api_visibility": "private"}
        question_box.submit(
            handlers.take_question, [question_box, chatbot], [question_box, chatbot, pending_question],
            queue=False, **ask,
        ).then(handlers.answer_pending, [pending_question, chatbot], [chatbot], concurrency_id=ANSWERS, **ask)
        examples.click(
            handlers.pick_example, [examples, chatbot], [question_box, chatbot, pending_question], queue=False, **ask
        ).then(handlers.answer_pending, [pending_question, chatbot], [chatbot], concurrency_id=ANSWERS, **ask)
        app.load(handlers.index_panel, None, [status_panel], **ask)

        gr.api(handlers.chat, api_name="chat", concurrency_limit=ANSWER_CONCURRENCY, concurrency_id=ANSWERS)
        if not read_only:
            # Not even registered when read-only: no button, no endpoint, no way in.
            rebuild_button.click(
                handlers.rebuild_index, [full_rebuild], [notice, status_panel],
                api_name="rebuild_index", concurrency_limit=1, concurrency_id=INDEX_WRITES, show_progress_on=[notice],
            )
            upload.upload(
                handlers.add_document, [upload, replace_existing], [notice, status_panel, upload],
                api_name="add_document", concurrency_limit=1, concurrency_id=INDEX_WRITES, show_progress_on=[notice],
            )
    return app


class _Handlers:
    """The event handlers. They hold only the frozen settings: each session's conversation travels
    with its own events, so people chatting at once never see each other's answers."""

    def __init__(self, settings: rag.Settings, read_only: bool, separate_indexing: bool = True) -> None:
        self.settings = settings
        self.read_only = read_only
        self.separate_indexing = separate_indexing

    def _message(self, error: object) -> str:
        """A library message as a remote person may see it: no path of this machine."""
        return rag.public_message(error, [self.settings.seeds_dir, self.settings.index_dir])

    # --- chat (page) ---

    def take_question(self, question: str, history: list) -> tuple:
        """Show the question at once and clear the box; the answer follows in answer_pending."""
        question = (question or "").strip()
        if not question:
            return "", history, ""
        return "", [*history, {"role": "user", "content": render.render_question(question)}], question

    def pick_example(self, sample, history: list) -> tuple:
        question = sample[0] if isinstance(sample, list | tuple) else sample
        return self.take_question(str(question or ""), history)

    def answer_pending(self, question: str, history: list) -> list:
        if not question:
            return history
        turn = sum(1 for m in history if _role(m) == "assistant") + 1
        try:
            answer = rag.answer(question, settings=self.settings)
            reply = render.render_answer(answer, turn)
        except rag.RagError as exc:
            gr.Warning(render.escape(self._message(exc)))
            reply = render.render_error(self._message(exc))
        except Exception:
            log.exception("answering %r failed", question)
            reply = render.render_error("the answer could not be computed; the details are in the server log")
        return [*history, {"role": "assistant", "content": reply}]

    # --- chat (API) ---

    def chat(self, question: str) -> str:
        """Answer a question from the documents. Returns the answer with [n] markers, then the numbered
        sources (file, character span, score, quoted sentence), as plain text."""
        try:
            return render.answer_as_text(rag.answer(question, settings=self.settings))
        except rag.RagError as exc:
            raise gr.Error(self._message(exc), print_exception=False) from None
        except Exception:
            log.exception("answering %r failed", question)
            raise gr.Error("the answer could not be computed; the details are in the server log") from None

    # --- index panel ---

    def index_panel(self) -> str:
        try:
            status = rag.index_status(settings=self.settings)
            # a model given as a local folder is named by its path: only its last part leaves this machine
            status = dataclasses.replace(status, model_id=self._message(status.model_id))
            return render.render_index_status(status, self.read_only)
        except rag.RagError as exc:
            return render.render_notice(f"The index cannot be read: {self._message(exc)}", "error")

    def rebuild_index(self, full: bool, progress=gr.Progress()) -> tuple[str, str]:  # noqa: B008
        """Update the index from the seeds folder (or re-embed everything). Returns (notice, index panel)."""
        progress(0, desc="Rebuilding the index")
        try:
            report = rag.build_index(
                settings=self.settings, full=bool(full), separate_process=self.separate_indexing,
                on_progress=_embedding_progress(progress),
            )
            notice = render.render_notice(render.describe_report(report, requested_full=bool(full)), "success")
        except rag.RagError as exc:
            gr.Warning(render.escape(self._message(exc)))
            notice = render.render_notice(self._message(exc), "error")
        return notice, self.index_panel()

    def add_document(self, path: str | None, replace: bool, progress=gr.Progress()) -> tuple[str, str, None]:  # noqa: B008
        """Save an uploaded .txt/.md into the seeds folder and index it. Returns (notice, index panel, cleared
        upload box)."""
        if not path:
            return render.render_notice("Choose a .txt or .md file to add.", "error"), self.index_panel(), None
        upload = Path(path)
        try:
            content = upload.read_bytes()
            progress(0, desc=f"Indexing {upload.name}")
            source, report = rag.add_document(
                upload.name, content, settings=self.settings, overwrite=bool(replace),
                separate_process=self.separate_indexing, on_progress=_embedding_progress(progress),
            )
            notice = render.render_notice(render.describe_added_document(source, report), "success")
            gr.Info(render.escape(f"Added {source}"))
        except rag.RagError as exc:
            gr.Warning(render.escape(self._message(exc)))
            notice = render.render_notice(self._message(exc), "error")
        except OSError:
            log.exception("reading the upload %s failed", upload)
            notice = render.render_notice("The uploaded file could not be read; try again.", "error")
        finally:
            # The seeds folder holds the document now; no copy should stay servable from Gradio's cache.
            _remove_quietly(upload)
        return notice, self.index_panel(), None


def _embedding_progress(progress):
    def report(done: int, total: int) -> None:
        progress((done, total), desc="Embedding passages", unit="texts")

    return report


def _role(message) -> str:
    return message.get("role", "") if isinstance(message, dict) else getattr(message, "role", "")


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        log.warning("could not remove the uploaded copy %s", path)


def start(
    settings: rag.Settings,
    host: str = "127.0.0.1",
    port: int = 7860,
    read_only: bool = False,
    quiet: bool = True,
    *,
    write_token: str | None = None,
    separate_indexing: bool = True,
    upload_limits: guard.UploadLimits | None = None,
) -> tuple[gr.Blocks, str]:
    """Launch the app in Gradio's server thread, behind ``ui.guard``, and return (app, local URL) at once."""
    app = build_app(settings, read_only=read_only, token_box=bool(write_token), separate_indexing=separate_indexing)
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
    settings: rag.Settings,
    host: str = "127.0.0.1",
    port: int = 7860,
    read_only: bool = False,
    write_token: str | None = None,
) -> None:
    """Run the chat UI until Ctrl+C (``rag serve``)."""
    problem = guard.exposure_problem(host, write_token, read_only)
    if problem:
        raise rag.ConfigError(problem)
    # No usage statistics and no update check: the product works offline.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Find out before the model loads, not after.
    _check_port_free(host, port)
    print(f"Loading the model and the index from {settings.index_dir} …", flush=True)
    _warm_up(settings, read_only)
    try:
        app, url = start(settings, host=host, port=port, read_only=read_only, quiet=True, write_token=write_token)
    except OSError:
        _port_refused(host, port)
    mode = " (read-only)" if read_only else (" (writes need the token)" if write_token else "")
    print(f"Ask the articles{mode} is running at {url}  (Ctrl+C to stop)", flush=True)
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
        rag.answer("warm-up", settings=settings)
    except (rag.IndexNotFoundError, rag.EmptyCorpusError) as exc:
        # Still serve: the side panel says there is no index, and an upload can start one.
        print(f"No index yet ({exc}); the page will say so until one is built.", flush=True)
