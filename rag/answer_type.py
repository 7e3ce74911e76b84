"""Questions that ask for a quantity, and sentences that could give one.

A question that asks "how many", "combien", "in which year"... is answered by a sentence with a
number in it (digits, a percentage, a price, or a number word). When none of the sentences the
answer would quote has one, the passages are about the right subject but do not hold the answer:
"How many stores does Fnac have in France?" finds Fnac's strategy, not a count."""

from __future__ import annotations

import re

_QUANTITY_QUESTION = re.compile(
    r"\b(?:how\s+(?:many|much|long|old|often)"
    r"|what\s+(?:share|percentage|proportion|number|amount|price|sum|age)"
    r"|(?:in|since)\s+(?:which|what)\s+year"
    r"|combien"
    r"|quel(?:le)?s?\s+(?:est\s+(?:le|la)\s+)?(?:part|nombre|prix|montant|pourcentage|somme|âge|proportion)"
    r"|en\s+quelle\s+année|depuis\s+quelle\s+année)\b",
    re.IGNORECASE,
)
# "un"/"une"/"one" are left out: as articles and pronouns they are in nearly every sentence.
_NUMBER_WORDS = (
    "deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze "
    "seize vingt trente quarante cinquante soixante septante octante nonante cent cents mille million millions "
    "milliard milliards moitié tiers quart quarts douzaine dizaine dizaines centaine centaines two three four "
    "five six seven eight nine ten eleven twelve thirteen fifteen twenty thirty forty fifty "
    "sixty seventy eighty ninety hundred hundreds thousand thousands billion billions half third quarter dozen"
)
_NUMBER = re.compile(r"\d|%|€|\$|£|\b(?:" + "|".join(_NUMBER_WORDS.split()) + r")\b", re.IGNORECASE)


def asks_for_quantity(question: str) -> bool:
    return bool(_QUANTITY_QUESTION.search(question))


def states_quantity(sentence: str) -> bool:
    return bool(_NUMBER.search(sentence))
