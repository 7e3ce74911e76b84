"""How the page and the /chat text show a written answer, its note and the text while it is written."""

from __future__ import annotations

import rag
from ui import render

CITATION = rag.Citation(1, "a.txt", "Premier. Second <b>gras</b>.", 0, 28, "Second <b>gras</b>.", 0.9, "", 9, 28)


def written(note: str = "") -> rag.Answer:
    return rag.Answer(
        "why?", "The second one is <b>bold</b>. [1]", True, [CITATION],
        sentences=(rag.AnswerSentence("The second one is <b>bold</b>.", (1,), 1),), generated=True, note=note,
    )


def test_a_written_answer_is_labelled_with_its_model_and_its_note():
    html = render.render_answer(written("1 sentence of 2 <i>was</i> removed: no cited passage states 47%."), 1,
                                writer="qwen<2>")
    assert "Written by your language model (qwen&lt;2&gt;)" in html
    assert '<p class="rag-note">1 sentence of 2 &lt;i&gt;was&lt;/i&gt; removed' in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>" not in html
    assert '<a class="rag-marker" href="#cite-1-1"' in html and "<mark>Second &lt;b&gt;gras&lt;/b&gt;.</mark>" in html


def test_a_quoted_answer_has_no_label_but_shows_why_it_is_quoted():
    quoted = rag.Answer("why?", "Second <b>gras</b>. [1]", True, [CITATION], note="The language model's answer is not shown")
    html = render.render_answer(quoted, 1, writer="m")
    assert "Written by" not in html and "rag-generated" not in html and "is not shown" in html


def test_the_text_being_written_is_escaped_and_marked_unchecked():
    html = render.render_draft("Pure <script>x</script>\nnext")
    assert "Writing…" in html and "&lt;script&gt;" in html and "<br>" in html and "\n" not in html


def test_the_chat_api_text_says_who_wrote_it():
    text = render.answer_as_text(written("1 sentence of 2 was removed."))
    assert text.splitlines()[1].startswith("(written by your language model")
    assert "(1 sentence of 2 was removed.)" in text and "[1] a.txt" in text
