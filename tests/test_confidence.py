"""Answer.confidence: a fitted model over the decision's signals, applied with NumPy only."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rag.query import confidence, decide

SIGNALS = decide.Signals(
    lang="en", best=0.84, peak=0.05, lexical=2.0, token_match=0.6, reference_gap=0.03, quantity_missing=False,
    top_gap=0.02, margin=0.05,
)


def test_the_shipped_model_reads_signals_it_knows():
    m = confidence.model()
    fields = {f.name for f in dataclasses.fields(decide.Signals)} | {"en", "fr"}
    assert set(m.features) <= fields
    assert 0 < m.threshold < 1 and m.fitted_on
    assert 0.0 < m.probability(SIGNALS) < 1.0


def test_confidence_rises_with_the_margin_and_falls_below_the_reference():
    m = confidence.model()
    low, high = (m.probability(dataclasses.replace(SIGNALS, margin=v)) for v in (-0.05, 0.15))
    assert low < high
    closer_to_an_everyday_sentence = dataclasses.replace(SIGNALS, reference_gap=-0.05)
    assert m.probability(closer_to_an_everyday_sentence) < m.probability(SIGNALS)


def test_a_model_whose_numbers_do_not_fit_is_refused():
    d = json.loads(confidence.MODEL_FILE.read_text())
    d["coef"] = d["coef"][:-1]
    with pytest.raises(ValueError):
        confidence.ConfidenceModel.from_json(json.dumps(d))
    d = json.loads(confidence.MODEL_FILE.read_text())
    d["threshold"] = 1.5
    with pytest.raises(ValueError):
        confidence.ConfidenceModel.from_json(json.dumps(d))


def test_the_decision_declines_below_the_threshold_with_the_probability_as_confidence(monkeypatch):
    m = confidence.model()
    monkeypatch.setattr(decide, "signals", lambda *a, **k: SIGNALS)
    p = m.probability(SIGNALS)
    found, conf, reason = decide.decide("a question?", [object()])
    assert conf == pytest.approx(p) and found == (p >= m.threshold) and f"{p:.2f}" in reason
    monkeypatch.setattr(decide, "signals", lambda *a, **k: dataclasses.replace(SIGNALS, quantity_missing=True))
    found, conf, _ = decide.decide("How many stores?", [object()])
    assert not found  # a quantity no quoted sentence states: declined whatever the probability


def test_signals_beyond_the_fitting_range_are_weighed_at_its_edge():
    """A question copied word for word from a passage stands out more than any fitting question did:
    without the range, the linear model's weight on the peak would extrapolate it into a decline."""
    m = confidence.model()
    assert m.low and m.high and len(m.low) == len(m.features)
    verbatim = dataclasses.replace(SIGNALS, lang="fr", best=1.0, peak=0.83, lexical=7.5, token_match=1.0,
                                   reference_gap=0.5, top_gap=0.5, margin=0.9)
    at_edge = dataclasses.replace(verbatim, **{f: m.high[m.features.index(f)] for f in
                                               ("best", "peak", "token_match", "reference_gap", "top_gap", "margin")})
    assert m.probability(verbatim) == pytest.approx(m.probability(at_edge))
    assert m.probability(verbatim) >= 0.9
    unbounded = dataclasses.replace(m, low=(), high=())
    assert unbounded.probability(verbatim) < m.threshold  # what the range prevents
    d = json.loads(confidence.MODEL_FILE.read_text())
    d["low"] = d["high"][:-1]
    with pytest.raises(ValueError):
        confidence.ConfidenceModel.from_json(json.dumps(d))
