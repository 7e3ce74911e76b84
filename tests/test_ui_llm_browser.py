"""The chat page with a language model configured (the scripted server), in a real Chromium: the text
streams in as it is written, the checked answer says the model wrote it, its markers link to cards whose
quoted sentences are highlighted, and a removed sentence or a fallback is explained."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

import rag

from . import test_ui_browser
from .llm_helpers import fake_llm_server
from .ui_helpers import ARTIFACTS, EXAMPLE_QUESTION, FIRST_SEED, copy_corpus, live_server

pytestmark = [pytest.mark.browser, pytest.mark.model]

ANSWER_TIMEOUT_MS = 120_000
browser = test_ui_browser.browser  # the same headless Chromium fixture


@pytest.fixture(scope="module")
def corpus(real_settings, tmp_path_factory) -> rag.Settings:
    return copy_corpus(real_settings, tmp_path_factory.mktemp("ui-llm"))


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    with fake_llm_server(tmp_path_factory.mktemp("ui-llm-server")) as running:
        yield running


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def served(corpus: rag.Settings, llm, model: str):
    return live_server(dataclasses.replace(corpus, llm_url=llm.url, llm_model=model, llm_timeout=30))


def ask(page, url: str, question: str) -> None:
    page.goto(url)
    box = page.locator("#rag-question textarea")
    box.wait_for()
    box.fill(question)
    box.press("Enter")


def test_the_written_answer_streams_in_then_shows_checked_with_highlighted_cards(corpus, llm, page):
    with served(corpus, llm, "good-slow") as url:
        ask(page, url, EXAMPLE_QUESTION)
        draft = page.locator("#rag-chat .rag-draft-text")
        draft.wait_for(timeout=ANSWER_TIMEOUT_MS)
        early = draft.inner_text()
        page.wait_for_function(
            "n => (document.querySelector('#rag-chat .rag-draft-text')?.innerText || '').length > n + 20", arg=len(early)
        )
        assert "Writing…" in page.locator("#rag-chat .rag-draft-label").inner_text()
        answer = page.locator("#rag-chat .rag-answer.rag-generated")
        answer.wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert page.locator("#rag-chat .rag-draft").count() == 0  # replaced by the checked answer
        assert "Written by your language model (good-slow)" in answer.locator(".rag-provenance").inner_text()
        assert answer.locator(".rag-answer-text").inner_text().startswith("Pure-players enjoy a new level of trust")
        markers = answer.locator("a.rag-marker")
        assert markers.count() == 2 and markers.first.inner_text() == "[1]"
        card = answer.locator(".rag-card").first
        assert markers.first.get_attribute("href") == "#" + card.get_attribute("id")
        assert FIRST_SEED in card.inner_text()
        assert "inspire davantage confiance" in card.locator("mark").inner_text()
        assert answer.locator(".rag-note").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-llm-answer.png"), full_page=True)


@pytest.mark.parametrize(
    ("model", "generated", "note"),
    [
        ("made-up-number", True, "1 sentence of 2 written by the language model was removed"),
        ("wrong-language", False, "it answered in French, not in English"),
    ],
)
def test_a_removed_sentence_or_a_fallback_is_explained(corpus, llm, page, model, generated, note):
    with served(corpus, llm, model) as url:
        ask(page, url, EXAMPLE_QUESTION)
        answer = page.locator("#rag-chat .rag-answer")
        answer.wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert note in answer.locator(".rag-note").inner_text()
        assert (answer.locator(".rag-provenance").count() == 1) is generated
        assert "47" not in answer.locator(".rag-answer-text").inner_text()
        assert answer.locator(".rag-card mark").count() >= 1
