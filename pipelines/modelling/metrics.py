"""Scores of up/down forecasts, their uncertainty, and tests against chance and baselines.

Inputs are numpy arrays over the same forecast days: ``y_true`` the labels (0/1, no
NaN), ``proba`` the forecast probability of "up", ``y_pred`` the forecast class (0/1).
Every function returns plain Python numbers (JSON-serialisable).

- ``classification_metrics``: accuracy, balanced accuracy, MCC, F1, ROC AUC, Brier, log
  loss, the confusion matrix and the shares of up days, for one set of forecasts.
- ``block_bootstrap_ci``: a percentile interval for balanced accuracy or MCC from a
  circular moving-block bootstrap of the days (blocks keep the serial dependence).
- ``mcnemar_test``: does model a get more days right than model b (exact binomial test
  on the days where exactly one of them is right)?
- ``pesaran_timmermann``: are the predicted directions right more often than independent
  guesses with the same shares of ups would be (Pesaran & Timmermann, 1992)?
- ``adjusted_p_values``: p-values of several tests (one per target index) adjusted for
  their number, Holm's step-down (family-wise error) or Benjamini-Hochberg's step-up
  (false discovery rate), so that sixteen tries do not pass as sixteen findings.
- ``summarise_seeds``: mean and spread of per-seed metrics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn import metrics as skm

PROBA_CLIP = 1e-6  # log loss reads probabilities in [PROBA_CLIP, 1 - PROBA_CLIP]
BOOTSTRAP_METRICS = ("balanced_accuracy", "mcc")


def _binary(values: Any, name: str) -> np.ndarray:
    """0/1 labels or classes as int64; NaN or any other value is a ValueError."""
    array = np.asarray(values, dtype="float64").reshape(-1)
    if not np.isin(array, (0.0, 1.0)).all():
        raise ValueError(f"{name}: expected only 0 and 1 (no NaN)")
    return array.astype("int64")


def _same_length(*arrays: np.ndarray) -> int:
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(f"expected non-empty arrays of one length, got {[len(a) for a in arrays]}")
    return n


def classification_metrics(y_true: Any, proba: Any, threshold: float = 0.5,
                           y_pred: Any | None = None) -> dict[str, Any]:
    """Scores of the probabilities ``proba`` of up against the labels ``y_true``.

    The class forecasts are ``proba >= threshold`` unless ``y_pred`` gives them (for a
    rule whose class is not a threshold of its probability, such as persistence with
    calibrated probabilities). Returns accuracy, balanced_accuracy, mcc, f1 (of "up"),
    roc_auc (None when ``y_true`` holds one class only), brier, log_loss (probabilities
    clipped to [1e-6, 1 - 1e-6]), confusion {"tn", "fp", "fn", "tp"}, n, share_up_true
    and share_up_pred.
    """
    y = _binary(y_true, "y_true")
    p = np.asarray(proba, dtype="float64").reshape(-1)
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError("proba: expected probabilities in [0, 1]")
    pred = (p >= threshold).astype("int64") if y_pred is None else _binary(y_pred, "y_pred")
    n = _same_length(y, p, pred)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    with warnings.catch_warnings():
        # one class in y_true: balanced accuracy is the recall of that class (sklearn's
        # definition); the warning says so on every call
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = skm.balanced_accuracy_score(y, pred)
    one_class = len(np.unique(y)) < 2
    clipped = np.clip(p, PROBA_CLIP, 1 - PROBA_CLIP)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced),
        "mcc": float(skm.matthews_corrcoef(y, pred)),
        "f1": float(skm.f1_score(y, pred, labels=[0, 1], pos_label=1, zero_division=0)),
        "roc_auc": None if one_class else float(skm.roc_auc_score(y, p)),
        "brier": float(skm.brier_score_loss(y, p, pos_label=1)),
        "log_loss": float(skm.log_loss(y, clipped, labels=[0, 1])),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "n": int(n),
        "share_up_true": float(y.mean()),
        "share_up_pred": float(pred.mean()),
    }


def _counted_metric(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Balanced accuracy or MCC of each row of (resamples, days) 0/1 arrays, as sklearn."""
    tp = (y_true & y_pred).sum(axis=1).astype("float64")
    tn = ((1 - y_true) & (1 - y_pred)).sum(axis=1).astype("float64")
    fp = ((1 - y_true) & y_pred).sum(axis=1).astype("float64")
    fn = (y_true & (1 - y_pred)).sum(axis=1).astype("float64")
    if name == "balanced_accuracy":
        # mean recall over the classes present in the resample
        has_pos, has_neg = tp + fn > 0, tn + fp > 0
        tpr = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=has_pos)
        tnr = np.divide(tn, tn + fp, out=np.zeros_like(tn), where=has_neg)
        return (tpr + tnr) / (has_pos.astype("float64") + has_neg)
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.divide(tp * tn - fp * fn, denominator, out=np.zeros_like(tp),
                     where=denominator > 0)


def block_bootstrap_ci(y_true: Any, y_pred: Any,
                       metric: str | Callable[[np.ndarray, np.ndarray], float],
                       block: int = 10, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                       ) -> tuple[float, float]:
    """Percentile interval of ``metric`` over circular moving-block resamples of the days.

    Each resample joins ceil(n / block) blocks of ``block`` consecutive days (wrapping
    round the end) starting at uniform random days, cut to n days. ``metric`` is
    "balanced_accuracy" or "mcc" (computed for all resamples at once), or a callable
    ``f(y_true, y_pred) -> float``. Returns (low, high); the same for the same ``seed``.
    """
    y = _binary(y_true, "y_true")
    pred = _binary(y_pred, "y_pred")
    n = _same_length(y, pred)
    if block < 1 or n_boot < 1 or not 0 < level < 1:
        raise ValueError("block_bootstrap_ci: expected block >= 1, n_boot >= 1, 0 < level < 1")
    if isinstance(metric, str) and metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"metric: expected one of {', '.join(BOOTSTRAP_METRICS)} or a "
                         f"callable, got {metric!r}")
    block = min(block, n)
    n_blocks = -(-n // block)
    starts = np.random.default_rng(seed).integers(0, n, size=(n_boot, n_blocks))
    days = ((starts[:, :, None] + np.arange(block)) % n).reshape(n_boot, -1)[:, :n]
    if isinstance(metric, str):
        values = _counted_metric(metric, y[days], pred[days])
    else:
        values = np.array([metric(y[row], pred[row]) for row in days], dtype="float64")
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def pooled_mcc(y_true: Any, y_pred: Any, block: int, n_boot: int) -> dict[str, float]:
    """The MCC of several targets' forecasts pooled (``y_true``, ``y_pred``: one row per
    target, one column per day, the same days), and its 95 % percentile interval over
    ``n_boot`` resamples of circular moving blocks of ``block`` days drawn for every target
    at once (a day's forecasts move together across indices, so they are resampled
    together; seeded: the same interval every run). {"mcc", "mcc_lo", "mcc_hi", "n"}."""
    y, pred = _panel(y_true), _panel(y_pred)
    value, values = _pooled(y, pred, block, n_boot)
    low, high = np.quantile(values, [0.025, 0.975])
    return {"mcc": value, "mcc_lo": float(low), "mcc_hi": float(high), "n": int(y.size)}


def pooled_mcc_difference(y_true: Any, pred_a: Any, pred_b: Any, block: int, n_boot: int
                          ) -> dict[str, float]:
    """The pooled MCC of ``pred_a`` less that of ``pred_b`` (as ``pooled_mcc``), with the
    95 % interval of the difference over the same resampled days for both (paired).
    {"difference", "lo", "hi"}."""
    y = _panel(y_true)
    a, values_a = _pooled(y, _panel(pred_a), block, n_boot)
    b, values_b = _pooled(y, _panel(pred_b), block, n_boot)
    low, high = np.quantile(values_a - values_b, [0.025, 0.975])
    return {"difference": a - b, "lo": float(low), "hi": float(high)}


def _panel(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype="int64")
    if array.ndim != 2 or not array.size:
        raise ValueError("pooled MCC: expected (targets, days) arrays")
    return array


def _pooled(y: np.ndarray, pred: np.ndarray, block: int, n_boot: int
            ) -> tuple[float, np.ndarray]:
    """(the pooled MCC, its value on each of ``n_boot`` resamples of day blocks: the same
    resamples for the same shape, block and count)."""
    if y.shape != pred.shape:
        raise ValueError("pooled MCC: the labels and forecasts differ in shape")
    n = y.shape[1]
    value = float(_counted_metric("mcc", y.reshape(1, -1), pred.reshape(1, -1))[0])
    block = min(max(1, block), n)
    starts = np.random.default_rng(0).integers(0, n, size=(n_boot, -(-n // block)))
    days = ((starts[:, :, None] + np.arange(block)) % n).reshape(n_boot, -1)[:, :n]
    return value, _counted_metric("mcc", y[:, days].transpose(1, 0, 2).reshape(n_boot, -1),
                                  pred[:, days].transpose(1, 0, 2).reshape(n_boot, -1))


def mcnemar_test(y_true: Any, pred_a: Any, pred_b: Any) -> dict[str, Any]:
    """Exact McNemar test of classifiers a and b on the same days.

    n10: days a gets right and b wrong; n01: days a gets wrong and b right. Under the
    null hypothesis (equally good) n10 ~ Binomial(n10 + n01, 1/2). The one-sided p-value
    is for "a is right more often than b". No discordant day: both p-values are 1.0.
    """
    y = _binary(y_true, "y_true")
    right_a = _binary(pred_a, "pred_a") == y
    right_b = _binary(pred_b, "pred_b") == y
    _same_length(y, right_a, right_b)
    n10 = int((right_a & ~right_b).sum())
    n01 = int((~right_a & right_b).sum())
    if n10 + n01 == 0:
        return {"n01": 0, "n10": 0, "p_value_one_sided": 1.0, "p_value_two_sided": 1.0}
    return {
        "n01": n01,
        "n10": n10,
        "p_value_one_sided": float(stats.binomtest(n10, n10 + n01, 0.5,
                                                   alternative="greater").pvalue),
        "p_value_two_sided": float(stats.binomtest(n10, n10 + n01, 0.5,
                                                   alternative="two-sided").pvalue),
    }


def pesaran_timmermann(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Pesaran-Timmermann (1992) test that predicted directions beat independent guesses.

    With p = accuracy, py / px the shares of ups in ``y_true`` / ``y_pred`` and
    p* = py px + (1 - py)(1 - px) the accuracy expected if the forecasts were independent
    of the outcomes, S = (p - p*) / sqrt(var(p) - var(p*)) is asymptotically N(0, 1).
    Returns {"statistic", "p_value" (one-sided, P(N(0,1) >= S)), "accuracy",
    "chance_accuracy"}; when the variance is zero (constant forecasts or outcomes) the
    statistic is None and the p-value 1.0.
    """
    y = _binary(y_true, "y_true")
    pred = _binary(y_pred, "y_pred")
    n = _same_length(y, pred)
    accuracy = float((y == pred).mean())
    py, px = float(y.mean()), float(pred.mean())
    chance = py * px + (1 - py) * (1 - px)
    var_accuracy = chance * (1 - chance) / n
    var_chance = ((2 * py - 1) ** 2 * px * (1 - px) / n
                  + (2 * px - 1) ** 2 * py * (1 - py) / n
                  + 4 * py * px * (1 - py) * (1 - px) / n ** 2)
    variance = var_accuracy - var_chance
    result = {"statistic": None, "p_value": 1.0, "accuracy": accuracy, "chance_accuracy": chance}
    # the variance is 0 exactly when px or py is 0 or 1; rounding may leave a tiny residue
    if min(px, 1 - px, py, 1 - py) == 0 or variance <= 0:
        return result
    statistic = (accuracy - chance) / math.sqrt(variance)
    return result | {"statistic": float(statistic), "p_value": float(stats.norm.sf(statistic))}


ADJUSTMENTS = ("holm", "bh")


def adjusted_p_values(p_values: Sequence[float], method: str) -> list[float]:
    """``p_values`` (one per test, in any order) adjusted for the number of tests, in the
    same order; each in [0, 1].

    ``holm``: Holm's step-down: the i-th smallest of m becomes max over j <= i of
    (m - j + 1) p_(j), capped at 1 (controls the chance of any false finding).
    ``bh``: Benjamini-Hochberg's step-up: the i-th smallest becomes min over j >= i of
    m p_(j) / j, capped at 1 (controls the expected share of false findings).
    A p-value that is NaN or outside [0, 1] is a ValueError: it is no test's result.
    """
    if method not in ADJUSTMENTS:
        raise ValueError(f"unknown p-value adjustment {method!r} (one of {', '.join(ADJUSTMENTS)})")
    p = np.asarray(p_values, dtype="float64")
    if p.ndim != 1:
        raise ValueError("p_values: a flat sequence of p-values")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p_values: each in [0, 1], got {p.tolist()}")
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        stepped = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        stepped = np.minimum.accumulate((m * ranked / np.arange(1, m + 1))[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(value) for value in adjusted]


def summarise_seeds(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std (ddof=1, or 0 for one seed) of each metric numeric in every run.

    ``runs``: one ``classification_metrics`` dict per seed. Non-numeric entries (None,
    nested dicts, lists) are left out. Returns {metric: {"mean", "std"}, "n_seeds": k}.
    """
    if not runs:
        raise ValueError("summarise_seeds: no runs")

    def numeric(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    names = [k for k, v in runs[0].items() if numeric(v) and all(numeric(r.get(k)) for r in runs)]
    values = np.array([[r[k] for k in names] for r in runs], dtype="float64")
    values = values.reshape(len(runs), len(names))
    means = values.mean(axis=0)
    spreads = values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(len(names))
    summary: dict[str, Any] = {name: {"mean": float(mean), "std": float(std)}
                               for name, mean, std in zip(names, means, spreads, strict=True)}
    return summary | {"n_seeds": len(runs)}


def rolling_accuracy(test: Any, window: int, min_periods: int = 1) -> Any:
    """Rolling share of correct directions: a frame indexed by date, a column per model.

    ``test``: prediction rows (``date``, ``model``, ``label``, ``predicted``).
    """
    hits = test.assign(hit=(test["label"] == test["predicted"]).astype(float))
    table = hits.pivot(index="date", columns="model", values="hit").sort_index()
    return table.rolling(window, min_periods=min_periods).mean()
