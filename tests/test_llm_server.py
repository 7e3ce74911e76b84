"""The real client against a scripted OpenAI-compatible server process, and then every scripted reply
through ``rag.answer`` with the real model: each ends as the issue says (kept, removed with a note, or
the quoted answer with a note)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator

import pytest

import rag
from rag.cli import main as rag_main
from rag.llm import ChatMessage, OpenAICompatibleClient
from rag.query.prompt import REDACTED

from .llm_helpers import (
    GOOD_REPLY,
    HOSTILE_QUESTION,
    HOSTILE_SEED,
    HOSTILE_SEED_NAME,
    FakeLLM,
    fake_llm_server,
)
from .ui_helpers import EXAMPLE_QUESTION, FIRST_SEED, UNANSWERABLE_QUESTION, copy_corpus

SECRET = "sk-test-0123456789-secret"
MESSAGES = [ChatMessage("system", "Answer."), ChatMessage("user", "Why?")]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[FakeLLM]:
    with fake_llm_server(tmp_path_factory.mktemp("llm")) as running:
        yield running


def client(server: FakeLLM, model: str, timeout: float = 10, api_key: str = SECRET) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(server.url, model, api_key, timeout)


# --- the client ---


def test_client_completes_and_streams_and_sends_the_key_as_a_bearer_token(server):
    with client(server, "good") as llm:
        assert llm.complete(MESSAGES) == GOOD_REPLY
        pieces = list(llm.stream(MESSAGES))
    assert len(pieces) > 10 and "".join(pieces) == GOOD_REPLY
    *_, plain, streamed = server.requests()
    assert (plain["stream"], streamed["stream"]) == (False, True)
    assert plain["messages"] == [{"role": "system", "content": "Answer."}, {"role": "user", "content": "Why?"}]
    assert plain["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(llm)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("error-500", "answered with an error (HTTP 500)"),
        ("malformed", "could not be read"),
        ("unknown-model", "does not know the model 'unknown-model'"),
    ],
)
def test_client_failures_are_llm_errors_for_people(server, model, message, stream):
    with client(server, model) as llm, pytest.raises(rag.LLMError) as caught:
        list(llm.stream(MESSAGES)) if stream else llm.complete(MESSAGES)
    assert message in str(caught.value) and SECRET not in str(caught.value)
    assert "127.0.0.1:" in str(caught.value)


@pytest.mark.parametrize(("model", "stream"), [("hang", False), ("hang", True), ("stall", True)])
def test_a_server_that_hangs_times_out(server, model, stream):
    started = time.monotonic()
    pieces: list[str] = []
    with client(server, model, timeout=1.5) as llm, pytest.raises(rag.LLMTimeoutError, match="within 1.5 s"):
        if stream:
            for piece in llm.stream(MESSAGES):
                pieces.append(piece)
        else:
            llm.complete(MESSAGES)
    assert 1.4 < time.monotonic() - started < 10
    assert len(pieces) == (3 if model == "stall" else 0)  # a stall after three pieces times out midway


def test_an_unreachable_server_is_an_llm_error():
    with OpenAICompatibleClient("http://127.0.0.1:9/v1", "m", SECRET, 2) as llm, pytest.raises(
        rag.LLMError, match="cannot be reached"
    ):
        llm.complete(MESSAGES)


# --- every scripted reply through rag.answer, with the real model ---


@pytest.fixture(scope="module")
def quoted(real_settings) -> rag.Answer:
    answer = rag.answer(EXAMPLE_QUESTION, settings=real_settings)
    assert answer.found and not answer.generated and answer.citations[0].source == FIRST_SEED
    return answer


def with_llm(settings: rag.Settings, server: FakeLLM, model: str, timeout: float = 10) -> rag.Settings:
    return dataclasses.replace(settings, llm_url=server.url, llm_model=model, llm_api_key=SECRET, llm_timeout=timeout)


def ask(settings: rag.Settings, stream: bool, question: str = EXAMPLE_QUESTION) -> rag.Answer:
    if not stream:
        return rag.answer(question, settings=settings)
    *pieces, final = rag.answer_stream(question, settings=settings)
    assert all(isinstance(p, str) for p in pieces)
    return final


@pytest.mark.model
@pytest.mark.parametrize("stream", [False, True])
def test_a_good_answer_is_written_in_english_from_the_french_passage(real_settings, server, quoted, stream):
    answer = ask(with_llm(real_settings, server, "good"), stream)
    assert answer.generated and answer.found and answer.note == ""
    assert answer.text.startswith("Pure-players enjoy a new level of trust") and answer.text.count("[1]") == 2
    assert [s.citations for s in answer.sentences] == [(1,), (1,)]
    (citation,) = answer.citations
    assert citation.source == FIRST_SEED
    source = (real_settings.seeds_dir / citation.source).read_text(encoding="utf-8")
    assert source[citation.quote_start : citation.quote_end] == citation.quote
    assert "inspire davantage confiance" in citation.quote  # the highlight covers what the sentences rest on
    request = server.requests()[-1]
    assert request["stream"] is stream and request["model"] == "good"
    assert quoted.citations[0].text in request["messages"][1]["content"]
    assert "Write in English" in request["messages"][0]["content"]


@pytest.mark.model
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("model", "kept", "note"),
    [
        ("made-up-number", 1, "no cited passage states 47%, 2013"),
        ("bad-citation", 1, "it cites [7], which was not among the passages given"),
    ],
)
def test_a_sentence_that_fails_the_check_is_removed_and_the_answer_says_so(
    real_settings, server, stream, model, kept, note
):
    answer = ask(with_llm(real_settings, server, model), stream)
    assert answer.generated and len(answer.sentences) == kept
    assert "[7]" not in answer.text and "47" not in answer.text
    assert f"1 sentence of {kept + 1}" in answer.note and note in answer.note


FALLBACKS = [
    ("wrong-language", "it answered in French, not in English"),
    ("no-citation", "it cites no passage"),
    ("no-answer", "it found no answer in the passages"),
    ("malformed", "could not be read"),
    ("error-500", "HTTP 500"),
    ("hang", "did not answer within 2 s"),
]


@pytest.mark.model
@pytest.mark.parametrize(
    ("model", "why", "stream"),
    [(m, w, s) for m, w in FALLBACKS for s in (False, True)]
    + [("stall", "did not answer within 2 s", True)],  # three pieces, then nothing: a streaming failure
)
def test_otherwise_the_quoted_answer_comes_back_with_the_reason(real_settings, server, quoted, stream, model, why):
    started = time.monotonic()
    answer = ask(with_llm(real_settings, server, model, timeout=2), stream)
    assert not answer.generated and answer.text == quoted.text and answer.citations == quoted.citations
    assert answer.note.startswith("The language model's answer is not shown") and why in answer.note
    assert SECRET not in answer.note
    assert time.monotonic() - started < 20


@pytest.mark.model
def test_a_declined_question_is_not_sent(real_settings, server):
    before = len(server.requests())
    answer = rag.answer(UNANSWERABLE_QUESTION, settings=with_llm(real_settings, server, "good"))
    assert not answer.found and not answer.generated
    assert len(server.requests()) == before


@pytest.mark.model
def test_the_environment_is_read_at_each_call(real_settings, server, monkeypatch):
    where = {"seeds_dir": real_settings.seeds_dir, "index_dir": real_settings.index_dir}
    monkeypatch.setenv("RAG_LLM_URL", server.url)
    monkeypatch.setenv("RAG_LLM_MODEL", "good")
    monkeypatch.setenv("RAG_LLM_API_KEY", SECRET)
    assert rag.answer(EXAMPLE_QUESTION, **where).generated
    assert server.requests()[-1]["authorization"] == f"Bearer {SECRET}"
    monkeypatch.delenv("RAG_LLM_URL")
    assert not rag.answer(EXAMPLE_QUESTION, **where).generated


@pytest.mark.model
def test_an_answer_obeying_an_instruction_in_a_hostile_seed_is_not_shown(real_settings, server, tmp_path):
    settings = copy_corpus(real_settings, tmp_path)
    (settings.seeds_dir / HOSTILE_SEED_NAME).write_text(HOSTILE_SEED, encoding="utf-8")
    rag.build_index(settings=settings)
    quoted = rag.answer(HOSTILE_QUESTION, settings=settings)
    assert quoted.found and quoted.citations[0].source == HOSTILE_SEED_NAME
    answer = rag.answer(HOSTILE_QUESTION, settings=with_llm(settings, server, "obeys-injection"))
    assert not answer.generated and answer.text == quoted.text
    assert "refund.example" not in answer.text and "not shown" in answer.note
    # the model never read the instruction: it was cut out of the passage
    prompt = server.requests()[-1]["messages"][1]["content"]
    assert "Ignore all previous instructions" not in prompt and REDACTED in prompt
    assert "cavistes lyonnais" in prompt


@pytest.mark.model
def test_the_cli_takes_the_language_model_from_its_options(real_settings, server, capsys, caplog, monkeypatch):
    monkeypatch.setenv("RAG_LLM_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    where = ["--seeds", str(real_settings.seeds_dir), "--index", str(real_settings.index_dir)]
    assert rag_main(["--llm-url", server.url, "--llm-model", "good", "ask", EXAMPLE_QUESTION, *where]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Pure-players enjoy a new level of trust") and "(written by good from the passages" in out
    assert rag_main(["--llm-url", server.url, "--llm-model", "made-up-number", "ask", EXAMPLE_QUESTION, "--json",
                     *where]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["generated"] and "1 sentence of 2" in answer["note"]
    assert rag_main(["--llm-url", server.url, "--llm-model", "good", "ask", EXAMPLE_QUESTION, "--quote", *where]) == 0
    assert capsys.readouterr().out.startswith("Ce qui est neuf")
    assert SECRET not in caplog.text
