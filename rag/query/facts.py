"""The checkable facts of a sentence: the numbers it states and the proper names it uses, compared
with a passage's across English and French.

A written answer may reword a passage but not change its facts: "ranked second" over "classé numéro 1",
"five criteria" over "les trois critères", "Walter Isaacson" over "Brad Stone". Numbers are read as
values whatever their spelling (digits with either decimal mark, number words of both languages,
ordinals, roman centuries, decades), so "22 %" and "twenty-two per cent" or "XXIe siècle" and "21st
century" agree. Names are capitalised words that are not where any word is capitalised (a sentence's
first word, after an opening quote or a colon) unless they look like names anyway ("SO'xperts",
"Fnac.com", "FNAC"); country, language, month and day names are matched across the two languages
with Babel's tables ("Germany" = "Allemagne", "German" = "allemand")."""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import NamedTuple

from .lexical import STOPWORDS

_UNITS_EN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_UNITS_FR = ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze", "douze", "treize", "quatorze", "quinze", "seize"]
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60, "septante": 70,
    "octante": 80, "huitante": 80, "nonante": 90,
}
_MULTIPLIERS = {
    "hundred": 100, "hundreds": 100, "cent": 100, "cents": 100, "thousand": 1000, "thousands": 1000, "mille": 1000,
    "million": 1e6, "millions": 1e6, "billion": 1e9, "billions": 1e9, "milliard": 1e9, "milliards": 1e9,
}
# "une quarantaine de sites" is about forty; "a dozen" twelve
_APPROXIMATE = {
    "dozen": 12, "dozens": 12, "douzaine": 12, "douzaines": 12, "dizaine": 10, "dizaines": 10, "vingtaine": 20,
    "trentaine": 30, "quarantaine": 40, "cinquantaine": 50, "soixantaine": 60, "centaine": 100, "centaines": 100,
    "millier": 1000, "milliers": 1000,
}
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "premier": 1, "première": 1, "premiers": 1, "premières": 1, "deuxième": 2, "seconde": 2,
    "troisième": 3, "quatrième": 4, "cinquième": 5, "sixième": 6, "septième": 7, "huitième": 8, "neuvième": 9,
    "dixième": 10,
}
# a share named by a word: both the fraction and the percentage count ("half" = "50 %" = "la moitié")
_FRACTIONS = {
    "half": (0.5, 50), "moitié": (0.5, 50), "quarter": (0.25, 25), "quart": (0.25, 25), "quarters": (0.75, 75),
    "tiers": (1 / 3, 33), "third": (1 / 3, 33, 3), "thirds": (2 / 3, 66, 67),
}
# "one", "un" and "une" are articles and pronouns as often as numbers: a sentence is not held to them,
# but a passage that says them does state 1
_ONE = {"one", "un", "une"}
# Words that are numbers only sometimes ("neuf" is also "new", "second" a unit of time, "tiers" a third
# party, "premier" a prime minister): a passage that says them states the number, a sentence is not held to it.
_SOMETIMES_NUMBERS = {"neuf", "second", "seconde", "tiers", "first", "premier", "première", "premiers", "premières"}
_WORD_VALUES: dict[str, tuple[float, ...]] = {
    **{w: (float(i),) for i, w in enumerate(_UNITS_EN)},
    **{w: (float(i),) for i, w in enumerate(_UNITS_FR)},
    **{w: (float(v),) for w, v in _TENS.items()},
    **{w: (float(v),) for w, v in _MULTIPLIERS.items()},
    **{w: (float(v),) for w, v in _APPROXIMATE.items()},
    **{w: (float(v),) for w, v in _ORDINALS.items()},
    **{w: tuple(float(x) for x in v) for w, v in _FRACTIONS.items()},
}

# digits, with thousands grouped by a space, a comma or a dot, and a decimal part after a comma or a dot
_DIGITS = re.compile(
    r"(?<![\w.,])(?P<int>\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:\.\d{3})+(?!\d)|\d+)"
    r"(?:[.,](?P<dec>\d+))?(?P<suffix>s\b|’s\b|'s\b)?(?:[ \u00a0\u202f]?%)?"
)
# "XXIe siècle", "XIXe", "XXI century"; a single letter only before the word ("Ce", "Le" are words)
_ROMAN_CENTURY = re.compile(r"\b(?P<roman>[IVXLC]{1,7})(?:(?P<suffix>e|er|è|ème|eme)\b|(?P<word>\s+(?:siècle|century))\b)")
_PER_CENT = re.compile(r"\b(?:per|pour)\s+cent\b", re.IGNORECASE)
_WORDS = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def fold(text: str) -> str:
    """Lower case, accents removed, curly apostrophes straight."""
    text = unicodedata.normalize("NFKD", text.replace("’", "'").casefold())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _roman_value(roman: str) -> int:
    total = 0
    for a, b in zip(roman, roman[1:] + " "):
        value = _ROMAN[a]
        total += -value if b != " " and _ROMAN[b] > value else value
    return total


def _compound(words: list[str]) -> float | None:
    """'vingt-deux' 22, 'quatre-vingt-dix' 90, 'twenty-two' 22; None when a piece is not a number word."""
    total, current = 0.0, 0.0
    for w in words:
        if w in ("et", "and"):
            continue
        if w in _ONE:
            value = 1.0
        elif w in _WORD_VALUES and w not in _FRACTIONS and w not in _ORDINALS:
            value = _WORD_VALUES[w][0]
        else:
            return None
        if value == 100:
            current = max(current, 1) * 100
        elif value >= 1000:
            total += max(current, 1) * value
            current = 0
        elif value == 20 and current and current < 10:  # quatre-vingt
            current *= 20
        else:
            current += value
    return total + current


class Number(NamedTuple):
    written: str  # as the text spells it
    values: frozenset[float]  # what it may mean


def numbers(text: str, *, as_passage: bool = False) -> list[Number]:
    """Each number ``text`` states, with the values it may mean (``"1,500"`` is 1500 or 1.5, ``"the 70s"``
    70 or 1970). ``as_passage``: the words that are numbers only sometimes ("un", "neuf") count too."""
    out: list[Number] = []
    text = _PER_CENT.sub("%", text)  # the "cent" of "per cent" is no hundred
    for m in _DIGITS.finditer(text):
        raw, dec = m.group("int"), m.group("dec")
        values = set()
        grouped = re.sub(r"[ \u00a0\u202f,.]", "", raw)
        values.add(float(grouped) + (float("0." + dec) if dec else 0.0))
        if re.fullmatch(r"\d{1,3}[,.]\d{3}", raw) and not dec:
            values.add(float(raw.replace(",", ".")))  # "1,500" may be French for 1.5
        if m.group("suffix"):  # a decade: "1970s" is also "70", "70s" also "1970"
            n = int(grouped)
            values.add(float(n % 100) if n >= 1000 else float(1900 + n))
        out.append(Number(m.group(0), frozenset(round(v, 4) for v in values)))
    for m in _ROMAN_CENTURY.finditer(text):
        if m.group("word") or len(m.group("roman")) > 1:
            out.append(Number(m.group(0), frozenset({float(_roman_value(m.group("roman")))})))
    for m in _WORDS.finditer(text):
        word = m.group().casefold().replace("’", "'")
        parts = word.split("-")
        if len(parts) > 1 and (value := _compound(parts)) is not None:
            out.append(Number(m.group(), frozenset({value})))
            continue
        for part in parts:
            if part in _ONE:
                value = (1.0,)
            elif part in _WORD_VALUES:
                value = _WORD_VALUES[part]
            else:
                continue
            if as_passage or (part not in _ONE and part not in _SOMETIMES_NUMBERS):
                out.append(Number(part, frozenset(round(v, 4) for v in value)))
    return out


def missing_numbers(sentence: str, passage_text: str) -> list[str]:
    """The numbers of ``sentence`` that ``passage_text`` does not state, as written in the sentence."""
    stated = set().union(*(n.values for n in numbers(passage_text, as_passage=True)))
    return [n.written.strip() for n in numbers(sentence) if not n.values & stated]


# --- names ---

_NAME_TOKEN = re.compile(r"[\w][\w'’.&-]*[\w]|[\w]", re.UNICODE)
_ELISION = re.compile(r"^(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu)['’](?=\w)", re.IGNORECASE)
_OPENERS = ("«", '"', "“", "(", "[", ":", "—", "–", "-", "‘", "'")
_URL = re.compile(r"\b(?:https?://|www\.)\S+|\b[\w.+-]+@[\w-]+\.[\w.]+", re.IGNORECASE)


def _looks_like_a_name(token: str) -> bool:
    """Capitals or marks inside the word: 'FNAC', 'SO'xperts', 'Fnac.com', 'eBay', 'B2B'."""
    inner = token[1:]
    return (
        any(ch.isupper() for ch in inner)
        or any(ch.isdigit() for ch in token)
        or bool(re.search(r"\w[.&]\w", token))
    )


def names(sentence: str) -> list[str]:
    """The proper names of ``sentence``: runs of capitalised words, and URLs and e-mail addresses."""
    found = [m.group().rstrip(".,;:") for m in _URL.finditer(sentence)]
    text = _URL.sub(" ", sentence)
    run: list[str] = []
    run_starts_free = False
    previous_end = 0
    for m in _NAME_TOKEN.finditer(text):
        token = _ELISION.sub("", m.group().rstrip("."))  # "l'Enssib", "d'Amazon": the name follows
        between = text[previous_end : m.start()]
        previous_end = m.end()
        at_start = not text[: m.start()].strip() or any(ch in between for ch in _OPENERS) or re.search(
            r"[.!?…]\s*$", text[: m.start()]
        )
        capital = token[:1].isupper() and fold(token) not in STOPWORDS and not _ROMAN_CENTURY.fullmatch(token)
        if capital and not (run and between.strip() in ("", "-", "&")):
            if run:
                found.extend(_finish(run, run_starts_free))
            run, run_starts_free = [token], bool(at_start)
        elif capital:
            run.append(token)
        else:
            if run:
                found.extend(_finish(run, run_starts_free))
            run = []
    if run:
        found.extend(_finish(run, run_starts_free))
    return found


def _finish(run: list[str], starts_where_any_word_is_capitalised: bool) -> list[str]:
    """A run of capitalised words as one name; its first word, where any word takes a capital, only when
    it looks like a name."""
    if starts_where_any_word_is_capitalised and not _looks_like_a_name(run[0]):
        run = run[1:]  # "Selon Abeline Majorel": the first word may be any word
    return [" ".join(run)] if run else []


@functools.cache
def _equivalents() -> dict[str, frozenset[str]]:
    """Folded country, language, month and day names of English and French, each to its group."""
    from babel import Locale

    en, fr = Locale("en"), Locale("fr")
    groups: list[set[str]] = []
    for code in set(en.territories) & set(fr.territories):
        groups.append({en.territories[code], fr.territories[code]})
    for code in set(en.languages) & set(fr.languages):
        groups.append({en.languages[code], fr.languages[code]})
    for table in ("months", "days"):
        for key, name in getattr(en, table)["format"]["wide"].items():
            groups.append({name, getattr(fr, table)["format"]["wide"][key]})
    out: dict[str, frozenset[str]] = {}
    for group in groups:
        folded = frozenset(_words_key(g) for g in group)
        for key in folded:
            out[key] = out.get(key, frozenset()) | folded
    return out


def _words_key(text: str) -> str:
    return " ".join(re.findall(r"\w+", fold(text)))


def _same_word(a: str, b: str) -> bool:
    """Equal, or one an inflection or a spelling of the other ('américains' for 'American', 'Belgian' for
    'belge')."""
    if a == b:
        return True
    shorter = min(len(a), len(b))
    if shorter >= 3 and (a.startswith(b) or b.startswith(a)) and abs(len(a) - len(b)) <= 2:
        return True  # "Cap" for "Cape", "belge" for "belges"
    common = 0
    for x, y in zip(a, b):
        if x != y:
            break
        common += 1
    return common >= 4 and common >= 0.75 * shorter


def name_found(name: str, passage_text: str) -> bool:
    """Whether the passage uses ``name``: verbatim (case and accents aside), every word of it, or its
    translation (country, language, month, day)."""
    key = _words_key(name)
    passage = _words_key(passage_text)
    if not key or f" {key} " in f" {passage} ":
        return True
    if _URL.fullmatch(name):
        return fold(name) in fold(passage_text)
    passage_words = set(passage.split())
    groups = _equivalents()
    if key in groups and any(f" {alt} " in f" {passage} " for alt in groups[key]):
        return True
    for word in key.split():
        if word in STOPWORDS:
            continue
        forms = groups.get(word, frozenset()) | {word}
        if not any(_same_word(form, pw) for form in forms for pw in passage_words):
            return False
    return True


def missing_names(sentence: str, passage_text: str) -> list[str]:
    """The names of ``sentence`` that ``passage_text`` does not use."""
    return [n for n in names(sentence) if not name_found(n, passage_text)]
