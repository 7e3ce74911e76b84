"""Questions asking for a quantity: recognised in both languages, answered only with that kind of quantity."""

from dataclasses import replace

import pytest

import rag
from rag.documents.chunk import split_sentences
from rag.query import decide
from rag.query.answer_type import QuantityAsked, quantity_asked
from rag.query.compose import compose
from rag.query.retrieve import Scored
from rag.types import Chunk


@pytest.mark.parametrize(
    "question",
    [
        "How many stores does Fnac have?",
        "How much does a subscription cost per month?",
        "What share of sales is made online?",
        "In which year was the company founded?",
        "Combien de magasins la Fnac compte-t-elle ?",
        "À combien s'élève le panier moyen ?",
        "Quelle part des enseignes possède un site marchand ?",
        "Quel est le prix de l'abonnement ?",
        "En quelle année Amazon a-t-il été créé ?",
    ],
)
def test_quantity_questions_are_recognised(question):
    assert quantity_asked(question) is not None


@pytest.mark.parametrize(
    "question",
    [
        "Why do French shoppers trust pure players?",
        "Who wrote the biography of Amazon?",
        "What does IKEA make its customers do themselves?",
        "Pourquoi les clients font-ils confiance à Amazon ?",
        "Quel est le rôle du conseiller client ?",
        "What rating did the magazine give Amazon?",
        "How does service drive Amazon's revenue?",  # names a quantity without asking for it
        "What is the name of the debt collection agency?",
        "What cost do pickup points help retailers cut?",  # which cost, not how much
        "Quel coût les points relais permettent-ils de réduire ?",
        "What was the golden age of mail-order catalogues?",
    ],
)
def test_other_questions_are_not(question):
    assert quantity_asked(question) is None


@pytest.mark.parametrize(
    "question, kind, counted",
    [
        ("What share of sales is made online?", "share", None),
        ("Quelle part des enseignes possède un site marchand ?", "share", None),
        ("Quel est le pourcentage de clients fidèles ?", "share", None),
        ("Quel taux de croissance le e-commerce devrait-il atteindre ?", "share", None),  # a rate: "13%"
        ("What growth rate is expected next year?", "share", None),
        ("What is the price of the subscription?", "amount", None),
        ("What was the monthly price of the subscription?", "amount", None),  # a word between
        ("What was Walmart's revenue in 2012?", "amount", None),
        ("Quel est le chiffre d'affaires de la Fnac ?", "amount", None),
        ("What is the customer service's phone number?", "number", None),
        ("Quel est le délai de livraison moyen ?", "number", None),
        ("Since when has the blog existed?", "year", None),
        ("Depuis quand existe le blog ?", "year", None),
        ("In which year was the company founded?", "year", None),
        ("Depuis quelle année le magazine existe-t-il ?", "year", None),
        ("Combien de magasins la Fnac compte-t-elle ?", "count", "magasins"),
        ("Combien d'abonnés compte le magazine ?", "count", "abonnés"),
        ("Quel est le nombre de clients fidèles ?", "count", None),
        ("Combien de temps faut-il pour être livré ?", "number", None),  # a duration: no thing counted
        ("Combien d'argent la start-up a-t-elle levé ?", "number", None),  # an amount: "2 millions d'euros"
        ("How many stores does Fnac have?", "count", None),  # English over French text: the noun is not checked
        ("How much does a subscription cost per month?", "amount", None),
    ],
)
def test_the_kind_of_quantity_asked(question, kind, counted):
    assert quantity_asked(question) == QuantityAsked(kind, counted)


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("Le panier moyen est descendu à 90,3 euros.", True),
        ("70% posséderaient un site marchand.", True),
        ("Trois numéros sortiront par an.", True),
        ("Plus de cent mille sites.", True),
        ("It costs a hundred dollars.", True),
        ("Une enseigne a fait un effort pour ses clients.", False),  # articles are not numbers
        ("The company values one thing above all: service.", False),
    ],
)
def test_sentences_stating_a_number(sentence, expected):
    assert QuantityAsked("number").stated_by(sentence) is expected


@pytest.mark.parametrize(
    "asked, sentence, expected",
    [
        (QuantityAsked("share"), "70% posséderaient un site marchand.", True),
        (QuantityAsked("share"), "Une quarantaine de sites captent un quart de l'activité.", True),
        (QuantityAsked("share"), "La moitié des Français achètent en ligne.", True),
        (QuantityAsked("share"), "Le volume atteint 37,7 milliards d'euros.", False),  # a number, not a share
        (QuantityAsked("year"), "Amazon a été fondé en 1994 à Seattle.", True),
        (QuantityAsked("year"), "Les recherches datent des années 70.", True),
        (QuantityAsked("year"), "Il a vendu 300 exemplaires.", False),
        (QuantityAsked("number", "magasins"), "La Fnac compte 97 magasins en France.", True),
        (QuantityAsked("number", "magasins"), "Le magasin de Paris ouvre trois jours par semaine.", True),  # same stem
        (QuantityAsked("number", "magasins"), "Les trois critères sont l'offre, le prix et le service.", False),
        (QuantityAsked("number", "numéros"), "Trois numéros sortiront par an.", True),
        # a count is not stated by an amount, a share, a date, a time or a rank
        (QuantityAsked("count"), "Plus de 100 000 sites sont recensés.", True),
        (QuantityAsked("count"), "Il organise 3 ou 4 évènements par semaine.", True),
        (QuantityAsked("count"), "Elle nous réclame la somme de 255 euros.", False),
        (QuantityAsked("count"), "Walmart a lancé un concours en 2012.", False),
        (QuantityAsked("count"), "Classé numéro 1 par les Français, Amazon est critiqué.", False),
        (QuantityAsked("count"), "70% posséderaient un site marchand.", False),
        (QuantityAsked("count"), "Posté le 04/01/2016 17h59 par Maarten.", False),
        (QuantityAsked("count"), "Au 21e siècle, le client est roi.", False),
        (QuantityAsked("count"), "En 2012, Walmart comptait deux millions de salariés.", True),
        # an amount is not stated by a date or a rank, but it can be by a time of work
        (QuantityAsked("amount"), "Elle nous réclame la somme de 255 euros.", True),
        (QuantityAsked("amount"), "Le chiffre d'affaires atteint deux milliards.", True),
        (QuantityAsked("amount"), "Walmart a lancé un concours en 2012.", False),
        (QuantityAsked("amount"), "Classé numéro 1 par les Français, Amazon est critiqué.", False),
        (QuantityAsked("amount"), "L'outil coûte l'équivalent de 1h30 du salaire horaire.", True),
    ],
)
def test_sentences_stating_the_kind_asked(asked, sentence, expected):
    assert asked.stated_by(sentence) is expected


def _scored(text: str, cosines: list[float]) -> Scored:
    chunk = Chunk(0, "0.txt", text, 0, len(text), "", tuple(split_sentences(text)))
    return Scored(chunk, max(cosines), max(cosines), tuple(cosines), 0.0, 1, None, max(cosines))


def _ranked(best: float = 0.86) -> list[Scored]:
    background = [_scored("Une autre phrase assez longue sur un autre sujet ici.", [0.78]) for _ in range(10)]
    return [_scored("La Fnac a beaucoup investi dans ses magasins cette année.", [best]), *background]


def test_a_quantity_question_without_a_number_in_the_quotes_is_declined():
    ranked = _ranked()
    question = "How many stores does Fnac have?"
    assert decide.decide(question, ranked, quotes=["La Fnac compte 97 magasins en France."])[0]
    found, conf, reason = decide.decide(question, ranked, quotes=["La Fnac a beaucoup investi dans ses magasins."])
    assert not found and conf < 0.5 and "asks for a quantity (a number) and no quoted sentence states one" in reason
    # a French count names what it counts: a number of something else does not answer it (a French
    # question shares words with French passages: their BM25 score counts in the confidence)
    fr = "Combien de magasins la Fnac compte-t-elle ?"
    fr_ranked = [replace(s, lexical=3.0) for s in ranked]
    assert decide.decide(fr, fr_ranked, quotes=["La Fnac compte 97 magasins en France."])[0]
    found, _, reason = decide.decide(fr, fr_ranked, quotes=["Les trois critères sont l'offre, le prix et le service."])
    assert not found and "a number of magasins" in reason
    # other questions are not checked
    assert decide.decide("Why did Fnac invest in its stores?", ranked, quotes=["La Fnac a beaucoup investi."])[0]


def test_a_quantity_question_quotes_the_sentence_with_the_number():
    text = "La Fnac a beaucoup investi dans ses magasins. Elle en compte 97 en France aujourd'hui. Fin du texte ici."
    ranked = [_scored(text, [0.86, 0.83, 0.70])]
    ans = compose("How many stores does Fnac have?", ranked, found=True, confidence=0.9, reason="test")
    assert ans.citations[0].quote.startswith("Elle en compte 97")
    why = compose("Why did Fnac invest?", ranked, found=True, confidence=0.9, reason="test")
    assert why.citations[0].quote.startswith("La Fnac a beaucoup investi")


@pytest.mark.model
def test_near_topic_quantity_questions_are_declined(real_settings):
    """Questions about the seeds' companies asking for numbers the articles do not give."""
    for q in ["Combien de jours Darty accorde-t-il pour retourner un produit ?", "Who founded Fnac, and in which year?"]:
        ans = rag.answer(q, settings=real_settings)
        assert not ans.found and "quantity" in ans.reason, (q, ans.reason)
    # the kind of quantity counts: a price does not say how many employees, a rank is not a share
    for q, asked in [
        ("Combien de salariés travaillent chez Darty ?", "a number of salariés"),
        ("What percentage of Amazon's customers are French?", "a share"),
        ("Quel pourcentage des clients d'Amazon sont français ?", "a share"),
        # a year ("en 2012") or an amount of money does not count employees
        ("How many employees does Walmart have worldwide?", "a number"),
    ]:
        ans = rag.answer(q, settings=real_settings)
        assert not ans.found and f"asks for a quantity ({asked})" in ans.reason, (q, ans.reason)
    ans = rag.answer("Quelle part des grandes enseignes possède un site marchand ?", settings=real_settings)
    assert ans.found and "70%" in ans.citations[0].quote
    ans = rag.answer("How many e-commerce sites are there in France?", settings=real_settings)
    assert ans.found and "100 000 sites" in " ".join(c.quote for c in ans.citations)
    ans = rag.answer("Combien de numéros du magazine sortiront par an ?", settings=real_settings)
    assert ans.found and "trois numéros" in " ".join(c.quote for c in ans.citations)
