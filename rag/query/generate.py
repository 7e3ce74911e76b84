"""A written answer from the user's language model, every sentence checked against its citation.

``rag.api`` calls this only for a question the decision answers, with the passages the quoted answer
cites (numbered as its citations). The model's reply is read into sentences (``prompt``); each is
checked (``grounding``) and those that fail are removed, with a note saying so. When nothing survives,
or the model fails, times out, finds no answer or writes in another language than the question's, the
quoted answer is returned with a note saying why."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from ..errors import LLMError
from ..llm.base import LLMClient
from ..model.base import Embedder
from ..store import IndexReader
from ..store.reader import sentence_ids
from ..types import Answer, AnswerSentence, Citation
from .grounding import Evidence, Verdict, check_all, make_evidence
from .lexical import question_language
from .prompt import build_messages, cited_text, is_no_answer, language_name, parse_reply
from .retrieve import Scored

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Passage:
    """A passage given to the model: the quoted answer's citation and what can support a claim in it."""

    citation: Citation
    evidence: Evidence


def passages_for(citations: Sequence[Citation], ranked: Sequence[Scored], reader: IndexReader) -> list[Passage]:
    """The cited passages with their sentences' vectors as the index stores them (nothing is embedded)."""
    out = []
    for c in citations:
        chunk = next(s.chunk for s in ranked if s.chunk.source == c.source and s.chunk.start == c.start)
        vectors = reader.sentence_vectors_for(sentence_ids(chunk))
        out.append(Passage(c, make_evidence(c.n, chunk.text, chunk.sentences, vectors)))
    return out


def write(
    question: str,
    quoted: Answer,
    passages: Sequence[Passage],
    llm: LLMClient,
    embedder: Embedder,
    *,
    stream: bool,
) -> Iterator[str | Answer]:
    """The model's reply as it comes (pieces of text, when ``stream``), then the checked ``Answer``
    (or ``quoted`` with a note)."""
    language = question_language(question)
    messages = build_messages(question, [(p.citation.n, p.citation.title, p.citation.text) for p in passages], language)
    pieces: list[str] = []
    try:
        if stream:
            for piece in llm.stream(messages):
                pieces.append(piece)
                yield piece
        else:
            pieces.append(llm.complete(messages))
    except LLMError as exc:
        log.info("No written answer: %s", exc)  # the answer's note says so
        yield fall_back(quoted, str(exc))
        return
    yield check_reply("".join(pieces), quoted, passages, embedder, language)


def fall_back(quoted: Answer, why: str) -> Answer:
    return replace(quoted, note=f"The language model's answer is not shown: {why}. The sentences below are quoted "
                                "from the passages instead.")


def check_reply(
    reply: str, quoted: Answer, passages: Sequence[Passage], embedder: Embedder, language: str
) -> Answer:
    """The answer made of the reply's sentences that pass the grounding check, or ``quoted`` with a note."""
    if is_no_answer(reply):
        return fall_back(quoted, "it found no answer in the passages")
    sentences = parse_reply(reply)
    if not sentences:
        return fall_back(quoted, "its reply was empty")
    written_in = question_language(" ".join(text for text, _ in sentences))
    if language in ("en", "fr") and written_in in ("en", "fr") and written_in != language:
        return fall_back(quoted, f"it answered in {language_name(written_in)}, not in {language_name(language)}")
    verdicts = check_all(sentences, {p.evidence.n: p.evidence for p in passages}, embedder)
    for v in verdicts:
        if not v.passed:
            log.info("Removed a written sentence (%s): %s", v.problem, v.text)
    kept = [v for v in verdicts if v.passed]
    if not kept:
        problems = "; ".join(dict.fromkeys(v.problem for v in verdicts))
        return fall_back(quoted, f"none of its sentences could be checked against the passages ({problems})")
    citations = _citations(kept, [p.citation for p in passages])
    return replace(
        quoted,
        text=cited_text([(v.text, v.cited) for v in kept]),
        citations=citations,
        sentences=tuple(AnswerSentence(v.text, v.cited, v.best[0]) for v in kept),
        generated=True,
        note=_removed_note(verdicts),
    )


def _citations(kept: Sequence[Verdict], given: Sequence[Citation]) -> list[Citation]:
    """The citations the kept sentences cite; in each, the quote spans the sentences they rest on (from
    the first to the last), so the card highlights what was checked."""
    out = []
    for c in given:
        if not any(c.n in v.cited for v in kept):
            continue
        spans = [(a, b) for v in kept if v.best and v.best[0] == c.n for _, a, b in [v.best]]
        if spans:
            lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
            c = replace(c, quote=c.text[lo:hi], quote_start=c.start + lo, quote_end=c.start + hi)
        out.append(c)
    return out


def _removed_note(verdicts: Sequence[Verdict]) -> str:
    removed = [v for v in verdicts if not v.passed]
    if not removed:
        return ""
    count = f"{len(removed)} sentence{'s' if len(removed) > 1 else ''} of {len(verdicts)}"
    reasons = "; ".join(dict.fromkeys(v.problem for v in removed))
    return f"{count} written by the language model {'were' if len(removed) > 1 else 'was'} removed: {reasons}."
