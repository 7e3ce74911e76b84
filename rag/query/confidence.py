"""``Answer.confidence``: the probability that the answer cites a passage that answers the question.

A logistic regression over the decision's signals (``decide.Signals``), fitted on labelled question
sets by ``scripts/fit_confidence.py`` (scikit-learn) and checked on sets never used for fitting; the
fitted numbers live in ``rag/data/confidence.json`` with the names of the sets they came from, and
applying them needs only NumPy. The decision declines below the model's ``threshold``, itself chosen
on the fitting sets (docs/quality.md has the reliability diagram and the calibration error)."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = Path(__file__).resolve().parent.parent / "data" / "confidence.json"


@dataclass(frozen=True)
class ConfidenceModel:
    features: tuple[str, ...]  # names of Signals fields (booleans count as 0/1; "en"/"fr" are the language)
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float  # questions whose probability is below are declined
    fitted_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (n and len(self.mean) == len(self.scale) == len(self.coef) == n and 0.0 < self.threshold < 1.0):
            raise ValueError("the confidence model's numbers do not fit together")

    def probability(self, signals) -> float:
        z = self.intercept
        for name, mu, sd, w in zip(self.features, self.mean, self.scale, self.coef):
            z += w * (feature(signals, name) - mu) / sd
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    @classmethod
    def from_json(cls, raw: str) -> ConfidenceModel:
        d = json.loads(raw)
        return cls(
            features=tuple(d["features"]), mean=tuple(d["mean"]), scale=tuple(d["scale"]), coef=tuple(d["coef"]),
            intercept=float(d["intercept"]), threshold=float(d["threshold"]), fitted_on=tuple(d.get("fitted_on", ())),
        )


def feature(signals, name: str) -> float:
    if name in ("en", "fr"):
        return float(signals.lang == name)
    return float(getattr(signals, name))


@functools.cache
def model() -> ConfidenceModel:
    """The fitted model shipped with the package (read once per process)."""
    return ConfidenceModel.from_json(MODEL_FILE.read_text(encoding="utf-8"))
