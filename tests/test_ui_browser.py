"""The chat UI in a real (headless) Chromium: asking, citation cards, examples, the not-found case,
hostile documents, upload, the index panel, read-only mode and a narrow window."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

import rag

from .ui_helpers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    EXAMPLE_QUESTION,
    FIRST_SEED,
    FRENCH_QUESTION,
    HOSTILE_QUESTION,
    HOSTILE_SEED,
    HOSTILE_SEED_NAME,
    HOSTILE_STRINGS,
    UNANSWERABLE_QUESTION,
    copy_corpus,
    live_server,
    record_metric,
)

pytestmark = [pytest.mark.browser, pytest.mark.model]

ANSWER_TIMEOUT_MS = 120_000
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(scope="module")
def corpus(real_settings, tmp_path_factory) -> rag.Settings:
    """The five seeds plus one full of markup that must never run, indexed with the real model."""
    settings = copy_corpus(real_settings, tmp_path_factory.mktemp("ui-browser"))
    (settings.seeds_dir / HOSTILE_SEED_NAME).write_text(HOSTILE_SEED, encoding="utf-8")
    rag.build_index(settings=settings)  # incremental: embeds only the hostile seed
    return settings


@pytest.fixture(scope="module")
def server_url(corpus) -> Iterator[str]:
    with live_server(corpus) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


class Watched:
    """A page plus what it did: every request URL and every dialog (alert, confirm, prompt) it opened."""

    def __init__(self, page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                and urlparse(u).hostname not in LOOPBACK]


@pytest.fixture
def watched(browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield Watched(page)
    context.close()


def open_app(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#rag-question textarea")
    page.wait_for_selector("#rag-status .rag-status-counts, #rag-status .rag-status-warning")


def ask(page, question: str) -> float:
    """Type ``question``, press Enter, wait for the reply; seconds from Enter to the reply on screen."""
    replies = page.locator("#rag-chat .rag-answer, #rag-chat .rag-error")
    before = replies.count()
    box = page.locator("#rag-question textarea")
    box.fill(question)
    started = time.perf_counter()
    box.press("Enter")
    replies.nth(before).wait_for(state="visible", timeout=ANSWER_TIMEOUT_MS)
    return time.perf_counter() - started


def test_enter_shows_the_answer_with_linked_citation_cards(watched, server_url):
    page = watched.page
    open_app(page, server_url)
    assert "Ask the articles" in page.title()
    seconds = ask(page, EXAMPLE_QUESTION)

    answer = page.locator("#rag-chat .rag-answer").last
    assert "pure-players" in answer.locator(".rag-answer-text").inner_text()
    marker = answer.locator("a.rag-marker").first
    assert marker.inner_text() == "[1]"
    card = answer.locator(".rag-card").first
    assert marker.get_attribute("href") == "#" + card.get_attribute("id")
    card_text = card.inner_text()
    assert FIRST_SEED in card_text
    assert "Les leçons d'Amazon pour la culture made in France" in card_text
    assert "characters " in card_text and "score 0." in card_text
    assert "pure-players" in card.locator("mark").inner_text()
    # the question is echoed as the person typed it
    assert EXAMPLE_QUESTION in page.locator("#rag-chat").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-answer.png"), full_page=True)

    ask(page, FRENCH_QUESTION)  # a second turn: its cards get their own ids
    ids = page.locator("#rag-chat .rag-card").evaluate_all("cards => cards.map(c => c.id)")
    assert len(ids) == len(set(ids)) >= 2
    record_metric("browser Enter-to-answer (s)", f"{seconds:.2f}")
    print(f"\nEnter to answer in the browser: {seconds:.2f} s")
    assert watched.dialogs == []
    assert watched.foreign_requests() == []


def test_clicking_a_marker_brings_its_card_into_view(watched, server_url):
    page = watched.page
    open_app(page, server_url)
    ask(page, FRENCH_QUESTION)
    answer = page.locator("#rag-chat .rag-answer").last
    markers = answer.locator("a.rag-marker")
    target = markers.last.get_attribute("href")
    markers.last.click()
    page.wait_for_function("hash => location.hash === hash", arg=target)
    card = page.locator(target)
    assert card.evaluate("el => el.matches(':target')")
    assert card.is_visible()
    assert page.locator("#rag-question textarea").is_visible()  # still the same page


def test_example_question_click_answers_it(watched, server_url):
    page = watched.page
    open_app(page, server_url)
    page.locator("#rag-examples").get_by_text(FRENCH_QUESTION).click()
    page.locator("#rag-chat .rag-answer").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    text = page.locator("#rag-chat").inner_text()
    assert FRENCH_QUESTION in text and "Brad Stone" in text and FIRST_SEED in text


def test_unanswered_question_says_so_and_tucks_away_the_nearest_passages(watched, server_url):
    page = watched.page
    open_app(page, server_url)
    ask(page, UNANSWERABLE_QUESTION)
    reply = page.locator("#rag-chat .rag-answer").last
    assert "could not find an answer to this question in the documents" in reply.inner_text()
    assert reply.locator("a.rag-marker").count() == 0
    details = reply.locator("details.rag-nearest")
    assert details.get_attribute("open") is None
    assert "do NOT answer the question" in details.locator("summary").inner_text()
    assert not details.locator(".rag-card").first.is_visible()
    details.locator("summary").click()
    assert details.locator(".rag-card").first.is_visible()


def test_hostile_document_text_shows_literally_and_nothing_runs_or_loads(watched, server_url):
    page = watched.page
    open_app(page, server_url)
    ask(page, HOSTILE_QUESTION)
    reply = page.locator("#rag-chat .rag-answer").last
    card = reply.locator(".rag-card").first
    assert HOSTILE_SEED_NAME in card.inner_text()
    shown = reply.inner_text()
    for hostile in HOSTILE_STRINGS:
        assert hostile in shown, hostile
    assert "List<String>" in reply.locator(".rag-answer-text").inner_text()
    assert reply.locator("script, img, iframe, object, embed").count() == 0
    page.wait_for_timeout(1000)  # give anything that might fire a moment to do so
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-hostile.png"), full_page=True)
    assert watched.dialogs == []
    assert watched.foreign_requests() == []
    assert not any("example.com" in u or u.endswith("/x") for u in watched.requests)


def test_hostile_question_is_shown_literally(watched, server_url):
    page = watched.page
    open_app(page, server_url)
    question = "<img src=x onerror=alert(1)> <script>alert(1)</script> List<String>?"
    ask(page, question)
    assert question in page.locator("#rag-chat .rag-question").last.inner_text()
    assert page.locator("#rag-chat img, #rag-chat script").count() == 0
    page.wait_for_timeout(500)
    assert watched.dialogs == []
    assert watched.foreign_requests() == []


def test_uploaded_document_is_answerable_right_after(watched, server_url, tmp_path):
    page = watched.page
    open_app(page, server_url)
    note = tmp_path / "moulin.md"
    note.write_text(
        "# Le moulin de Valmy\n\nLe moulin de Valmy fut reconstruit en 2005 par la commune, "
        "à l'identique du moulin présent lors de la bataille de 1792.\n",
        encoding="utf-8",
    )
    page.locator("#rag-upload input[type=file]").set_input_files(str(note))
    notice = page.locator("#rag-notice .rag-notice-success")
    notice.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "Added moulin.md" in notice.inner_text()
    ask(page, "Quand le moulin de Valmy a-t-il été reconstruit ?")
    card = page.locator("#rag-chat .rag-answer").last.locator(".rag-card").first
    assert "moulin.md" in card.inner_text() and "2005" in card.inner_text()


def test_panel_warns_when_seeds_changed_and_rebuild_clears_it(watched, server_url, corpus):
    page = watched.page
    (corpus.seeds_dir / "added-on-disk.txt").write_text(
        "Un document ajouté directement dans le dossier, sans passer par la page.", encoding="utf-8"
    )
    open_app(page, server_url)
    status = page.locator("#rag-status")
    assert "changed since the index was built" in status.inner_text()
    assert "1 new" in status.inner_text()
    page.locator("#rag-rebuild").click()
    page.locator("#rag-notice .rag-notice-success").wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "Index up to date" in page.locator("#rag-notice").inner_text()
    page.wait_for_function(
        "() => !document.querySelector('#rag-status').innerText.includes('changed since')", timeout=30_000
    )


def test_narrow_window_stays_readable(browser, server_url):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        open_app(page, server_url)
        ask(page, EXAMPLE_QUESTION)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        page.screenshot(path=str(ARTIFACTS / "ui-narrow.png"), full_page=True)
    finally:
        context.close()


def test_read_only_page_has_no_upload_or_rebuild(browser, corpus):
    with live_server(corpus, read_only=True) as url:
        context = browser.new_context()
        page = context.new_page()
        try:
            open_app(page, url)
            assert page.locator("input[type=file]").count() == 0
            assert page.get_by_role("button", name="Rebuild index").count() == 0
            assert "Read-only" in page.locator("body").inner_text()
            ask(page, EXAMPLE_QUESTION)
            assert FIRST_SEED in page.locator("#rag-chat .rag-card").first.inner_text()
        finally:
            context.close()
