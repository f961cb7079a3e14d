"""Baselines every model is compared with: majority class, always up, persistence, logistic.

Days are indices t = 0..n-1 over the merged trading days; ``close`` is the target's
close (length n) and ``y`` its labels (``features.make_labels``: y[t] = 1 if
close[t + 1] > close[t], NaN on the last day). A baseline is fitted on ``train_days``
(labelled days, all before the first of ``test_days``) and returns, for each of
``test_days``, the probability of "up" and the class (0/1), using only what is known
at the close of that day. A walk-forward evaluation calls ``run_baseline`` once per
refit block with that block's (train_days, test_days).

- majority: the share of ups among the training labels; class up when >= 0.5.
- always_up: probability 1 - 1e-6, class up.
- persistence: the class is the direction of the move into day t (close[t] >
  close[t - 1]; day 0 has no move and counts as up). Its probability is calibrated on
  the training days: P(next move up | move into the day up), and the same given down,
  with add-one smoothing. Without training days it is 0.99 / 0.01. The class is the
  rule, not a threshold of the probability: in a rising market P(up | down) may exceed
  0.5, so score persistence's classes with ``classification_metrics(..., y_pred=cls)``.
- logistic: logistic regression on the last ``lags`` daily log returns known at day t.
- logistic_window: the strong linear baseline: a logistic regression (L2, ``C`` = 1) on
  the same window of features the networks read (the last ``window`` days of the
  feature set), standardised on the training rows only, class up when P(up) >= 0.5.
  On TEDPIX 2008-2019 with [log return, range / close, close's place in the range] and a
  10-day window it reaches a test MCC of about 0.27, where the 5-return one predicts "up"
  every day: a network that cannot beat it is not worth promoting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from pipelines.modelling.features import FeatureTable, make_labels, windows
from pipelines.modelling.metrics import PROBA_CLIP
from pipelines.modelling.walkforward import Blocks

BASELINES = ("majority", "always_up", "persistence", "logistic", "logistic_window")
PERSISTENCE_CONFIDENCE = 0.99  # uncalibrated persistence: P(up) when the move in was up


def _days(days: np.ndarray, n: int, name: str) -> np.ndarray:
    days = np.asarray(days).reshape(-1)
    if days.size and (not np.issubdtype(days.dtype, np.integer)
                      or days.min() < 0 or days.max() >= n):
        raise ValueError(f"{name}: expected day indices within 0..{n - 1}")
    return days.astype("int64")


def _training_labels(y: np.ndarray, train_days: np.ndarray, test_days: np.ndarray
                     ) -> np.ndarray:
    """The labels of ``train_days``; unlabelled or not-before-the-test days are an error."""
    labels = np.asarray(y, dtype="float64")[train_days]
    if np.isnan(labels).any():
        raise ValueError("train_days: every training day needs a label (not the last day)")
    if train_days.size and test_days.size and train_days.max() >= test_days.min():
        raise ValueError(f"train_days must all precede the first test day {test_days.min()}, "
                         f"got a training day {train_days.max()}")
    return labels


def majority(y_train: np.ndarray) -> float:
    """The share of ups (1s) among the training labels: the majority baseline's P(up)."""
    y_train = np.asarray(y_train, dtype="float64")
    if y_train.size == 0 or np.isnan(y_train).any():
        raise ValueError("majority: expected at least one training label and no NaN")
    return float(y_train.mean())


def always_up(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P(up) = 1 - 1e-6 and class 1 for each of ``n`` days."""
    return np.full(n, 1 - PROBA_CLIP), np.ones(n, dtype="int64")


def moved_up(close: np.ndarray) -> np.ndarray:
    """1 where close[t] > close[t - 1], else 0; day 0 (no move) is 1, the usual direction."""
    close = np.asarray(close, dtype="float64")
    moves = np.ones(close.shape, dtype="int64")
    moves[1:] = close[1:] > close[:-1]
    return moves


def persistence_odds(close: np.ndarray, y: np.ndarray, train_days: np.ndarray
                     ) -> np.ndarray:
    """[P(up | move in down), P(up | move in up)] on ``train_days`` (day 0, which has no
    move, left out), each (ups + 1) / (days + 2)."""
    moves = moved_up(close)
    train_moves = moves[train_days]
    train_labels = np.asarray(y, dtype="float64")[train_days]
    with_move = train_days > 0
    ups = np.bincount(train_moves[with_move], weights=train_labels[with_move], minlength=2)
    counts = np.bincount(train_moves[with_move], minlength=2)
    return (ups + 1) / (counts + 2)


def persistence(close: np.ndarray, days: np.ndarray, y: np.ndarray | None = None,
                train_days: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predict for each of ``days`` the direction of the move into that day.

    Class: ``moved_up(close)[days]``. Probability: with ``train_days`` (and labels ``y``,
    by default ``make_labels(close)``), P(up | move in up) and P(up | move in down)
    estimated on the training days as (ups + 1) / (days + 2), day 0 left out (it has
    no move); without, 0.99 / 0.01. Returns (proba, cls), both of length ``len(days)``.
    """
    close = np.asarray(close, dtype="float64")
    days = _days(days, len(close), "days")
    cls = moved_up(close)[days]
    if train_days is None:
        return np.where(cls == 1, PERSISTENCE_CONFIDENCE, 1 - PERSISTENCE_CONFIDENCE), cls
    train_days = _days(train_days, len(close), "train_days")
    labels = make_labels(close) if y is None else y
    _training_labels(labels, train_days, days)
    return persistence_odds(close, labels, train_days)[cls], cls


def lagged_log_returns(close: np.ndarray, lags: int) -> np.ndarray:
    """(n, lags) matrix whose row t is r[t], r[t-1], ..., r[t-lags+1].

    r[t] = log(close[t] / close[t - 1]); r[0] and lags before it are NaN, so rows
    t < lags are incomplete. Row t reads closes up to day t only.
    """
    if lags < 1:
        raise ValueError(f"lags must be >= 1, got {lags}")
    close = np.asarray(close, dtype="float64")
    returns = np.concatenate([np.full(lags, np.nan), np.diff(np.log(close))])
    return np.lib.stride_tricks.sliding_window_view(returns, lags)[:, ::-1]


def _logistic_state(x_train: np.ndarray, y_train: np.ndarray, max_iter: int, C: float
                    ) -> dict[str, Any]:
    """A logistic regression on standardised rows, as plain numbers: the scaler's mean and
    scale, the coefficients and the intercept."""
    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(C=C, max_iter=max_iter).fit(scaler.transform(x_train), y_train)
    if list(model.classes_) != [0, 1]:
        raise ValueError(f"logistic: expected classes [0, 1], got {list(model.classes_)}")
    return {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
            "coef": model.coef_.tolist(), "intercept": model.intercept_.tolist()}


def _logistic_proba(state: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """P(up) of the rows ``x`` by a ``_logistic_state``: scikit-learn's own arithmetic
    (standardise, then the logistic of x . coef + intercept), so the same numbers; a
    missing (NaN) value after standardising counts as the training mean (0)."""
    scaled = (x - np.asarray(state["mean"])) / np.asarray(state["scale"])
    scaled = np.nan_to_num(scaled, nan=0.0)
    decision = (scaled @ np.asarray(state["coef"]).T).ravel() + np.asarray(state["intercept"])
    return expit(decision)


def fit_logistic_lagged_returns(close: np.ndarray, labels: np.ndarray, train_days: np.ndarray,
                                lags: int = 5, C: float = 1.0) -> dict[str, Any]:
    """The ``logistic`` baseline's state: a logistic regression of the next move on the last
    ``lags`` log returns, fitted on the ``train_days`` that have all their lags (t >= lags)
    with a StandardScaler fitted on those rows only; with one class among those labels,
    ``{"constant": their share of ups}``. Closes after the day following the last
    training day are not read."""
    last = int(train_days.max(initial=-1)) + 1
    features = lagged_log_returns(close[: last + 1], lags)
    train_labels = np.asarray(labels, dtype="float64")[train_days]
    complete = ~np.isnan(features[train_days]).any(axis=1)
    x_train, y_train = features[train_days[complete]], train_labels[complete].astype("int64")
    if len(np.unique(y_train)) < 2:
        share = majority(y_train if y_train.size else train_labels)
        return {"lags": lags, "constant": float(np.clip(share, PROBA_CLIP, 1 - PROBA_CLIP))}
    return {"lags": lags, **_logistic_state(x_train, y_train, 1000, C)}


def logistic_lagged_returns(close: np.ndarray, train_days: np.ndarray, test_days: np.ndarray,
                            lags: int = 5, C: float = 1.0, y: np.ndarray | None = None,
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression of the next move on the last ``lags`` log returns at day t.

    Fitted on the ``train_days`` that have all their lags (t >= lags), with labels ``y``
    (by default ``make_labels(close)``) and a StandardScaler fitted on those rows only.
    A test day with missing lags (t < lags) gets the training mean for them. With one
    class among the training labels the probability is their share of ups. Closes after
    the last test day (and after the day following the last training day) are not read.
    Returns (proba, cls) for ``test_days``; cls = proba >= 0.5.
    """
    close = np.asarray(close, dtype="float64")
    train_days = _days(train_days, len(close), "train_days")
    test_days = _days(test_days, len(close), "test_days")
    labels = make_labels(close) if y is None else np.asarray(y, dtype="float64")
    _training_labels(labels, train_days, test_days)
    state = fit_logistic_lagged_returns(close, labels, train_days, lags, C)
    return _apply_lagged(state, close, test_days)


def _apply_logistic(state: dict[str, Any], rows: Callable[[], np.ndarray], n: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(P(up), class) of ``n`` days by a logistic baseline's state: its ``constant`` (one
    class in training), else the regression on ``rows()``, the days' inputs."""
    proba = np.full(n, state["constant"]) if "constant" in state else \
        _logistic_proba(state, rows())
    return proba, (proba >= 0.5).astype("int64")


def _apply_lagged(state: dict[str, Any], close: np.ndarray, days: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    return _apply_logistic(state, lambda: lagged_log_returns(
        close[: int(days.max(initial=0)) + 1], state["lags"])[days], len(days))


def fit_logistic_window(features: np.ndarray, labels: np.ndarray, window: int,
                        train_days: np.ndarray, C: float = 1.0) -> dict[str, Any]:
    """The ``logistic_window`` baseline's state: a logistic regression (L2, ``C``) of the
    next move on the last ``window`` days of ``features`` (flattened), standardised on the
    training samples only; with one class among the labels, ``{"constant": their share}``."""
    train_labels = np.asarray(labels, dtype="float64")[train_days]
    y_train = train_labels.astype("int64")
    if len(np.unique(y_train)) < 2:
        return {"window": window,
                "constant": float(np.clip(majority(train_labels), PROBA_CLIP, 1 - PROBA_CLIP))}
    last = int(train_days.max(initial=0))
    samples = windows(features[: last + 1], window).reshape(last + 2 - window, -1)
    return {"window": window,
            **_logistic_state(samples[train_days - (window - 1)], y_train, 2000, C)}


def logistic_window(features: np.ndarray, labels: np.ndarray, window: int,
                    train_days: np.ndarray, test_days: np.ndarray, C: float = 1.0,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression of the next move on the last ``window`` days of ``features``.

    ``features``: (days, F), the networks' feature set; a sample for day t is rows
    t - window + 1 .. t, flattened. Fitted on ``train_days`` (each >= window - 1) with a
    StandardScaler fitted on their samples only; rows after the last test day are not
    read. With one class among the training labels the probability is their share of
    ups. Returns (proba, cls) for ``test_days``; cls = proba >= 0.5.
    """
    features = np.asarray(features, dtype="float64")
    n = len(features)
    train_days = _days(train_days, n, "train_days")
    test_days = _days(test_days, n, "test_days")
    _training_labels(labels, train_days, test_days)
    if min(train_days.min(initial=window), test_days.min(initial=window)) < window - 1:
        raise ValueError(f"logistic_window: every day needs {window} days of features "
                         f"before it (days >= {window - 1})")
    state = fit_logistic_window(features, labels, window, train_days, C)
    return _apply_window(state, features, test_days)


def _apply_window(state: dict[str, Any], features: np.ndarray, days: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    def rows() -> np.ndarray:
        window, last = state["window"], int(days.max(initial=0))
        samples = windows(features[: last + 1], window).reshape(last + 2 - window, -1)
        return samples[days - (window - 1)]

    return _apply_logistic(state, rows, len(days))


def fit_baseline(name: str, table: FeatureTable, window: int, train_days: np.ndarray
                 ) -> dict[str, Any]:
    """Baseline ``name`` (one of ``BASELINES``) fitted on ``train_days``: its state as plain
    numbers (JSON), what ``apply_baseline`` needs and what ``tsepipe train`` saves.
    ``logistic_window``'s names the features it reads (``table.names``)."""
    close, y = np.asarray(table.close, dtype="float64"), table.labels
    train_days = _days(train_days, len(close), "train_days")
    labels = _training_labels(y, train_days, np.array([], dtype="int64"))
    if name == "majority":
        return {"baseline": name, "share": majority(labels)}
    if name == "always_up":
        return {"baseline": name}
    if name == "persistence":
        return {"baseline": name,
                "p_up_given_move": persistence_odds(close, y, train_days).tolist()}
    if name == "logistic":
        return {"baseline": name, **fit_logistic_lagged_returns(close, y, train_days)}
    if name == "logistic_window":
        return {"baseline": name, "features": list(table.names),
                **fit_logistic_window(table.features, y, window, train_days)}
    raise ValueError(f"baseline: expected one of {', '.join(BASELINES)}, got {name!r}")


def apply_baseline(state: dict[str, Any], table: FeatureTable, days: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(P(up), class) on ``days`` by a baseline fitted with ``fit_baseline``; rows after
    ``days.max()`` are not read. ``logistic_window`` needs the features it was fitted on:
    others are a ``ValueError`` (``reads_table`` tells beforehand)."""
    name, close = state["baseline"], np.asarray(table.close, dtype="float64")
    days = _days(days, len(close), "days")
    if name == "majority":
        share = state["share"]
        return np.full(len(days), share), np.full(len(days), int(share >= 0.5))
    if name == "always_up":
        return always_up(len(days))
    if name == "persistence":
        odds = state["p_up_given_move"]
        cls = moved_up(close)[days]
        if odds is None:
            return np.where(cls == 1, PERSISTENCE_CONFIDENCE, 1 - PERSISTENCE_CONFIDENCE), cls
        return np.asarray(odds)[cls], cls
    if name == "logistic":
        return _apply_lagged(state, close, days)
    if name == "logistic_window":
        if not reads_table(state, table):
            raise ValueError("logistic_window: today's features are not those it was "
                             "fitted on")
        return _apply_window(state, np.asarray(table.features, dtype="float64"), days)
    raise ValueError(f"baseline: expected one of {', '.join(BASELINES)}, got {name!r}")


def reads_table(state: dict[str, Any], table: FeatureTable) -> bool:
    """Whether a fitted baseline can read ``table``: ``logistic_window`` only the features
    it was fitted on; the others read the target's closes, which every table has."""
    return state["baseline"] != "logistic_window" or state["features"] == list(table.names)


def run_baseline(name: str, table: FeatureTable, window: int, train_days: np.ndarray,
                 test_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Baseline ``name`` (one of ``BASELINES``) fitted on ``train_days``, for ``test_days``
    (``apply_baseline`` of ``fit_baseline``: the walk-forward and the saved baselines
    compute alike).

    ``table``: the feature table (the target's closes and labels; ``logistic_window``
    reads its features over ``window`` days). Returns (proba of up, class) arrays of
    length ``len(test_days)``.
    """
    n = len(table.close)
    train_days = _days(train_days, n, "train_days")
    test_days = _days(test_days, n, "test_days")
    _training_labels(table.labels, train_days, test_days)
    if name == "logistic_window" and min(train_days.min(initial=window),
                                         test_days.min(initial=window)) < window - 1:
        raise ValueError(f"logistic_window: every day needs {window} days of features "
                         f"before it (days >= {window - 1})")
    return apply_baseline(fit_baseline(name, table, window, train_days), table, test_days)


def baseline_walk_forward(name: str, table: FeatureTable, blocks: Blocks, window: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """A baseline's probabilities and classes over the walk-forward blocks."""
    probabilities, classes = [], []
    for train_days, predict_days in zip(blocks.train, blocks.predict, strict=True):
        proba, cls = run_baseline(name, table, window, train_days, predict_days)
        probabilities.append(np.asarray(proba, dtype="float64"))
        classes.append(np.asarray(cls, dtype="int64"))
    return np.concatenate(probabilities), np.concatenate(classes)
