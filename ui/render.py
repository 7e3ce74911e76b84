"""Pure functions that turn the library's records into the HTML and text the UI shows.

Every piece of document text (passages, quotes, titles, file names, answers) and every question
goes through ``html.escape`` here, and nowhere else is HTML built from it. The chat renders these
strings as sanitised HTML with Markdown and LaTeX switched off (see ``ui.app``), so a seed holding
``<script>``, an ``onerror`` attribute or a Markdown image shows as text and never runs or fetches.

The HTML carries no newline characters: the chatbot passes messages through ``inspect.cleandoc``,
which would otherwise re-indent passages; line breaks inside passages become ``<br>``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import datetime

import rag

# The library appends " [n]" after each quoted sentence (rag.answer.compose): a space, the marker, then
# a space or the end. Bracketed numbers inside a sentence of the article itself stay plain text.
_MARKER = re.compile(r"(?<= )\[(\d+)\](?= |$)")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")


def escape(text: object) -> str:
    """HTML-escape anything, quotes included (the result may sit inside an attribute)."""
    return html.escape(str(text), quote=True)


def escape_multiline(text: str) -> str:
    """Escape ``text`` and keep its line breaks as ``<br>`` (runs of blank lines become one gap)."""
    text = _BLANK_LINES.sub("\n\n", text.strip())
    return "<br>".join(escape(line) for line in text.split("\n"))


def citation_anchor(turn: int, n: int) -> str:
    """The element id of citation ``n`` of answer ``turn``; unique within one page."""
    return f"cite-{turn}-{n}"


def render_question(question: str) -> str:
    """The person's question as a chat message."""
    return f'<div class="rag-question">{escape_multiline(question)}</div>'


def render_answer(answer: rag.Answer, turn: int, writer: str = "") -> str:
    """One assistant message: the short answer with linked [n] markers, then one card per citation,
    or, when the documents do not answer, a plain statement and the nearest passages tucked away.
    A written answer says so (``writer``: the language model's name), and a note says what was removed
    or why the passages are quoted instead of a written answer."""
    if not answer.found:
        return render_not_found(answer)
    numbers = {c.n for c in answer.citations}
    cards = "".join(render_citation_card(c, turn) for c in answer.citations)
    kind = " rag-generated" if answer.generated else ""
    support = (
        f'<p class="rag-support rag-support-{answer.support.split()[0]}" '
        f'title="Confidence {answer.confidence:.2f}: the estimated probability that the cited passages answer the question">'
        f"{escape(answer.support.capitalize())} <span class=\"rag-confidence\">({answer.confidence:.0%})</span></p>"
    )
    return (
        f'<div class="rag-answer{kind}">'
        f"{_provenance(answer, writer)}"
        f'<p class="rag-answer-text">{_link_markers(answer.text, numbers, turn, answer.citations)}</p>'
        f"{_note(answer)}"
        f"{support}"
        f'<div class="rag-cards" aria-label="Sources">{cards}</div>'
        "</div>"
    )


def _provenance(answer: rag.Answer, writer: str) -> str:
    if not answer.generated:
        return ""
    by = f" ({escape(writer)})" if writer else ""
    return (
        f'<p class="rag-provenance">Written by your language model{by} from the passages below; '
        "every sentence was checked against the passage it cites.</p>"
    )


def _note(answer: rag.Answer) -> str:
    return f'<p class="rag-note">{escape(answer.note)}</p>' if answer.note else ""


def render_draft(text: str) -> str:
    """The language model's text while it writes: shown as it comes, marked as not yet checked."""
    return (
        '<div class="rag-draft">'
        '<p class="rag-draft-label">Writing… each sentence is checked against its passage when the answer is '
        "complete.</p>"
        f'<p class="rag-draft-text">{escape_multiline(text) or "…"}</p>'
        "</div>"
    )


def _link_markers(text: str, numbers: set[int], turn: int, citations: Iterable[rag.Citation]) -> str:
    """Escape the answer and turn each [n] that has a card into a link to that card."""
    sources = {c.n: c.source for c in citations}

    def link(match: re.Match) -> str:
        n = int(match.group(1))
        if n not in numbers:
            return match.group(0)
        return (
            f'<a class="rag-marker" href="#{citation_anchor(turn, n)}" '
            f'title="Source {n}: {escape(sources[n])}">[{n}]</a>'
        )

    # Escaping leaves "[", "]", digits and spaces alone, so the markers survive it intact.
    return _MARKER.sub(link, escape_multiline(text))


def render_citation_card(citation: rag.Citation, turn: int) -> str:
    """A source card: number, article title, file, page (PDFs), character span, score, a link to the
    original page when there is one, and the passage with the quoted sentence highlighted."""
    return _card(
        number=citation.n,
        anchor=citation_anchor(turn, citation.n),
        title=citation.title,
        source=citation.source,
        start=citation.start,
        end=citation.end,
        score=citation.score,
        passage=_highlight(citation),
        page=citation.page,
        url=citation.url,
    )


def render_nearest_card(hit: rag.Hit) -> str:
    """A passage that came closest but does not answer the question (no number, no highlight)."""
    return _card(
        number=None,
        anchor=None,
        title=hit.title,
        source=hit.source,
        start=hit.start,
        end=hit.end,
        score=hit.score,
        passage=escape_multiline(hit.text),
        page=hit.page,
        url=hit.url,
    )


def _card(*, number, anchor, title, source, start, end, score, passage, page=None, url="") -> str:
    badge = f'<span class="rag-card-number">{number}</span>' if number is not None else ""
    anchor_attr = f' id="{escape(anchor)}"' if anchor else ""
    heading = escape(display_title(title, source))
    return (
        f'<div class="rag-card"{anchor_attr}>'
        f'<div class="rag-card-head">{badge}<span class="rag-card-title">{heading}</span></div>'
        '<div class="rag-card-meta">'
        f'<span class="rag-card-source">{escape(source)}</span>'
        f"{_page(page)}"
        f'<span class="rag-card-span">characters {start:,}–{end:,}</span>'
        f'<span class="rag-card-score">score {score:.3f}</span>'
        f"{original_link(url)}"
        "</div>"
        f'<div class="rag-card-passage">{passage}</div>'
        "</div>"
    )


def _page(page: int | None) -> str:
    return f'<span class="rag-card-page">page {int(page):,}</span>' if page else ""


def original_link(url: str) -> str:
    """A link to the document's original address: http(s) only, opened on a click in a new tab that gets
    neither this page's window nor its address; the chat page itself never fetches it."""
    if not url or not url.lower().startswith(("http://", "https://")):
        return ""
    return (
        f'<a class="rag-card-link" href="{escape(url)}" target="_blank" rel="noopener noreferrer" '
        f'referrerpolicy="no-referrer" title="{escape(url)}">original page ↗</a>'
    )


def display_title(title: str, source: str) -> str:
    """The article title, or the file name when there is none. A Markdown document's title arrives as
    its heading line; the "#" marks are not part of it."""
    return (title or "").lstrip("#").strip() or source


def _highlight(citation: rag.Citation) -> str:
    """The passage, escaped, with the quoted sentence wrapped in <mark>."""
    text = citation.text
    lo, hi = citation.quote_start - citation.start, citation.quote_end - citation.start
    if not (0 <= lo < hi <= len(text) and text[lo:hi] == citation.quote):
        # offsets that do not line up with the passage: fall back to finding the quote in it
        lo = text.find(citation.quote) if citation.quote else -1
        hi = lo + len(citation.quote)
    if lo < 0:
        return escape_multiline(text)
    return (
        _escape_keep_lines(text[:lo])
        + f"<mark>{_escape_keep_lines(text[lo:hi])}</mark>"
        + _escape_keep_lines(text[hi:])
    )


def _escape_keep_lines(text: str) -> str:
    """Like escape_multiline, without trimming: the pieces of one passage are joined back together."""
    text = _BLANK_LINES.sub("\n\n", text)
    return "<br>".join(escape(line) for line in text.split("\n"))


def render_not_found(answer: rag.Answer) -> str:
    nearest = ""
    if answer.nearest:
        cards = "".join(render_nearest_card(h) for h in answer.nearest)
        nearest = (
            '<details class="rag-nearest">'
            f"<summary>Closest passages ({len(answer.nearest)}) — these do NOT answer the question</summary>"
            f"{cards}"
            "</details>"
        )
    reason = f'<p class="rag-reason">Why: {escape(answer.reason)}.</p>' if answer.reason else ""
    return (
        '<div class="rag-answer rag-not-found">'
        f'<p class="rag-answer-text"><strong>{escape(answer.text)}</strong></p>'
        f"{reason}{nearest}"
        "</div>"
    )


def render_error(message: str) -> str:
    """A failure the person can read; ``message`` comes from a RagError, meant for people."""
    return f'<div class="rag-error"><strong>Sorry, that did not work.</strong> {escape(_sentence(message))}</div>'


def render_notice(message: str, kind: str = "info") -> str:
    """A short line under the index controls; ``kind`` is info, success or error."""
    return f'<div class="rag-notice rag-notice-{escape(kind)}">{escape(_sentence(message))}</div>'


STATUS_HEADING = '<h2 class="rag-side-title">Documents</h2>'


def render_index_status(status: rag.IndexStatus, read_only: bool = False) -> str:
    """The side panel: what the index holds and whether the seeds changed since it was built."""
    if not status.exists:
        hint = "an administrator has to run <code>rag index</code>." if read_only else "press “Rebuild index”."
        return (
            f'<div class="rag-status">{STATUS_HEADING}'
            '<div class="rag-status-warning">No index has been built yet.</div>'
            f'<div class="rag-status-hint">To build it, {hint}</div>'
            "</div>"
        )
    rows = [
        STATUS_HEADING,
        f'<div class="rag-status-counts"><strong>{status.documents:,}</strong> '
        f'{_plural(status.documents, "document")} · <strong>{status.chunks:,}</strong> '
        f'{_plural(status.chunks, "passage")}</div>',
        f'<div class="rag-status-row"><span>Model</span> <code>{escape(status.model_id)}</code></div>',
        f'<div class="rag-status-row"><span>Built</span> {escape(format_built_at(status.built_at))}</div>',
    ]
    if status.stale:
        action = "Ask an administrator to run <code>rag index</code>." if read_only else "Rebuild the index to include them."
        rows.append(
            '<div class="rag-status-warning">⚠ The documents or settings changed since the index was built '
            f"({escape(status.stale_detail)}). {action}</div>"
        )
    return f'<div class="rag-status">{"".join(rows)}</div>'


def format_built_at(built_at: str) -> str:
    """'2026-11-23T10:48:32+0000' as '23 Nov 2026, 10:48 UTC'; anything else as given."""
    try:
        when = datetime.strptime(built_at, "%Y-%m-%dT%H:%M:%S%z")
    except (TypeError, ValueError):
        return built_at or "unknown"
    zone = "UTC" if when.utcoffset() is not None and not when.utcoffset() else when.strftime("%z")
    return f"{when.day} {when.strftime('%b %Y, %H:%M')} {zone}"


def describe_report(report: rag.IndexReport, requested_full: bool = False) -> str:
    """One sentence on what a build did, for people."""
    seconds = f"({report.seconds:.1f} s)"
    if report.full_rebuild:
        documents = report.added + report.changed + report.unchanged
        text = (
            f"Index rebuilt from scratch: {documents:,} {_plural(documents, 'document')}, "
            f"{report.total_chunks:,} {_plural(report.total_chunks, 'passage')} {seconds}."
        )
        if report.rebuild_reason and not requested_full:
            text += f" Why: {_sentence(report.rebuild_reason).rstrip('.')}."
    else:
        parts = [
            f"{count} {label}"
            for count, label in ((report.added, "added"), (report.changed, "changed"), (report.removed, "removed"))
            if count
        ]
        changes = ", ".join(parts) if parts else "no document changed"
        text = (
            f"Index up to date: {changes}; {report.chunks_embedded:,} {_plural(report.chunks_embedded, 'passage')} "
            f"embedded, {report.total_chunks:,} in the index {seconds}."
        )
    for source, reason in report.skipped:
        text += f" Skipped {source}: {reason}."
    return text


def describe_added_document(source: str, report: rag.IndexReport) -> str:
    chunks = next((f.chunks for f in report.files if f.source == source), 0)
    count = f" ({chunks:,} {_plural(chunks, 'passage')})" if chunks else ""
    return f"Added {source}{count} to the documents. You can ask about it now."


def answer_as_text(answer: rag.Answer) -> str:
    """The answer for scripts (the /chat API): the text with its [n] markers, then the numbered sources
    with the quoted sentence, or the nearest passages marked as not answering. Plain text, no HTML."""
    lines = [answer.text]
    if answer.generated:
        lines.append("(written by your language model from the sources below; each sentence checked against its source)")
    if answer.note:
        lines.append(f"({answer.note})")
    if answer.found:
        lines.append(f"({answer.support}, confidence {answer.confidence:.2f})")
        if answer.citations:
            lines += ["", "Sources:"]
        for c in answer.citations:
            title = f" — {display_title(c.title, c.source)}" if c.title else ""
            page = f"page {c.page}, " if c.page else ""
            lines.append(f"[{c.n}] {c.source}, {page}characters {c.start}-{c.end}, score {c.score:.3f}{title}")
            if c.url:
                lines.append(f"    {c.url}")
            lines.append(f"    “{_one_line(c.quote)}”")
        return "\n".join(lines)
    if answer.reason:
        lines.append(f"({answer.reason})")
    if answer.nearest:
        lines += ["", "Closest passages (they do NOT answer the question):"]
        for h in answer.nearest:
            lines.append(f"- {h.source}, characters {h.start}-{h.end}, score {h.score:.3f}")
            lines.append(f"    “{_one_line(h.text)}”")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def _sentence(message: str) -> str:
    """Library messages start lower-case and have no full stop; show them as a sentence."""
    message = message.strip()
    if not message:
        return "Something went wrong."
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."
