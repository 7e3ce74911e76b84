"""Fit ``Answer.confidence`` (rag/query/confidence.py) on labelled question sets and check it on others.

    .venv/bin/python scripts/fit_confidence.py            # collect, fit, write rag/data/confidence.json, report
    .venv/bin/python scripts/fit_confidence.py --report   # only report the shipped model on the check sets

For every question of the sets, the five seeds are searched and answered with the real model; the label
is whether the answer's draft cites a passage that answers (a key phrase of the question set in a cited
passage of the right seed; unanswerable questions are 0). A logistic regression (scikit-learn) over the
decision's signals is fitted on ``FIT_SETS``; its decline threshold is the highest that keeps wrongly
declined answerable questions at or under ``MAX_WRONG_DECLINES`` of them, measured on leave-one-set-out
predictions (each fitting set predicted by a model fitted on the others). The ``CHECK_SETS`` are never
used for fitting: the report gives their figures and draws the reliability diagram (docs/reliability.png)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import rag  # noqa: E402
from rag import api, evaluate  # noqa: E402
from rag.query import compose, confidence, decide, reference  # noqa: E402
from rag.query.retrieve import fit_to_model, rank, validate_question  # noqa: E402
from rag.query.token_match import embed_question  # noqa: E402

DATA = REPO / "tests" / "data"
DEV = REPO.parent / "shared" / "eval" / "dev_qa.jsonl"
FIT_SETS = [DEV, *(DATA / f"{n}_qa.jsonl" for n in
                   ("own", "own2", "own3", "own4", "own5", "own7", "heldout", "decline_tune", "nat1", "nat2", "nat3", "nat4", "nat5", "nat6", "nat7"))]
CHECK_SETS = [DATA / f"{n}_qa.jsonl" for n in ("own6", "own8", "own9", "decline_check", "nat8", "nat9")]
FEATURES = ("margin", "best", "peak", "lexical", "token_match", "reference_gap", "quantity_missing", "top_gap", "en", "fr")
MAX_WRONG_DECLINES = 0.015  # of the answerable questions
C = 1.0  # the regression's inverse regularisation strength


def collect(paths: list[Path]) -> list[dict]:
    """One row per question: its set, kind, whether it is answerable, the signals and the label."""
    work = Path(tempfile.mkdtemp(prefix="fit-confidence-"))
    rows = []
    try:
        shutil.copytree(REPO / "seeds", work / "seeds")
        settings = rag.Settings(seeds_dir=work / "seeds", index_dir=work / "index")
        rag.build_index(settings=settings)
        embedder = rag.get_embedder(settings.model)
        reader = api._reader(settings, embedder)
        for path in paths:
            raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            for q, meta in zip(evaluate.load_questions(path), raw):
                text = fit_to_model(validate_question(q.q), embedder)
                vec, scorer = embed_question(embedder, text, api._stored_states(reader))
                ranked = rank(reader, text, vec, decide.BACKGROUND_POOL, scorer)
                draft = compose.compose(q.q, ranked[:5], found=True, confidence=1.0, reason="")
                signals = decide.signals(text, ranked, reference.closest(embedder, vec), [c.quote for c in draft.citations])
                cited = q.source is not None and any(evaluate.is_hit(q, c.source, c.text) for c in draft.citations)
                rows.append({"set": path.stem.removesuffix("_qa"), "kind": meta.get("kind", ""), "q": q.q,
                             "answerable": q.source is not None, "label": float(cited), "signals": asdict(signals)})
            print(f"  {path.name}: {len(raw)} questions", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def matrix(rows: list[dict], features=FEATURES) -> np.ndarray:
    return np.array([[confidence.feature(decide.Signals(**r["signals"]), f) for f in features] for r in rows])


def fit(rows: list[dict], features=FEATURES):
    from sklearn.linear_model import LogisticRegression

    x, y = matrix(rows, features), np.array([r["label"] for r in rows])
    mean, scale = x.mean(0), x.std(0) + 1e-9
    lr = LogisticRegression(C=C, max_iter=5000).fit((x - mean) / scale, y)
    return mean, scale, lr.coef_[0], float(lr.intercept_[0]), x.min(0), x.max(0)


def probabilities(rows: list[dict], mean, scale, coef, intercept, low=None, high=None, features=FEATURES) -> np.ndarray:
    """As ``ConfidenceModel.probability``: each signal held within the fitting range (``low``..``high``)."""
    x = matrix(rows, features)
    if low is not None:
        x = np.clip(x, low, high)
    z = ((x - mean) / scale) @ coef + intercept
    return 1 / (1 + np.exp(-z))


def leave_one_set_out(rows: list[dict]) -> np.ndarray:
    p = np.zeros(len(rows))
    for name in sorted({r["set"] for r in rows}):
        inside = [i for i, r in enumerate(rows) if r["set"] != name]
        outside = [i for i, r in enumerate(rows) if r["set"] == name]
        p[outside] = probabilities([rows[i] for i in outside], *fit([rows[i] for i in inside]))
    return p


def choose_threshold(rows: list[dict], p: np.ndarray) -> float:
    answerable = np.array([r["answerable"] for r in rows])
    forced = np.array([r["signals"]["quantity_missing"] for r in rows])
    allowed = MAX_WRONG_DECLINES * answerable.sum()
    best = 0.05
    for tau in np.arange(0.05, 0.951, 0.01):
        wrong = ((p < tau) | forced)[answerable].sum()
        if wrong <= allowed:
            best = float(round(tau, 2))
    return best


def calibration(rows: list[dict], p: np.ndarray, threshold: float) -> dict:
    """Figures over the answered questions (found): the calibration error in 10 bins, the precision and
    coverage (of the answerable questions) at confidence >= 0.9, declines, and the bins for the diagram."""
    y = np.array([r["label"] for r in rows])
    answerable = np.array([r["answerable"] for r in rows])
    forced = np.array([r["signals"]["quantity_missing"] for r in rows])
    found = (p >= threshold) & ~forced
    bins = np.minimum((p * 10).astype(int), 9)
    ece, table = 0.0, []
    for b in range(10):
        m = found & (bins == b)
        if m.any():
            ece += m.sum() / max(1, found.sum()) * abs(y[m].mean() - p[m].mean())
            table.append((b, int(m.sum()), float(p[m].mean()), float(y[m].mean())))
    high = found & (p >= 0.9)
    return {
        "questions": len(rows), "answered": int(found.sum()), "ece": float(ece),
        "precision_at_0.9": float(y[high].mean()) if high.any() else None,
        "coverage_at_0.9": float(y[high].sum() / max(1, answerable.sum())),
        "declined": f"{int((~found & ~answerable).sum())}/{int((~answerable).sum())}",
        "wrongly_declined": f"{int((~found & answerable).sum())}/{int(answerable.sum())}",
        "cited_right": float((found & (y == 1)).sum() / max(1, answerable.sum())),
        "bins": table,
    }


def diagram(path: Path, curves: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    for label, figures in curves.items():
        xs = [mean for _, _, mean, _ in figures["bins"]]
        ys = [right for _, _, _, right in figures["bins"]]
        sizes = [12 + 3 * n for _, n, _, _ in figures["bins"]]
        ax.plot(xs, ys, marker="o", lw=1, label=f"{label} (ECE {figures['ece']:.3f})")
        ax.scatter(xs, ys, s=sizes, alpha=0.3)
    ax.set_xlabel("confidence (mean of the bin)")
    ax.set_ylabel("share of answers citing a passage that answers")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Reliability of Answer.confidence (answered questions)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", action="store_true", help="report the shipped model only")
    ap.add_argument("--cache", type=Path, help="keep the collected rows in this JSON file (and reuse it)")
    ap.add_argument("--check", nargs="*", type=Path, help="check sets (default: the ones named in the script)")
    args = ap.parse_args(argv)
    check_paths = args.check or CHECK_SETS
    if args.cache and args.cache.is_file():
        cached = json.loads(args.cache.read_text())
    else:
        cached = {"fit": collect(FIT_SETS), "check": {}}
    missing = [p for p in check_paths if p.stem.removesuffix("_qa") not in cached["check"]]
    for row in collect(missing) if missing else []:
        cached["check"].setdefault(row["set"], []).append(row)
    if args.cache:
        args.cache.write_text(json.dumps(cached))
    fit_rows = cached["fit"]
    check_rows = [r for p in check_paths for r in cached["check"][p.stem.removesuffix("_qa")]]
    if not args.report:
        mean, scale, coef, intercept, low, high = fit(fit_rows)
        threshold = choose_threshold(fit_rows, leave_one_set_out(fit_rows))
        model = {"features": list(FEATURES), "mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(),
                 "intercept": intercept, "threshold": threshold,
                 "fitted_on": sorted({r["set"] for r in fit_rows}), "low": low.tolist(), "high": high.tolist()}
        confidence.MODEL_FILE.write_text(json.dumps(model, indent=2) + "\n")
        confidence.model.cache_clear()
        print(json.dumps({k: v for k, v in model.items() if k in ("features", "coef", "threshold")}, indent=1))
    shipped = confidence.model()
    params = (np.array(shipped.mean), np.array(shipped.scale), np.array(shipped.coef), shipped.intercept,
              np.array(shipped.low) if shipped.low else None, np.array(shipped.high) if shipped.high else None)
    curves = {}
    cv = leave_one_set_out(fit_rows)
    curves["fitting sets (each left out in turn)"] = calibration(fit_rows, cv, shipped.threshold)
    curves["check sets (never fitted on)"] = calibration(check_rows, probabilities(check_rows, *params), shipped.threshold)
    for name in sorted({r["set"] for r in check_rows}):
        part = [r for r in check_rows if r["set"] == name]
        print(name, json.dumps({k: v for k, v in calibration(part, probabilities(part, *params), shipped.threshold).items()
                                if k != "bins"}))
    for label, figures in curves.items():
        print(label, json.dumps({k: v for k, v in figures.items() if k != "bins"}))
    diagram(REPO / "docs" / "reliability.png", curves)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
