"""Score retrieval and answers on a question set (JSON lines: q, source, keys)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .query.compose import asks_why_or_how
from .types import Answer, Hit


@dataclass(frozen=True)
class EvalQuestion:
    q: str
    source: str | None
    keys: list[str]
    lang: str = ""


@dataclass(frozen=True)
class EvalResult:
    questions: int
    answerable: int
    recall_at: dict[int, float]
    mrr: float
    cited_right: float  # share of answerable questions whose answer cites a hit
    quoted_right: float  # stricter: share whose quoted sentences themselves hold a key phrase
    declined: int  # unanswerable questions declined
    unanswerable: int
    wrongly_declined: int
    misses: list[dict] = field(default_factory=list)
    # calibration of Answer.confidence over the answered questions (found): the expected calibration error
    # in 10 bins, and among answers given with confidence >= 0.9, the share right and the share of the
    # answerable questions they cover ("right": the answer cites a passage that answers)
    answered: int = 0
    calibration_error: float = 0.0
    precision_at_90: float | None = None
    coverage_at_90: float = 0.0
    why_how: int = 0  # answerable questions asking why or how
    why_how_quoted_right: float = 0.0  # the share of them whose quoted sentences hold a key phrase


def normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u00a0", " ").replace("\u202f", " ")
    return " ".join(text.split())


def load_questions(path: Path) -> list[EvalQuestion]:
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the question file {path}: {exc.strerror or exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out.append(EvalQuestion(q=d["q"], source=d.get("source"), keys=list(d.get("keys") or []), lang=d.get("lang", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{n}: not a question record ({exc})") from exc
    if not out:
        raise ConfigError(f"{path} holds no question")
    return out


def is_hit(q: EvalQuestion, source: str, text: str) -> bool:
    if q.source is None or Path(source).name != Path(q.source).name:
        return False
    body = normalise(text)
    return any(normalise(k) in body for k in q.keys)


def first_hit_rank(q: EvalQuestion, hits: list[Hit]) -> int | None:
    for rank, h in enumerate(hits, 1):
        if is_hit(q, h.source, h.text):
            return rank
    return None


def score(questions: list[EvalQuestion], searches: list[list[Hit]], answers: list[Answer], ks=(1, 5, 10)) -> EvalResult:
    answerable = [i for i, q in enumerate(questions) if q.source]
    unanswerable = [i for i, q in enumerate(questions) if not q.source]
    ranks = {i: first_hit_rank(questions[i], searches[i]) for i in answerable}
    n = max(1, len(answerable))
    recall = {k: sum(1 for i in answerable if ranks[i] and ranks[i] <= k) / n for k in ks}
    mrr = sum(1 / ranks[i] for i in answerable if ranks[i] and ranks[i] <= 10) / n
    cited = {i for i in answerable if any(is_hit(questions[i], c.source, c.text) for c in answers[i].citations)}
    quoted = {i for i in answerable if any(is_hit(questions[i], c.source, c.quote) for c in answers[i].citations)}
    misses = []
    for i in answerable:
        if ranks[i] != 1 or i not in cited or not answers[i].found:
            top = searches[i][0] if searches[i] else None
            misses.append(
                {
                    "q": questions[i].q,
                    "rank": ranks[i],
                    "cited": i in cited,
                    "found": answers[i].found,
                    "top": f"{top.source}:{top.start}" if top else None,
                    "reason": answers[i].reason,
                }
            )
    for i in unanswerable:
        if answers[i].found:
            misses.append({"q": questions[i].q, "rank": None, "cited": False, "found": True, "reason": answers[i].reason})
    right = {i for i in cited if answers[i].found}
    answered = [i for i in range(len(questions)) if answers[i].found]
    ece = 0.0
    for b in range(10):
        in_bin = [i for i in answered if min(int(answers[i].confidence * 10), 9) == b]
        if in_bin:
            accuracy = sum(1 for i in in_bin if i in right) / len(in_bin)
            mean = sum(answers[i].confidence for i in in_bin) / len(in_bin)
            ece += len(in_bin) / len(answered) * abs(accuracy - mean)
    confident = [i for i in answered if answers[i].confidence >= 0.9]
    why_how = [i for i in answerable if asks_why_or_how(questions[i].q)]
    return EvalResult(
        answered=len(answered),
        calibration_error=ece,
        precision_at_90=sum(1 for i in confident if i in right) / len(confident) if confident else None,
        coverage_at_90=sum(1 for i in confident if i in right) / n,
        why_how=len(why_how),
        why_how_quoted_right=sum(1 for i in why_how if i in quoted and answers[i].found) / max(1, len(why_how)),
        questions=len(questions),
        answerable=len(answerable),
        recall_at=recall,
        mrr=mrr,
        cited_right=len(cited) / n,
        quoted_right=len(quoted) / n,
        declined=sum(1 for i in unanswerable if not answers[i].found),
        unanswerable=len(unanswerable),
        wrongly_declined=sum(1 for i in answerable if not answers[i].found),
        misses=misses,
    )


def run(path: Path, search_fn, answer_fn, k: int = 10) -> EvalResult:
    questions = load_questions(path)
    searches = [search_fn(q.q, k) for q in questions]
    answers = [answer_fn(q.q) for q in questions]
    return score(questions, searches, answers)


def format_table(r: EvalResult) -> str:
    lines = [
        f"questions        {r.questions} ({r.answerable} answerable, {r.unanswerable} unanswerable)",
        *(f"recall@{k:<8} {v:.3f}" for k, v in r.recall_at.items()),
        f"MRR@10           {r.mrr:.3f}",
        f"cited right      {r.cited_right:.3f}",
        f"quoted right     {r.quoted_right:.3f}",
        f"declined         {r.declined}/{r.unanswerable} unanswerable",
        f"wrongly declined {r.wrongly_declined}/{r.answerable} answerable",
        f"why/how quoted   {r.why_how_quoted_right:.3f} of {r.why_how} why/how questions",
        f"calibration      error {r.calibration_error:.3f} over {r.answered} answered; confidence >= 0.9: "
        + (f"{r.precision_at_90:.3f} right" if r.precision_at_90 is not None else "none")
        + f", covering {r.coverage_at_90:.3f} of the answerable",
    ]
    if r.misses:
        lines.append("misses:")
        for m in r.misses:
            lines.append(f"  - {m['q']}  (rank {m['rank']}, cited {m['cited']}, found {m['found']}; {m.get('reason', '')})")
    return "\n".join(lines)
