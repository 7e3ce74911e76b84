"""Fit the grounding check's similarity levels and measure the whole check on labelled pairs.

    .venv/bin/python scripts/grounding_threshold.py [tests/data/grounding_pairs.jsonl] [--no-negation]

Each pair is (sentence, passage, supported?). The pairs are split in two by passage (a sha256 of its text,
so that a passage's faithful and altered sentences stay on one side): on the fitting half, each
language pairing's level (same language, across languages) is the cosine that classifies best with the
other checks (facts, negation) in place; the other half and the whole set are then scored once with the
levels fitted. Precision and recall are those of keeping a sentence: precision = kept sentences that are
supported, recall = supported sentences kept. The levels to put in rag/query/grounding.py are printed."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rag  # noqa: E402
from rag.query import grounding  # noqa: E402
from rag.query.lexical import question_language  # noqa: E402

PAIRS = Path(__file__).resolve().parent.parent / "tests" / "data" / "grounding_pairs.jsonl"


@dataclass(frozen=True)
class Scored:
    row: dict
    half: str  # "fit" or "test"
    pairing: str  # "same" or "cross"
    support: float  # cosine to the closest passage sentence
    other_problem: str  # what the checks other than similarity found ("" when none)


def half_of(passage: str) -> str:
    return "fit" if int(hashlib.sha256(passage.encode("utf-8")).hexdigest()[:8], 16) % 2 == 0 else "test"


def score_pairs(rows: list[dict], negation: bool) -> list[Scored]:
    embedder = rag.get_embedder()
    grounding.NEGATION_CHECK = negation
    # every level at -1: the verdict then reports only what the other checks find
    grounding.SUPPORT_LEVEL = {"same": -1.0, "cross": -1.0}
    passages = {p: grounding.evidence_from_text(1, p, embedder) for p in sorted({r["passage"] for r in rows})}
    out = []
    for r in rows:
        evidence = passages[r["passage"]]
        verdict = grounding.check(r["sentence"], (1,), embedder.embed_query(r["sentence"]), {1: evidence})
        same = question_language(r["sentence"]) == evidence.language != "unknown"
        out.append(Scored(r, half_of(r["passage"]), "same" if same else "cross", verdict.support, verdict.problem))
    return out


def kept(s: Scored, levels: dict[str, float]) -> bool:
    return not s.other_problem and s.support >= levels[s.pairing]


def fit_level(scored: list[Scored], pairing: str) -> float:
    """The level with the fewest errors on these pairs (ties: the middle of the best run of candidates)."""
    mine = [s for s in scored if s.pairing == pairing]
    candidates = sorted({round(s.support, 4) for s in mine}) + [1.0]
    errors = [sum(kept(s, {pairing: c}) != s.row["supported"] for s in mine) for c in candidates]
    best = min(errors)
    run = [c for c, e in zip(candidates, errors) if e == best]
    # the midpoint between the best candidate and the supports just below it
    low = max((s.support for s in mine if s.support < run[0]), default=run[0] - 0.01)
    return round((low + run[0]) / 2, 3)


def report(name: str, scored: list[Scored], levels: dict[str, float]) -> dict:
    tp = sum(kept(s, levels) and s.row["supported"] for s in scored)
    fp = sum(kept(s, levels) and not s.row["supported"] for s in scored)
    fn = sum(not kept(s, levels) and s.row["supported"] for s in scored)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    caught = Counter(s.row["kind"] for s in scored if not kept(s, levels))
    total = Counter(s.row["kind"] for s in scored)
    by_kind = {k: f"{caught[k]}/{total[k]}" for k in sorted(total)}
    print(f"{name:<22} n={len(scored):<4} precision {precision:.3f}  recall {recall:.3f}  "
          f"removed by kind: {', '.join(f'{k} {v}' for k, v in by_kind.items())}")
    return {"n": len(scored), "precision": precision, "recall": recall, "removed": by_kind}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pairs", nargs="?", default=str(PAIRS))
    ap.add_argument("--no-negation", action="store_true", help="measure without the negation check")
    args = ap.parse_args()
    rows = [json.loads(line) for line in Path(args.pairs).read_text(encoding="utf-8").splitlines() if line.strip()]
    scored = score_pairs(rows, negation=not args.no_negation)
    fit = [s for s in scored if s.half == "fit"]
    levels = {p: fit_level(fit, p) for p in ("same", "cross")}
    print(f"pairs: {len(rows)} ({sum(r['supported'] for r in rows)} supported); fitting half {len(fit)}, "
          f"negation check {'off' if args.no_negation else 'on'}")
    print(f"levels fitted on the fitting half: same language {levels['same']}, across languages {levels['cross']}")
    for pairing in ("same", "cross"):
        mine = [s for s in scored if s.pairing == pairing]
        for label in (True, False):
            x = np.array([s.support for s in mine if s.row["supported"] == label])
            print(f"  {pairing:<5} supported={label!s:<5} cosine min {x.min():.3f} median {np.median(x):.3f} max {x.max():.3f}")
    report("fitting half", fit, levels)
    report("other half (held out)", [s for s in scored if s.half == "test"], levels)
    report("all pairs", scored, levels)
    for lang in ("en", "fr"):
        report(f"all, {lang} sentences", [s for s in scored if s.row["lang"] == lang], levels)
    print("\nwrongly removed (supported) / wrongly kept (unsupported), all pairs:")
    for s in scored:
        if kept(s, levels) != s.row["supported"]:
            why = s.other_problem or f"cosine {s.support:.3f} < {levels[s.pairing]}"
            verdict = "kept" if kept(s, levels) else f"removed: {why}"
            print(f"  [{s.half}] {s.row['kind']:<13} {s.row['lang']} {verdict}: {s.row['sentence'][:110]}")


if __name__ == "__main__":
    main()
