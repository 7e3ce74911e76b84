"""The chat UI: ask the articles, read a cited answer, keep the index up to date.

``build_app`` wires the page; ``start`` launches it without blocking (tests use it); ``serve`` is what
``rag serve`` runs. All retrieval goes through the public ``rag`` API and all HTML through ``ui.render``.

Endpoints a script can call with gradio_client:
- ``/chat`` (question) -> answer text with [n] markers and the numbered sources, plain text (written by the
  configured language model when there is one, then checked, as on the page);
- ``/add_document`` (file, replace), ``/add_url`` (link) and ``/rebuild_index`` (full: re-embed everything) ->
  (notice, index panel, ...), all absent, not just hidden, when the app is read-only, and needing the write
  token when the server has one (``Client(url, headers={"Authorization": "Bearer <token>"})``). Links to this
  machine or its private network are refused unless the app was started with ``allow_private_urls``.
Every other event is the page's own: ``ui.guard`` lets only a page this server sent call it, and refuses every
route Gradio has that the page and those endpoints do not need (``ui.server`` puts it in front). Indexing
(upload, link, rebuild) runs in a separate low-priority process (``rag.background``), so answers keep their
speed meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

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
    "Uploaded documents and links are indexed at once."
)
UPLOAD_KINDS = ".txt, .md, .html, .pdf or .docx"
# Two CPUs: two answers embed at once; more would only queue inside the model's lock and use memory.
ANSWER_CONCURRENCY = 2
# Events waiting beyond this are refused with "queue full" instead of piling up.
MAX_QUEUE = 64
MAX_QUESTION_CHARS = 2000
# Answers from the page and from /chat share the two slots; upload, link and rebuild write the seeds and the
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
    settings: rag.Settings, read_only: bool = False, allow_private_urls: bool = False, *, token_box: bool = False,
    separate_indexing: bool = True,
) -> gr.Blocks:
    """The page. With ``read_only`` the upload, link and rebuild controls and their endpoints do not exist;
    with ``token_box`` the page asks for the write token; ``separate_indexing`` indexes in a child process."""
    handlers = _Handlers(settings, read_only, allow_private_urls, separate_indexing)
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
                        label=f"Add a {UPLOAD_KINDS} document (up to {MAX_UPLOAD_BYTES // 1_000_000} MB)",
                        file_types=list(settings.extensions),
                        file_count="single",
                        type="filepath",
                        elem_id="rag-upload",
                        height=120,
                    )
                    replace_existing = gr.Checkbox(
                        label="Replace a document with the same name", value=False, container=False
                    )
                    url_box = gr.Textbox(
                        label="Add a page by its link", placeholder="https://…", elem_id="rag-url",
                        submit_btn="Add", max_length=2048, lines=1, max_lines=1,
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
            url_box.submit(
                handlers.add_url, [url_box], [notice, status_panel, url_box],
                api_name="add_url", concurrency_limit=1, concurrency_id=INDEX_WRITES, show_progress_on=[notice],
            )
    return app


class _Handlers:
    """The event handlers. They hold only the frozen settings: each session's conversation travels
    with its own events, so people chatting at once never see each other's answers."""

    def __init__(
        self, settings: rag.Settings, read_only: bool, allow_private_urls: bool = False, separate_indexing: bool = True
    ) -> None:
        self.settings = settings
        self.read_only = read_only
        self.allow_private_urls = allow_private_urls
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

    def answer_pending(self, question: str, history: list) -> Iterator[list]:
        """The answer; a written one shows its text as the language model writes it, then the checked answer."""
        if not question:
            yield history
            return
        turn = sum(1 for m in history if _role(m) == "assistant") + 1
        written = ""
        try:
            for event in rag.answer_stream(question, settings=self.settings):
                if isinstance(event, str):
                    written += event
                    yield [*history, {"role": "assistant", "content": render.render_draft(written)}]
                else:
                    reply = render.render_answer(event, turn, writer=self.settings.llm_model)
        except rag.RagError as exc:
            gr.Warning(render.escape(self._message(exc)))
            reply = render.render_error(self._message(exc))
        except Exception:
            log.exception("answering %r failed", question)
            reply = render.render_error("the answer could not be computed; the details are in the server log")
        yield [*history, {"role": "assistant", "content": reply}]

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
        """Save an uploaded document into the seeds folder and index it. Returns (notice, index panel, cleared
        upload box)."""
        if not path:
            return render.render_notice(f"Choose a {UPLOAD_KINDS} file to add.", "error"), self.index_panel(), None
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

    def add_url(self, url: str, progress=gr.Progress()) -> tuple[str, str, str]:  # noqa: B008
        """Fetch a page by its link into the seeds folder and index it. Returns (notice, index panel, link box:
        cleared once added, kept to be corrected when it failed)."""
        url = (url or "").strip()
        if not url:
            return render.render_notice("Paste a link starting with https://.", "error"), self.index_panel(), ""
        try:
            progress(0, desc="Fetching the link")
            source, report = rag.add_url(
                url, settings=self.settings, allow_private=self.allow_private_urls, max_bytes=MAX_UPLOAD_BYTES,
                separate_process=self.separate_indexing, on_progress=_embedding_progress(progress),
            )
        except rag.RagError as exc:
            gr.Warning(render.escape(self._message(exc)))
            return render.render_notice(self._message(exc), "error"), self.index_panel(), url
        gr.Info(render.escape(f"Added {source}"))
        notice = render.render_notice(render.describe_added_document(source, report), "success")
        return notice, self.index_panel(), ""


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
