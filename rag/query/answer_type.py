"""What kind of quantity a question asks for, and whether a sentence could give it.

A question that asks "how many", "combien", "what share", "in which year"... is answered by a
sentence stating that kind of quantity: a number, a proportion, a year, and for "combien de X"
a number of X. When the sentences the answer would quote state none, the passages are about the
right subject but do not hold the answer: "How many stores does Fnac have in France?" finds
Fnac's strategy, not a count."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .lexical import tokens

# A count ("how many", "combien de X") is not stated by a date, an amount, a percentage or a rank
# (declined own 4/8 -> 5/8, own3 6/10 -> 7/10, no answerable question declined). False: any number.
COUNT = True
# An amount (a price, a cost, a turnover) is not stated by a date or a rank. False: any number.
AMOUNT = True
TYPED = True  # False: any number answers any quantity question (the row it is measured against in scripts/levers.py)

# a rate ("quel taux de croissance", "what growth rate") is stated as a share: "13%"
_SHARE_ASKED = (
    r"what\s+(?:share|percentage|proportion|fraction)|(?:what|which)\s+(?:is\s+the\s+)?(?:\w+\s+)?rate"
    r"|quel(?:le)?s?\s+(?:est\s+(?:le|la)\s+)?(?:part|pourcentage|proportion|taux)"
)
# "since when" / "depuis quand" ask for a date: a year
_YEAR_ASKED = r"(?:in|since)\s+(?:which|what)\s+year|(?:en|depuis)\s+quelle\s+année|since\s+when|depuis\s+quand"
# "what was the monthly price", "what is its phone number", "quel est le délai moyen": after "what is the" the
# asked quantity may follow a word; a phone number, a turnover or a delay is given in digits or number words.
# Without the verb, "what cost do pickup points cut?" / "quel coût ..." asks which cost, not how much.
_NUMBER_ASKED = (
    r"how\s+(?:many|much|long|old|often)|what\s+(?:is\s+the\s+)?(?:number|amount|price|sum|age)"
    r"|what\s+(?:is|was|are|were)\s+(?:the\s+|its\s+|their\s+)?(?:[\w'’]+\s+)?(?:number|amount|price|cost|sum|revenues?|turnover)"
    r"|combien|phone\s+number|(?:numéro|n°)\s+de\s+(?:téléphone|fax)"
    r"|quel(?:le)?s?\s+(?:est\s+(?:le|la)\s+)?(?:nombre|prix|montant|somme|âge)"
    r"|quel(?:le)?s?\s+(?:est|était|sont)\s+(?:le|la|les)\s+(?:\w+\s+)?"
    r"(?:nombre|prix|montant|somme|délai|coût|tarif|chiffre\s+d['’]affaires)"
)
_COMBIEN_DE = r"combien\s+(?:de|d['’])"
# a count of things: "how many stores", "combien de magasins", "le nombre de clients"
_COUNT_ASKED = rf"how\s+many|{_COMBIEN_DE}|what\s+(?:is\s+the\s+)?number\s+of|nombre\s+(?:de|d['’])"
_QUANTITY_QUESTION = re.compile(rf"\b(?:{_SHARE_ASKED}|{_YEAR_ASKED}|{_NUMBER_ASKED})\b", re.IGNORECASE)
_SHARE_QUESTION = re.compile(rf"\b(?:{_SHARE_ASKED})\b", re.IGNORECASE)
_YEAR_QUESTION = re.compile(rf"\b(?:{_YEAR_ASKED})\b", re.IGNORECASE)
_COUNT_QUESTION = re.compile(rf"\b(?:{_COUNT_ASKED})", re.IGNORECASE)
# money: "what was Walmart's revenue in 2012?" is not answered by "en 2012"
_AMOUNT_QUESTION = re.compile(
    r"\b(?:price|costs?|revenues?|turnover|prix|coût|coûte|tarif|montant|chiffre\s+d['’]affaires)\b", re.IGNORECASE
)
# "combien de magasins": the thing counted, whose name a French answer repeats ("97 magasins").
# English questions are not checked for it: the seeds are French ("stores" / "magasins").
_COUNTED = re.compile(rf"\b{_COMBIEN_DE}\s*(\w+)", re.IGNORECASE)
# "combien de temps / de fois / d'argent": answered by a duration, a count or an amount alone
_NOT_A_THING = {"temps", "fois", "argent"}

# "un"/"une"/"one" are left out: as articles and pronouns they are in nearly every sentence.
_NUMBER_WORDS = (
    "deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze "
    "seize vingt trente quarante cinquante soixante septante octante nonante cent cents mille million millions "
    "milliard milliards moitié tiers quart quarts douzaine dizaine dizaines centaine centaines quarantaine "
    "cinquantaine vingtaine trentaine two three four five six seven eight nine ten eleven twelve thirteen fifteen "
    "twenty thirty forty fifty sixty seventy eighty ninety hundred hundreds thousand thousands billion billions "
    "half third quarter dozen"
)
_NUMBER = re.compile(r"\d|%|€|\$|£|\b(?:" + "|".join(_NUMBER_WORDS.split()) + r")\b", re.IGNORECASE)
_SHARE = re.compile(
    r"%|\bpour\s?cent|\bper\s?cent|\b(?:moitié|tiers|quarts?|majorité|minorité|half|third|quarter|majority"
    r"|minority)\b|\b\d+\s+(?:sur|on|out\s+of)\s+\d+",
    re.IGNORECASE,
)
_YEAR = re.compile(r"\b(?:1[5-9]\d\d|20\d\d)\b|\bannées\s+\d0\b", re.IGNORECASE)
# Numbers that state no amount: dates and ranks ("numéro 1"); a time can ("1h30 du salaire horaire")
_DATE_RANK = (
    r"\b(?:en|in|depuis|since|from|to|jusqu['’]en|début|fin|le|du|au)\s+(?:1[5-9]\d\d|20\d\d)\b"
    r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b(?:numéro|n°|no\.|number)\s*\d+|\b\d+(?:er|ère|e|ème|st|nd|rd|th)\b"
)
_NOT_AN_AMOUNT = re.compile(_DATE_RANK, re.IGNORECASE)
# Numbers that do not count things: amounts of money, shares and times too
_NOT_A_COUNT = re.compile(
    r"\d[\d\s.,]*\s*(?:[€$£%]|k€|m€|euros?\b|dollars?\b|pour\s?cent\b|per\s?cent\b)|[€$£]\s*\d[\d.,]*"
    rf"|\b\d{{1,2}}h\d{{0,2}}\b|{_DATE_RANK}",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QuantityAsked:
    """What a sentence must state to answer a quantity question."""

    kind: str  # "number", "count", "amount", "share" or "year"
    counted: str | None = None  # the thing a French "combien de ..." counts, as the question names it

    def __str__(self) -> str:
        if self.kind == "share":
            return "a share"
        if self.kind == "year":
            return "a year"
        if self.kind == "amount":
            return "an amount"
        return f"a number of {self.counted}" if self.counted else "a number"

    def stated_by(self, text: str) -> bool:
        if self.kind == "share":
            return bool(_SHARE.search(text))
        if self.kind == "year":
            return bool(_YEAR.search(text))
        if self.kind == "count":
            text = _NOT_A_COUNT.sub(" ", text)
        elif self.kind == "amount":
            text = _NOT_AN_AMOUNT.sub(" ", text)
        if not _NUMBER.search(text):
            return False
        return self.counted is None or tokens(self.counted)[0] in tokens(text)


def quantity_asked(question: str) -> QuantityAsked | None:
    """The kind of quantity the question asks for; None when it asks for none."""
    if not _QUANTITY_QUESTION.search(question):
        return None
    if not TYPED:
        return QuantityAsked("number")
    if _SHARE_QUESTION.search(question):
        return QuantityAsked("share")
    if _YEAR_QUESTION.search(question):
        return QuantityAsked("year")
    counted = _COUNTED.search(question)
    word = counted.group(1) if counted and counted.group(1).lower() not in _NOT_A_THING else None
    a_measure = counted is not None and word is None  # "combien de temps / de fois / d'argent"
    if COUNT and _COUNT_QUESTION.search(question) and not a_measure:
        kind = "count"
    elif AMOUNT and _AMOUNT_QUESTION.search(question):
        kind = "amount"
    else:
        kind = "number"
    return QuantityAsked(kind, word if word and tokens(word) else None)
