"""The chat UI as a server: its /chat, /add_document and /rebuild_index endpoints through gradio_client,
read-only mode, what it refuses to serve, `rag serve` itself, and the HTML rendering functions."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import rag
from ui import render

from .ui_helpers import (
    EXAMPLE_QUESTION,
    FIRST_SEED,
    FRENCH_QUESTION,
    HOSTILE_STRINGS,
    UNANSWERABLE_QUESTION,
    copy_corpus,
    free_port,
    live_server,
    python_env,
    record_metric,
    rss_mib,
)

TATIN = (
    "# La tarte Tatin\n\n"
    "La tarte Tatin fut inventée par les sœurs Stéphanie et Caroline Tatin, qui tenaient un hôtel à "
    "Lamotte-Beuvron, en Sologne, à la fin du XIXe siècle. C'est une tarte aux pommes caramélisées cuite "
    "à l'envers, la pâte posée sur les fruits.\n"
)


# --- a live server over a copy of the seeds, real model ---


@pytest.fixture(scope="module")
def corpus(real_settings, tmp_path_factory) -> rag.Settings:
    return copy_corpus(real_settings, tmp_path_factory.mktemp("ui-server"))


@pytest.fixture(scope="module")
def server_url(corpus):
    with live_server(corpus) as url:
        yield url


@pytest.fixture(scope="module")
def read_only_url(corpus):
    with live_server(corpus, read_only=True) as url:
        yield url


def client(url: str) -> Client:
    return Client(url, verbose=False)


@pytest.mark.model
def test_chat_endpoint_returns_a_cited_answer(server_url):
    text = client(server_url).predict(EXAMPLE_QUESTION, api_name="/chat")
    answer, _, sources = text.partition("\n\nSources:\n")
    assert "[1]" in answer
    assert "pure-players" in answer
    assert sources.startswith(f"[1] {FIRST_SEED}, characters ")
    assert "“" in sources  # the quoted sentence
    assert "<" not in text  # plain text for scripts, no HTML


@pytest.mark.model
def test_chat_endpoint_answers_in_french(server_url):
    text = client(server_url).predict(FRENCH_QUESTION, api_name="/chat")
    assert "Brad Stone" in text
    assert FIRST_SEED in text


@pytest.mark.model
def test_chat_endpoint_says_plainly_when_the_documents_do_not_answer(server_url):
    text = client(server_url).predict(UNANSWERABLE_QUESTION, api_name="/chat")
    assert text.startswith("I could not find an answer")
    assert "do NOT answer" in text
    assert "[1]" not in text


@pytest.mark.model
def test_chat_endpoint_reports_an_empty_question_as_a_message(server_url):
    with pytest.raises(AppError, match="the question is empty"):
        client(server_url).predict("   ", api_name="/chat")


@pytest.mark.model
def test_uploaded_document_is_answerable_right_after(server_url, tmp_path):
    upload = tmp_path / "tatin.md"
    upload.write_text(TATIN, encoding="utf-8")
    c = client(server_url)
    notice, panel, cleared = c.predict(handle_file(str(upload)), False, api_name="/add_document")
    assert "Added tatin.md" in notice
    assert "rag-notice-success" in notice
    assert "<strong>6</strong> documents" in panel
    assert cleared is None

    text = c.predict("Who invented the tarte Tatin?", api_name="/chat")
    assert "[1] tatin.md, characters " in text
    assert "sœurs Stéphanie et Caroline Tatin" in text


@pytest.mark.model
def test_upload_refuses_other_types_binaries_and_duplicates(server_url, corpus, tmp_path):
    c = client(server_url)
    sheet = tmp_path / "report.odt"
    sheet.write_bytes(b"PK\x03\x04 not a document we read")
    with pytest.raises(Exception, match="415"):  # refused at the upload, before any event runs
        c.predict(handle_file(str(sheet)), False, api_name="/add_document")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4 cut short")
    notice, _, _ = c.predict(handle_file(str(pdf)), False, api_name="/add_document")
    assert "rag-notice-error" in notice and "damaged PDF" in notice
    assert not (corpus.seeds_dir / "report.pdf").exists()

    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02\x03 binary")
    notice, _, _ = c.predict(handle_file(str(binary)), False, api_name="/add_document")
    assert "rag-notice-error" in notice and "cannot be indexed" in notice
    assert not (corpus.seeds_dir / "blob.txt").exists()

    duplicate = tmp_path / FIRST_SEED
    duplicate.write_text("Un autre texte avec le même nom de fichier que le premier article.", encoding="utf-8")
    notice, _, _ = c.predict(handle_file(str(duplicate)), False, api_name="/add_document")
    assert "already exists" in notice
    assert "pure-players" in (corpus.seeds_dir / FIRST_SEED).read_text(encoding="utf-8")


@pytest.mark.model
def test_upload_larger_than_the_limit_is_refused_at_the_door(server_url, tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"mot " * 600_000)  # 2.4 MB, over the 2 MB limit
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client(server_url).predict(handle_file(str(big)), False, api_name="/add_document")


@pytest.mark.model
def test_answers_stay_right_for_parallel_askers_while_the_index_rebuilds(server_url, corpus):
    questions = {
        EXAMPLE_QUESTION: FIRST_SEED,
        FRENCH_QUESTION: FIRST_SEED,
        "Why would Walmart ask its customers to deliver orders?": "004_edf32be8c308088b.txt",
        "Quel est le point de douleur numéro 1 de l'expérience client ?": "002_fb62be979dd4233d.txt",
    }
    # a changed seed gives the rebuild real work to do while the questions run
    changed = corpus.seeds_dir / "003_7eb8f84b90cb11e6.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nUn paragraphe ajouté pour ce test.\n", "utf-8")

    def ask(question: str) -> str:
        return client(server_url).predict(question, api_name="/chat")  # one session per asker

    with ThreadPoolExecutor(max_workers=5) as pool:
        rebuild = pool.submit(lambda: client(server_url).predict(False, api_name="/rebuild_index"))
        futures = {q: pool.submit(ask, q) for q in [*questions, *questions]}
        notice, panel = rebuild.result(timeout=600)
        answers = {q: f.result(timeout=600) for q, f in futures.items()}

    assert "1 changed" in notice
    assert "changed since" not in panel
    for question, source in questions.items():
        assert f"[1] {source}" in answers[question], (question, answers[question])


# --- read-only ---


@pytest.mark.model
def test_read_only_exposes_only_chat(read_only_url):
    c = client(read_only_url)
    assert set(c.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/chat"}
    assert FIRST_SEED in c.predict(EXAMPLE_QUESTION, api_name="/chat")
    for name in ("/add_document", "/add_url", "/rebuild_index"):
        with pytest.raises(Exception, match="(?i)cannot find a function|not found|api_name"):
            c.predict(api_name=name)


@pytest.mark.model
def test_read_only_page_has_no_upload_or_rebuild(read_only_url):
    config = httpx.get(f"{read_only_url}config", timeout=30).json()
    kinds = {comp["type"] for comp in config["components"]}
    assert "file" not in kinds
    labels = {str(comp.get("props", {}).get("value")) for comp in config["components"] if comp["type"] == "button"}
    assert "Rebuild index" not in labels
    assert all(dep.get("api_name") not in ("add_document", "add_url", "rebuild_index") for dep in config["dependencies"])
    assert all(comp.get("props", {}).get("elem_id") != "rag-url" for comp in config["components"])


@pytest.mark.model
def test_read_only_refuses_raw_uploads(read_only_url):
    response = httpx.post(
        f"{read_only_url}gradio_api/upload", files={"files": ("note.txt", b"some text")}, timeout=30
    )
    assert response.status_code == 404  # no upload route at all


# --- what the server refuses to serve ---


@pytest.mark.model
def test_documents_and_index_are_not_served_by_url(server_url, corpus):
    targets = [corpus.seeds_dir / FIRST_SEED, *sorted(corpus.index_dir.rglob("*"))]
    for path in [p for p in targets if p.is_file()]:
        response = httpx.get(f"{server_url}gradio_api/file={path.resolve()}", timeout=30)
        assert response.status_code == 404, path  # ui.guard serves no file route at all
    config = httpx.get(f"{server_url}config", timeout=30).json()
    assert str(corpus.seeds_dir.resolve()) not in str(config)


@pytest.mark.model
def test_server_binds_loopback_only(server_url):
    assert server_url.startswith("http://127.0.0.1:")


# --- `rag serve` itself, as a person starts it ---


@pytest.mark.model
def test_rag_serve_prints_the_url_and_answers(real_settings, tmp_path):
    settings = copy_corpus(real_settings, tmp_path)
    port = free_port()
    command = [
        sys.executable, "-m", "rag.cli", "serve", "--read-only", "--port", str(port),
        "--seeds", str(settings.seeds_dir), "--index", str(settings.index_dir),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=python_env(), cwd=tmp_path
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        url, output = None, []
        deadline = time.monotonic() + 300
        while url is None and time.monotonic() < deadline and process.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            output.append(line)
            if "is running at " in line:
                url = line.split("is running at ", 1)[1].split()[0]
        assert url == f"http://127.0.0.1:{port}/", "".join(output)
        startup = time.perf_counter() - started
        rss_started = rss_mib(process.pid)

        c = client(url)
        assert FIRST_SEED in c.predict(EXAMPLE_QUESTION, api_name="/chat")
        rss_answered = rss_mib(process.pid)
        record_metric("rag serve startup to URL (s)", f"{startup:.1f}")
        record_metric("rag serve RSS after startup (MiB)", f"{rss_started:.0f}")
        record_metric("rag serve RSS after one answer (MiB)", f"{rss_answered:.0f}")
        print(f"\nrag serve: URL after {startup:.1f} s, RSS {rss_started:.0f} MiB, {rss_answered:.0f} MiB after a question")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_rag_serve_says_so_when_the_port_is_taken(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--seeds", str(tmp_path)],
            capture_output=True, text=True, env=python_env(), cwd=tmp_path, timeout=300,
        )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


# --- rendering, no server ---


def hostile_citation(n: int = 1) -> rag.Citation:
    text = "Intro <b>bold</b>. " + " ".join(HOSTILE_STRINGS) + " is the quote. Outro & more."
    quote = " ".join(HOSTILE_STRINGS) + " is the quote."
    start = 100
    qs = start + text.index(quote)
    return rag.Citation(
        n=n, source="<img src=x onerror=alert(2)>.txt", text=text, start=start, end=start + len(text),
        quote=quote, score=0.91234, title="Title <script>alert(3)</script> ![t](http://example.com/t.png)",
        quote_start=qs, quote_end=qs + len(quote),
    )


def assert_no_live_markup(html: str) -> None:
    for bad in ("<script", "<img", "<b>", "onerror=alert(1)>"):
        assert bad not in html, bad
    assert "![x](http://example.com/x.png)" in html  # stays text: no Markdown is rendered in the chat


def test_render_answer_escapes_every_document_string():
    citation = hostile_citation()
    answer = rag.Answer(
        question="q", text=f"{citation.quote} [1]", found=True, citations=[citation], confidence=0.9, reason="ok"
    )
    html = render.render_answer(answer, turn=3)
    assert_no_live_markup(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "List&lt;String&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;.txt" in html
    assert "Title &lt;script&gt;alert(3)&lt;/script&gt;" in html
    assert "\n" not in html


def test_render_answer_links_markers_to_cards_and_marks_the_quote():
    citation = hostile_citation()
    answer = rag.Answer(question="q", text="First sentence [1] second [7] and [1]", found=True, citations=[citation])
    html = render.render_answer(answer, turn=2)
    assert html.count('href="#cite-2-1"') == 2
    assert 'id="cite-2-1"' in html
    assert "[7]</a>" not in html  # no card 7: left as text
    assert "<mark>" + render.escape(citation.quote) + "</mark>" in html
    assert "characters 100–" in html and "score 0.912" in html


def test_render_highlight_falls_back_when_offsets_do_not_match():
    citation = hostile_citation()
    shifted = rag.Citation(**{**citation.__dict__, "quote_start": 0, "quote_end": 5})
    assert "<mark>" + render.escape(citation.quote) + "</mark>" in render.render_citation_card(shifted, 1)
    missing = rag.Citation(**{**citation.__dict__, "quote": "not in the passage"})
    assert "<mark>" not in render.render_citation_card(missing, 1)


def test_render_not_found_puts_nearest_in_a_closed_details_labelled_not_answering():
    hit = rag.Hit(source="a<b>.txt", text="near <script>alert(1)</script>\n\nline", start=0, end=40, score=0.7, title="")
    answer = rag.Answer(question="q", text="I could not find an answer.", found=False, reason="too far", nearest=[hit])
    html = render.render_not_found(answer)
    assert '<details class="rag-nearest">' in html and "<details open" not in html
    assert "do NOT answer the question" in html
    assert "near &lt;script&gt;alert(1)&lt;/script&gt;<br><br>line" in html
    assert "<b>" not in html


def test_render_question_status_errors_and_notices_escape():
    assert render.render_question("<img src=x onerror=alert(1)> ok?") == (
        '<div class="rag-question">&lt;img src=x onerror=alert(1)&gt; ok?</div>'
    )
    status = rag.IndexStatus(
        exists=True, documents=1, chunks=2, model_id="<m>", built_at="2026-11-23T10:48:32+0000",
        stale=True, stale_detail="1 new <x>",
    )
    html = render.render_index_status(status)
    assert "&lt;m&gt;" in html and "1 new &lt;x&gt;" in html and "23 Nov 2026, 10:48 UTC" in html
    assert "Rebuild the index" in html
    assert "rag index" in render.render_index_status(status, read_only=True)
    assert "No index" in render.render_index_status(rag.IndexStatus(exists=False))
    assert "&lt;script&gt;" in render.render_error("bad <script>")
    assert "&lt;img" in render.render_notice("a document named <img src=x>.md already exists", "error")


def test_answer_as_text_is_plain_and_numbered():
    citation = hostile_citation()
    answer = rag.Answer(question="q", text=f"{citation.quote} [1]", found=True, citations=[citation])
    text = render.answer_as_text(answer)
    assert text.splitlines()[1].startswith("(") and "confidence" in text.splitlines()[1]
    assert text.splitlines()[3] == "Sources:"
    assert text.splitlines()[4].startswith("[1] <img src=x onerror=alert(2)>.txt, characters 100-")
    hit = rag.Hit(source="s.txt", text="close\nbut no", start=1, end=9, score=0.5)
    not_found = rag.Answer(question="q", text="No answer.", found=False, reason="too far", nearest=[hit])
    assert render.answer_as_text(not_found).splitlines() == [
        "No answer.", "(too far)", "", "Closest passages (they do NOT answer the question):",
        "- s.txt, characters 1-9, score 0.500", "    “close but no”",
    ]


def test_describe_report_and_added_document():
    report = rag.IndexReport(
        added=1, changed=0, removed=0, unchanged=5, chunks_embedded=3, total_chunks=112,
        skipped=[("x.bin", "binary file")], seconds=1.25,
        files=[rag.types.SeedChange("new.md", "added", 3)],
    )
    assert render.describe_report(report) == (
        "Index up to date: 1 added; 3 passages embedded, 112 in the index (1.2 s). Skipped x.bin: binary file."
    )
    assert render.describe_added_document("new.md", report) == (
        "Added new.md (3 passages) to the documents. You can ask about it now."
    )
    full = rag.IndexReport(
        added=6, changed=0, removed=0, unchanged=0, chunks_embedded=112, total_chunks=112, skipped=[],
        seconds=30.0, full_rebuild=True, rebuild_reason="the embedding model changed",
    )
    assert render.describe_report(full, requested_full=True) == (
        "Index rebuilt from scratch: 6 documents, 112 passages (30.0 s)."
    )
    assert render.describe_report(full).endswith("Why: The embedding model changed.")


def test_style_sheet_and_example_questions_are_in_place():
    from ui import app

    assert EXAMPLE_QUESTION in app.EXAMPLE_QUESTIONS and FRENCH_QUESTION in app.EXAMPLE_QUESTIONS
    assert ".rag-card" in app.STYLE
    assert Path(app.__file__).with_name("style.css").is_file()
