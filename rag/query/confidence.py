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
    # Each signal is held within the range the fitting questions covered before it is weighed: a linear
    # model extrapolates without bound, and a question copied word for word from a passage stands out more
    # than any fitting question did (its peak weighs against it, being collinear with the margin).
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (n and len(self.mean) == len(self.scale) == len(self.coef) == n and 0.0 < self.threshold < 1.0):
            raise ValueError("the confidence model's numbers do not fit together")
        if (self.low or self.high) and not (len(self.low) == len(self.high) == n
                                            and all(a <= b for a, b in zip(self.low, self.high))):
            raise ValueError("the confidence model's ranges do not fit its features")

    def probability(self, signals) -> float:
        z = self.intercept
        low, high = self.low or (-math.inf,) * len(self.features), self.high or (math.inf,) * len(self.features)
        for name, mu, sd, w, a, b in zip(self.features, self.mean, self.scale, self.coef, low, high):
            z += w * (min(b, max(a, feature(signals, name))) - mu) / sd
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    @classmethod
    def from_json(cls, raw: str) -> ConfidenceModel:
        d = json.loads(raw)
        return cls(
            features=tuple(d["features"]), mean=tuple(d["mean"]), scale=tuple(d["scale"]), coef=tuple(d["coef"]),
            intercept=float(d["intercept"]), threshold=float(d["threshold"]), fitted_on=tuple(d.get("fitted_on", ())),
            low=tuple(d.get("low", ())), high=tuple(d.get("high", ())),
        )


def feature(signals, name: str) -> float:
    if name in ("en", "fr"):
        return float(signals.lang == name)
    return float(getattr(signals, name))


@functools.cache
def model() -> ConfidenceModel:
    """The fitted model shipped with the package (read once per process)."""
    return ConfidenceModel.from_json(MODEL_FILE.read_text(encoding="utf-8"))
