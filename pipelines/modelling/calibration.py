"""What a probability of up has meant: calibration maps, their check, reliability bands.

A model's P(up) is not taken at face value. ``fit_map`` fits a calibration map from raw
to calibrated probability on some days' forecasts and outcomes: ``none`` (the identity),
``platt`` (a logistic regression on the log-odds, Platt 1999) or ``isotonic`` (a
non-decreasing step function, Zadrozny & Elkan 2002); ``apply_map`` applies it. A map is
plain numbers (JSON), so the model artifact carries it.

The select stage fits maps on the walk-forward's validation days only, never on a test
day: ``choose_method`` picks the default by a check that uses no test day (each map fitted
on the first half of the validation days, in time order, and scored on the second half by
the Brier score); a map must score strictly better than ``none`` to be chosen, since on a
later span a map can make things worse. ``scores_on_test_days`` gives each method's Brier score
and expected calibration error on the test days, maps fitted on the validation days.

``reliability`` counts, per band of probability (ten bands of 0.1), how many days fell in
it and how many of them went up, with a Wilson interval: beside tomorrow's P(up), how
often the champion's out-of-sample forecasts in that band went up.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

METHODS = ("none", "platt", "isotonic")
BANDS = 10  # equal-width bands of P(up): 0-0.1, .., 0.9-1
EDGE = 1e-6  # probabilities are clipped to [EDGE, 1 - EDGE] before the log-odds
MIN_CHECK_DAYS = 20  # per half of the validation days: fewer, and the check keeps none


def _arrays(proba: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(proba, dtype="float64").reshape(-1)
    y = np.asarray(labels, dtype="float64").reshape(-1)
    if len(p) != len(y):
        raise ValueError(f"calibration: {len(p)} probabilities for {len(y)} outcomes")
    return p, y


def _log_odds(proba: np.ndarray) -> np.ndarray:
    p = np.clip(proba, EDGE, 1 - EDGE)
    return np.log(p / (1 - p))


def fit_map(method: str, proba: Any, labels: Any) -> dict[str, Any]:
    """A calibration map of ``method`` fitted on these forecasts and outcomes (0/1).

    Returns ``{"method": "none"}``, ``{"method": "platt", "slope", "intercept"}`` (P' =
    sigmoid(slope * logit(P) + intercept)) or ``{"method": "isotonic", "x", "y"}`` (the
    step function's knots, linear between them, flat beyond). With outcomes of one class
    only, or fewer than two days, there is nothing to fit: the identity, ``{"method":
    "none", "note": ...}``.
    """
    if method not in METHODS:
        raise ValueError(f"calibration: expected one of {', '.join(METHODS)}, got {method!r}")
    p, y = _arrays(proba, labels)
    if method == "none":
        return {"method": "none"}
    if len(y) < 2 or len(np.unique(y)) < 2:
        return {"method": "none", "note": f"{method} not fitted: outcomes of one class"}
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=math.inf, max_iter=1000).fit(
            _log_odds(p).reshape(-1, 1), y.astype("int64"))
        return {"method": "platt", "slope": float(model.coef_[0][0]),
                "intercept": float(model.intercept_[0])}
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return {"method": "isotonic", "x": [float(v) for v in model.X_thresholds_],
            "y": [float(v) for v in model.y_thresholds_]}


def apply_map(mapping: dict[str, Any], proba: Any) -> np.ndarray:
    """``proba`` through the map ``fit_map`` made (the same numbers as scikit-learn's
    ``predict_proba`` / ``predict`` on the fitted model)."""
    p = np.asarray(proba, dtype="float64").reshape(-1)
    method = mapping["method"]
    if method == "none":
        return p.copy()
    if method == "platt":
        z = mapping["slope"] * _log_odds(p) + mapping["intercept"]
        return 1.0 / (1.0 + np.exp(-z))
    if method == "isotonic":
        x, y = np.asarray(mapping["x"]), np.asarray(mapping["y"])
        return y.repeat(len(p)) if len(x) == 1 else np.interp(p, x, y)
    raise ValueError(f"calibration: a map of unknown method {method!r}")


def brier(proba: Any, labels: Any) -> float:
    p, y = _arrays(proba, labels)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(proba: Any, labels: Any, bands: int = BANDS) -> float:
    """Sum over bands of P(up) of (the band's share of days) x |mean P - share of ups|."""
    p, y = _arrays(proba, labels)
    which = band_of(p, bands)
    error = 0.0
    for band in np.unique(which):
        inside = which == band
        error += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    return float(error)


def scores(proba: Any, labels: Any) -> dict[str, float]:
    """The Brier score and the expected calibration error of these forecasts."""
    return {"brier": brier(proba, labels), "ece": expected_calibration_error(proba, labels)}


def choose_method(proba: Any, labels: Any, methods: tuple[str, ...] = METHODS
                  ) -> tuple[str, dict[str, Any]]:
    """(the method, the check): each map fitted on the first half of these days (the
    validation days, in time order) and scored on the second half; the lowest Brier score
    wins, and a map must beat ``none`` strictly (``none`` on a tie). Fewer than
    ``MIN_CHECK_DAYS`` days a half: ``none``, the check says why."""
    p, y = _arrays(proba, labels)
    half = len(p) // 2
    if half < MIN_CHECK_DAYS:
        return "none", {"note": f"{len(p)} validation days: too few to check a map "
                                f"(at least {2 * MIN_CHECK_DAYS})", "halves": [half, len(p) - half]}
    check = {method: scores(apply_map(fit_map(method, p[:half], y[:half]), p[half:]),
                            y[half:]) for method in methods}
    best = min(methods, key=lambda method: (check[method]["brier"], method != "none"))
    if check[best]["brier"] >= check["none"]["brier"]:
        best = "none"
    return best, {"halves": [half, len(p) - half], "scores": check}


def scores_on_test_days(validation: tuple[Any, Any], test: tuple[Any, Any],
                methods: tuple[str, ...] = METHODS) -> dict[str, dict[str, float]]:
    """Each method's Brier score and calibration error on the test days (``test``: the
    probabilities and outcomes), its map fitted on the ``validation`` days only."""
    (p_val, y_val), (p_test, y_test) = validation, test
    return {method: scores(apply_map(fit_map(method, p_val, y_val), p_test), y_test)
            for method in methods}


def band_of(proba: Any, bands: int = BANDS) -> np.ndarray:
    """The band of each probability: 0 for [0, 0.1), .., 9 for [0.9, 1]."""
    p = np.clip(np.asarray(proba, dtype="float64").reshape(-1), 0.0, 1.0)
    return np.minimum((p * bands).astype(int), bands - 1)


def wilson_interval(ups: int, n: int, z: float = 1.96) -> list[float] | None:
    """The Wilson score interval (95 % by default) of a share of ``ups`` in ``n``."""
    if n == 0:
        return None
    share = ups / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def reliability(proba: Any, labels: Any, bands: int = BANDS) -> list[dict[str, Any]]:
    """For each band of P(up): ``low``, ``high``, ``n`` (days in it), ``up`` (those that
    went up), ``share`` (None when empty), its Wilson ``interval``, and ``mean_predicted``
    (the band's mean P(up), None when empty)."""
    p, y = _arrays(proba, labels)
    which = band_of(p, bands)
    rows = []
    for band in range(bands):
        inside = which == band
        n, ups = int(inside.sum()), int(y[inside].sum())
        rows.append({"low": band / bands, "high": (band + 1) / bands, "n": n, "up": ups,
                     "share": ups / n if n else None, "interval": wilson_interval(ups, n),
                     "mean_predicted": float(np.clip(p[inside], 0, 1).mean()) if n else None})
    return rows
