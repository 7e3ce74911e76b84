"""Whether a sentence a language model wrote rests on the passages it cites.

A sentence passes when it cites at least one passage, every passage it cites was given, the numbers
and proper names it states appear in a cited passage (``facts``), it is close in meaning to some
sentence of a cited passage (the multilingual embedder compares them across English and French), and
it does not deny what that sentence says, or the reverse. Sentences of a passage that address a
language model ("ignore the previous instructions…") are no evidence: a reply that obeys them cannot
pass by repeating them. The thresholds were fitted on tests/data/grounding_pairs.jsonl
(scripts/grounding_threshold.py; results in docs/llm.md)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..documents.chunk import split_sentences
from ..model.base import Embedder
from .facts import missing_names, missing_numbers
from .lexical import question_language

# The least cosine between a written sentence (embedded as a query) and the closest sentence of a cited
# passage (as the index embeds it), by whether the two are in the same language: across English and
# French, multilingual-e5-small gives lower cosines to the same meaning. Fitted on half of
# tests/data/grounding_pairs.jsonl with the other checks in place (docs/llm.md); they go with the model.
SUPPORT_LEVEL = {"same": 0.879, "cross": 0.813}
# A sentence denies its closest passage sentence when one of the two is negated and the other is not
# ("is no longer the favourite" over "est à nouveau l'enseigne préférée"), unless another sentence close
# enough agrees with it. On the fitting half it caught 5 more of 11 negated sentences for 1 more of 59
# faithful ones removed (precision .871 -> .981, recall .915 -> .898); docs/llm.md has the held-out half.
NEGATION_CHECK = True

_NEGATION_EN = re.compile(
    r"\b(?:not|no|never|nothing|nobody|none|neither|nor|cannot|without|no\s+longer)\b|n't\b", re.IGNORECASE
)
_NEGATION_FR = re.compile(
    r"\b(?:ne\s+|n['’])(?:\S+\s+){0,4}?(?:pas|plus|jamais|rien|personne|aucun|aucune|guère|nullement|point)\b"
    r"|\b(?:jamais|aucun|aucune|nul|nulle)\b|\bsans\b(?!\s+doute)",
    re.IGNORECASE,
)
# Text addressed to a language model, not to a reader: commands to drop or replace the instructions, to
# answer something given, or to take a role. Such sentences are cut out of the passages the model reads
# and are never evidence.
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|rules|prompts?|directions|context)\b"
    r"|\b(?:ignor|oubli)\w*\b.{0,40}\b(?:instructions?|consignes?|règles|directives)\b"
    r"|\b(?:system\s+prompt|prompt\s+système|you\s+are\s+now|from\s+now\s+on,?\s+you|act\s+as\s+(?:an?\s+)?"
    r"(?:ai|assistant|chatbot)|as\s+an\s+ai\b|(?:language\s+model|ai\s+assistant|chatbot|llm)s?\b.{0,30}"
    r"\b(?:must|should|reading|answer|reply|respond|say)|(?:new|nouvelles?)\s+(?:instructions|consignes)"
    r"|tu\s+es\s+(?:maintenant|désormais)|vous\s+êtes\s+(?:maintenant|désormais)|(?:assistant|ia|modèle)s?\b.{0,30}"
    r"\b(?:doi(?:t|vent)|répon\w*|dire)|(?:answer|reply|respond)\s+(?:only\s+)?with\b|répon(?:ds|dez)\s+"
    r"(?:uniquement|seulement|simplement)|(?:say|write|state)\s+(?:only\s+)?that\b|dis\s+que\b|écri(?:s|vez)\s+que\b)",
    re.IGNORECASE | re.DOTALL,
)


def is_instruction(sentence: str) -> bool:
    """Whether a sentence of a passage addresses a language model (a prompt injection)."""
    return bool(_INSTRUCTION.search(sentence))


def is_negated(sentence: str) -> bool:
    return bool(_NEGATION_EN.search(sentence) or _NEGATION_FR.search(sentence))


@dataclass(frozen=True)
class Evidence:
    """A passage given to the language model as [n]: its text, the spans of the sentences that may
    support a claim (those addressing a model left out) and their unit vectors, one row each."""

    n: int
    text: str
    spans: tuple[tuple[int, int], ...]
    vectors: np.ndarray
    language: str

    @property
    def statements(self) -> str:
        """The evidence sentences as one text: where numbers and names must be found."""
        return "\n".join(self.text[a:b] for a, b in self.spans)


def make_evidence(n: int, text: str, spans: Sequence[tuple[int, int]], vectors: np.ndarray) -> Evidence:
    """Evidence from a passage's sentence spans and their vectors (as the index stores them)."""
    keep = [i for i, (a, b) in enumerate(spans) if not is_instruction(text[a:b])]
    rows = vectors[keep] if len(keep) else np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 1), np.float32)
    return Evidence(n, text, tuple(spans[i] for i in keep), rows, question_language(text))


def evidence_from_text(n: int, text: str, embedder: Embedder) -> Evidence:
    """Evidence for a passage that is not in the index: its sentences split and embedded as the index would."""
    spans = split_sentences(text)
    return make_evidence(n, text, spans, embedder.embed_documents([text[a:b] for a, b in spans]))


@dataclass(frozen=True)
class Verdict:
    """What the check found for one written sentence."""

    text: str  # the sentence without its [n] markers
    cited: tuple[int, ...]
    support: float = 0.0  # cosine to the closest sentence of a cited passage
    best: tuple[int, int, int] | None = None  # (n, start, end) of that sentence in passage n's text
    problem: str = ""  # why it fails; "" when it passes

    @property
    def passed(self) -> bool:
        return not self.problem


def support_level(sentence_language: str, passage_language: str) -> float:
    if sentence_language == passage_language != "unknown":
        return SUPPORT_LEVEL["same"]
    return SUPPORT_LEVEL["cross"]  # across languages, or when either cannot be told


def check(text: str, cited: Sequence[int], vector: np.ndarray, given: dict[int, Evidence]) -> Verdict:
    """The verdict on one sentence (``text`` without markers, ``vector`` its query embedding) citing
    ``cited`` among the ``given`` passages."""
    cited = tuple(dict.fromkeys(cited))
    if not cited:
        return Verdict(text, cited, problem="it cites no passage")
    unknown = [n for n in cited if n not in given]
    if unknown:
        listed = ", ".join(f"[{n}]" for n in unknown)
        return Verdict(text, cited, problem=f"it cites {listed}, which was not among the passages given")
    evidence = [given[n] for n in cited]
    language = question_language(text)
    # every evidence sentence of the cited passages: (cosine minus its level, cosine, n, start, end)
    close = sorted(
        ((float(c) - support_level(language, e.language), float(c), e.n, a, b)
         for e in evidence for c, (a, b) in zip(e.vectors @ vector, e.spans)),
        reverse=True,
    )
    if not close:
        return Verdict(text, cited, problem="the cited passages hold nothing it could rest on")
    margin, support, n, a, b = close[0]
    verdict = Verdict(text, cited, support, (n, a, b))
    statements = "\n".join(e.statements for e in evidence)
    numbers = missing_numbers(text, statements)
    if numbers:
        return replace(verdict, problem=f"no cited passage states {', '.join(numbers)}")
    names = missing_names(text, statements)
    if names:
        return replace(verdict, problem=f"no cited passage names {', '.join(names)}")
    if margin < 0:
        return replace(verdict, problem=f"it is not close enough in meaning to [{n}]")
    if NEGATION_CHECK:
        negated = is_negated(text)
        # the closest sentences that are close enough: one of them must agree on the negation
        agreeing = [c for c in close if c[0] >= 0 and is_negated(given[c[2]].text[c[3] : c[4]]) == negated]
        if not agreeing:
            return replace(verdict, problem=f"it says the opposite of [{n}]")
        _, support, n, a, b = agreeing[0]
        verdict = replace(verdict, support=support, best=(n, a, b))
    return verdict


def check_all(
    sentences: Sequence[tuple[str, tuple[int, ...]]], given: dict[int, Evidence], embedder: Embedder
) -> list[Verdict]:
    """The verdict on each (sentence, cited passages) pair; one query embedding per sentence."""
    return [check(text, cited, embedder.embed_query(text), given) for text, cited in sentences]
