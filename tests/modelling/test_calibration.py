"""Calibration maps: scikit-learn's numbers, chosen and fitted on no test day, and what a
band of probability has meant."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from pipelines.modelling import calibration as cal
from pipelines.modelling.features import Split
from pipelines.modelling.results import Evaluation, ModelResult
from pipelines.modelling.select import leaderboard
from tests.support.stages import evaluation_settings


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts that know something but say it too loudly: the truth is P(up) = 0.5 +
    (p - 0.5) / 3."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < 0.5 + (p - 0.5) / 3).astype(int)
    return p, y


def test_the_maps_give_scikit_learns_numbers():
    p, y = overconfident(400, 1)
    fresh = np.linspace(0.0, 1.0, 57)
    isotonic = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    np.testing.assert_allclose(cal.apply_map(cal.fit_map("isotonic", p, y), fresh),
                               isotonic.predict(fresh), atol=1e-12)
    logit = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    platt = LogisticRegression(C=np.inf, max_iter=1000).fit(logit.reshape(-1, 1), y)
    fresh_logit = np.log(np.clip(fresh, 1e-6, 1 - 1e-6) / (1 - np.clip(fresh, 1e-6, 1 - 1e-6)))
    np.testing.assert_allclose(cal.apply_map(cal.fit_map("platt", p, y), fresh),
                               platt.predict_proba(fresh_logit.reshape(-1, 1))[:, 1], atol=1e-9)
    assert cal.fit_map("platt", p, y)["slope"] < 0.7  # it shrinks the overconfident odds
    np.testing.assert_array_equal(cal.apply_map({"method": "none"}, fresh), fresh)
    mapping = cal.fit_map("isotonic", p, y)
    assert json.loads(json.dumps(mapping)) == mapping  # the artifact carries plain numbers
    assert cal.fit_map("platt", p, np.ones_like(y))["method"] == "none"  # one class: nothing


def test_the_check_keeps_none_unless_a_map_does_strictly_better():
    p, y = overconfident(600, 2)
    method, check = cal.choose_method(p, y)
    assert method in ("platt", "isotonic") and check["halves"] == [300, 300]
    assert check["scores"][method]["brier"] < check["scores"]["none"]["brier"]
    calibrated = np.clip(0.5 + (p - 0.5) / 3, 0, 1)  # already calibrated: a map only adds noise
    rng = np.random.default_rng(3)
    truth = (rng.uniform(size=len(p)) < calibrated).astype(int)
    kept, _ = cal.choose_method(np.full(len(p), truth.mean()), truth)
    assert kept == "none"
    few, note = cal.choose_method(p[:30], y[:30])
    assert few == "none" and "too few" in note["note"]


def test_the_expected_calibration_error_and_the_bands_count_every_day():
    p = np.array([0.05, 0.15, 0.62, 0.68, 0.64, 0.99, 1.0])
    y = np.array([0, 1, 1, 1, 0, 1, 1])
    bands = cal.reliability(p, y)
    assert sum(band["n"] for band in bands) == len(p)
    assert bands[6] | {"interval": None} == {"low": 0.6, "high": 0.7, "n": 3, "up": 2,
                                             "share": 2 / 3, "interval": None,
                                             "mean_predicted": pytest.approx(0.64666667)}
    low, high = bands[6]["interval"]
    assert low < 2 / 3 < high
    assert bands[9]["n"] == 2 and bands[3]["share"] is None and bands[3]["interval"] is None
    # by hand: bands 0 (0.05 vs 0), 1 (0.15 vs 1), 6 (0.6467 vs 0.6667), 9 (0.995 vs 1)
    expected = (0.05 + 0.85 + 3 * abs(np.mean([0.62, 0.68, 0.64]) - 2 / 3) + 2 * 0.005) / 7
    assert cal.expected_calibration_error(p, y) == pytest.approx(expected)
    assert cal.wilson_interval(0, 0) is None and cal.wilson_interval(5, 5)[1] == 1.0


def _evaluation(test_labels: np.ndarray | None = None) -> Evaluation:
    """One overconfident model and persistence-like baseline on 400 validation and 200 test
    days; ``test_labels`` replaces the test days' outcomes."""
    p, y = overconfident(600, 4)
    if test_labels is not None:
        y = y.copy()
        y[400:] = test_labels
    days = np.arange(600)
    val, test = days[:400], days[400:]
    results = {
        "net": ModelResult("net", "network", p[val], p[test]),
        "persistence": ModelResult("persistence", "baseline", np.roll(p, 1)[val],
                                   np.roll(p, 1)[test]),
    }
    return Evaluation(pd.bdate_range("2020-01-01", periods=600), y.astype(float),
                      Split(days[:0], val, test), val, test, results,
                      evaluation_settings(bootstrap_samples=50, combinations={}))


def test_no_map_nor_the_choice_of_one_is_fitted_on_a_test_day():
    board = leaderboard(_evaluation(), "auto")
    flipped = 1 - _evaluation().labels[400:].astype(int)  # every test outcome the other way
    again = leaderboard(_evaluation(flipped), "auto")
    assert board.champion == again.champion == "net"
    assert board.calibration["method"] in ("platt", "isotonic")
    assert again.calibration["map"] == board.calibration["map"]
    assert again.calibration["method"] == board.calibration["method"]
    assert again.calibration["check"] == board.calibration["check"]
    assert again.calibration["reliability"]["validation"] == (
        board.calibration["reliability"]["validation"])
    # the test-day figures do follow the test days: the check above could fail
    assert again.models["net"].calibration != board.models["net"].calibration
    assert again.calibration["reliability"]["test"] != board.calibration["reliability"]["test"]
    for row in board.models.values():  # every candidate, raw and through each map
        assert set(row.calibration) == {"none", "platt", "isotonic"}
        assert all(set(scores) == {"brier", "ece"} for scores in row.calibration.values())
    set_by_hand = leaderboard(_evaluation(), "isotonic").calibration
    assert set_by_hand["method"] == "isotonic" and set_by_hand["setting"] == "isotonic"
    assert leaderboard(_evaluation(), "none").calibration["map"] == {"method": "none"}
