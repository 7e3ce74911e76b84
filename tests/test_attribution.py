"""The words of a question naming the document or its writer ("according to the Agefi article", "the
blogger") stay out of the token match; a named person ("according to François Laurent") stays in."""

from __future__ import annotations

import pytest

import rag
from rag.model import FakeEmbedder
from rag.query import token_match
from rag.query.attribution import source_spans


def _named(question: str) -> list[str]:
    return [question[a:b] for a, b in source_spans(question)]


@pytest.mark.parametrize(
    ("question", "named"),
    [
        ("Why will a customer stay faithful, according to the Agefi article?", ["according to the Agefi article"]),
        # a person or a study may be quoted in the passage that answers: their words stay
        ("According to the Swiss consultant, what did the last century bring?", []),
        ("Why is online retail slowing down, according to François Laurent?", []),
        ("What annoys shoppers most, according to studies worldwide?", []),
        ("What, in the editor's view, turns a purchase into a relationship?", ["in the editor's view"]),
        ("What does the blogger in the Darty post complain about?", ["blogger", "in the Darty post"]),
        ("Selon Jean-Christophe Zwick, de quoi relève l'attention portée au client ?", []),
        ("Selon l'auteure, quel est le seul modèle d'affaires valable ?", ["Selon l'auteure"]),
        ("Pourquoi, dans l'article sur Amazon, parle-t-on de la Fnac ?", ["dans l'article sur Amazon"]),
        # the document and its writer, wherever they stand
        ("Which Fleetwood Mac album does the editorial mention?", ["editorial"]),
        ("Quel reproche l'auteur fait-il à Numilog dans son billet ?", ["auteur", "billet"]),
        ("Why do French shoppers trust pure players?", []),
        ("Quel est le panier moyen des ménages ?", []),
        # nothing but the source: its words are all there is to match, so they stay
        ("selon l'article ?", []),
    ],
)
def test_source_phrases_are_found_in_english_and_french(question, named):
    assert _named(question) == named


def test_the_token_match_leaves_the_source_words_out_and_keeps_the_rest():
    fake = FakeEmbedder()
    question = "Why will a customer stay faithful, according to the Agefi article?"
    _, states = fake.embed_query_tokens(question)
    kept = token_match.question_pieces(question, states)
    plain = "Why will a customer stay faithful?"
    _, plain_states = fake.embed_query_tokens(plain)
    # the same content words as the question without its source: customer, stay, faithful
    assert kept.shape == token_match.question_pieces(plain, plain_states).shape
    words = [question[a:b] for a, b in states.spans]
    assert "Agefi" in " ".join(words)


def test_a_question_naming_its_source_finds_the_passage_not_the_byline(real_settings):
    # the header passage (byline "Agefi, Repères", the author's firm) matched "Agefi article" word for
    # word and ranked first; without those words the passage that gives the reason does
    hits = rag.search("Why will a customer end up staying faithful to you, according to the Agefi article?",
                      k=1, settings=real_settings)
    assert "marque de respect" in hits[0].text
