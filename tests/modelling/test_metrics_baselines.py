"""Metrics (hand-worked examples), bootstrap, tests against chance, and the baselines.

The real-data checks reproduce the figures of the data folder's README: with the last
125 labels (t = 291..415) as the test span and t < 291 as training, the majority class
scores 71.2 % accuracy and persistence 60.0 % accuracy, 51.2 % balanced accuracy and
MCC 0.025.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from pipelines.data.formats import read_export
from pipelines.modelling import baselines as bl
from pipelines.modelling import metrics as m
from pipelines.modelling.features import FeatureTable

TARGET = "IRX6XTPI0009"


def labels(close: np.ndarray) -> np.ndarray:
    """The project's label convention, computed here: next close higher -> 1, last NaN."""
    y = np.full(len(close), np.nan)
    y[:-1] = (close[1:] > close[:-1]).astype("float64")
    return y


def table_of(close: np.ndarray, y: np.ndarray | None = None) -> FeatureTable:
    """A one-index feature table (log return, range-like noise) over ``close``."""
    close = np.asarray(close, dtype="float64")
    returns = np.concatenate([[0.0], np.diff(np.log(close))])
    noise = np.random.default_rng(len(close)).normal(size=len(close))
    return FeatureTable(pd.bdate_range("2020-01-01", periods=len(close)),
                        np.column_stack([returns, noise]), labels(close) if y is None else y,
                        close, ["T__logret", "T__range"])


def random_walk(n: int, seed: int = 0, drift: float = 0.001) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(drift + 0.01 * rng.standard_normal(n)))


def noisy_predictions(n: int, right: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with 60 % ups and predictions right on a ``right`` share of days."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(int)
    pred = np.where(rng.random(n) < right, y, 1 - y)
    return y, pred


# ---------------------------------------------------------------- classification_metrics

Y = np.array([1, 1, 1, 0, 0, 1, 0, 1])
P = np.array([0.9, 0.6, 0.4, 0.3, 0.7, 0.8, 0.2, 0.55])
# classes at 0.5: 1 1 0 0 1 1 0 1 -> tp 4 (days 0 1 5 7), fn 1 (day 2), tn 2 (3 6), fp 1 (4)


def test_classification_metrics_hand_worked():
    result = m.classification_metrics(Y, P)
    assert result["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 4}
    assert result["n"] == 8
    assert result["accuracy"] == pytest.approx(6 / 8)
    assert result["balanced_accuracy"] == pytest.approx((4 / 5 + 2 / 3) / 2)  # 11/15
    # (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (8 - 1) / sqrt(5 5 3 3)
    assert result["mcc"] == pytest.approx(7 / 15)
    assert result["f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    # positives 0.9 0.6 0.4 0.8 0.55 beat negatives 0.3 0.7 0.2 in 3+2+2+3+2 of 15 pairs
    assert result["roc_auc"] == pytest.approx(12 / 15)
    squared = [0.1, 0.4, 0.6, 0.3, 0.7, 0.2, 0.2, 0.45]
    assert result["brier"] == pytest.approx(sum(e * e for e in squared) / 8)
    p_of_truth = [0.9, 0.6, 0.4, 0.7, 0.3, 0.8, 0.8, 0.55]
    assert result["log_loss"] == pytest.approx(-sum(math.log(p) for p in p_of_truth) / 8)
    assert result["share_up_true"] == pytest.approx(5 / 8)
    assert result["share_up_pred"] == pytest.approx(5 / 8)
    json.dumps(result)  # plain Python numbers only
    assert all(type(v) in (int, float, dict) for v in result.values())


def test_threshold_and_explicit_classes():
    at_065 = m.classification_metrics(Y, P, threshold=0.65)
    # classes 1 0 0 0 1 1 0 0: tp 2, fn 3, tn 2, fp 1
    assert at_065["confusion"] == {"tn": 2, "fp": 1, "fn": 3, "tp": 2}
    given = m.classification_metrics(Y, P, y_pred=np.ones(8, dtype=int))
    assert given["confusion"] == {"tn": 0, "fp": 3, "fn": 0, "tp": 5}
    assert given["balanced_accuracy"] == 0.5 and given["mcc"] == 0.0
    assert given["roc_auc"] == pytest.approx(12 / 15)  # the probabilities still rank


def test_log_loss_clips_probabilities():
    result = m.classification_metrics(np.array([1, 0]), np.array([0.0, 0.0]))
    assert result["log_loss"] == pytest.approx((-math.log(1e-6) - math.log(1 - 1e-6)) / 2)
    assert result["brier"] == pytest.approx(0.5)


def test_roc_auc_none_for_one_class():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = m.classification_metrics(np.ones(4), np.array([0.9, 0.2, 0.6, 0.7]))
    assert result["roc_auc"] is None
    assert result["balanced_accuracy"] == pytest.approx(3 / 4)  # recall of the one class
    assert result["confusion"] == {"tn": 0, "fp": 0, "fn": 1, "tp": 3}


def test_classification_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="y_true"):
        m.classification_metrics(np.array([1.0, np.nan]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="proba"):
        m.classification_metrics(np.array([1, 0]), np.array([1.5, 0.5]))
    with pytest.raises(ValueError, match="length"):
        m.classification_metrics(np.array([1, 0, 1]), np.array([0.5, 0.5]))


# ---------------------------------------------------------------- block bootstrap

def test_bootstrap_is_deterministic_for_a_seed():
    y, pred = noisy_predictions(200, 0.7, seed=1)
    first = m.block_bootstrap_ci(y, pred, "mcc", seed=3)
    assert m.block_bootstrap_ci(y, pred, "mcc", seed=3) == first
    assert m.block_bootstrap_ci(y, pred, "mcc", seed=4) != first


def test_bootstrap_whole_series_block_reproduces_the_point_estimate():
    # one circular block of length n is a rotation of the days: every resample scores
    # exactly the full sample, so this checks the vectorised formulas against sklearn
    y, pred = noisy_predictions(50, 0.7, seed=2)
    for metric, score in (("mcc", skm.matthews_corrcoef),
                          ("balanced_accuracy", skm.balanced_accuracy_score)):
        low, high = m.block_bootstrap_ci(y, pred, metric, block=50, n_boot=20)
        assert low == pytest.approx(score(y, pred)) and high == pytest.approx(score(y, pred))


def test_bootstrap_named_metric_matches_callable():
    y, pred = noisy_predictions(80, 0.65, seed=5)
    for name, score in (("mcc", skm.matthews_corrcoef),
                        ("balanced_accuracy", skm.balanced_accuracy_score)):
        named = m.block_bootstrap_ci(y, pred, name, block=7, n_boot=200, seed=9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a resample may hold one class only
            called = m.block_bootstrap_ci(y, pred, score, block=7, n_boot=200, seed=9)
        assert named == pytest.approx(called)


def test_bootstrap_interval_contains_estimate_and_narrows_with_data():
    widths = []
    for n in (100, 2000):
        y, pred = noisy_predictions(n, 0.7, seed=n)
        for metric, score in (("mcc", skm.matthews_corrcoef),
                              ("balanced_accuracy", skm.balanced_accuracy_score)):
            low, high = m.block_bootstrap_ci(y, pred, metric)
            assert low < score(y, pred) < high
            widths.append((metric, n, high - low))
    small = {metric: w for metric, n, w in widths if n == 100}
    large = {metric: w for metric, n, w in widths if n == 2000}
    assert all(large[k] < small[k] / 2 for k in small)


def test_bootstrap_rejects_unknown_metric():
    with pytest.raises(ValueError, match="metric"):
        m.block_bootstrap_ci(np.array([1, 0]), np.array([1, 0]), "accuracy")


# ---------------------------------------------------------------- McNemar

def test_mcnemar_one_model_strictly_better():
    y = np.ones(10, dtype=int)
    a = np.ones(10, dtype=int)  # always right
    b = np.array([1, 0] * 5)  # wrong on 5 days, right on the others
    result = m.mcnemar_test(y, a, b)
    assert (result["n10"], result["n01"]) == (5, 0)
    assert result["p_value_one_sided"] == pytest.approx(0.5 ** 5)
    assert result["p_value_two_sided"] == pytest.approx(2 * 0.5 ** 5)
    assert m.mcnemar_test(y, b, a)["p_value_one_sided"] == pytest.approx(1.0)


def test_mcnemar_mixed_and_no_discordant_days():
    y = np.array([1, 1, 1, 1, 0, 0])
    a = np.array([1, 1, 1, 0, 0, 1])  # right on 0 1 2 4
    b = np.array([0, 0, 0, 1, 0, 1])  # right on 3 4
    result = m.mcnemar_test(y, a, b)
    assert (result["n10"], result["n01"]) == (3, 1)
    # P(X >= 3), X ~ Bin(4, 1/2) = (4 + 1) / 16; two-sided doubles it
    assert result["p_value_one_sided"] == pytest.approx(5 / 16)
    assert result["p_value_two_sided"] == pytest.approx(10 / 16)
    same = m.mcnemar_test(y, a, a)
    assert same == {"n01": 0, "n10": 0, "p_value_one_sided": 1.0, "p_value_two_sided": 1.0}


# ---------------------------------------------------------------- Pesaran-Timmermann

def test_pesaran_timmermann_hand_worked():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    pred = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    # p = 6/8, py = px = 1/2, p* = 1/2; var(p) = 1/32, var(p*) = 4 (1/16) / 64 = 1/256
    # S = (1/4) / sqrt(1/32 - 1/256) = (1/4) / sqrt(7/256) = 4 / sqrt(7)
    result = m.pesaran_timmermann(y, pred)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["chance_accuracy"] == pytest.approx(0.5)
    assert result["statistic"] == pytest.approx(4 / math.sqrt(7))
    assert result["p_value"] == pytest.approx(0.5 * math.erfc(4 / math.sqrt(7) / math.sqrt(2)))


def test_pesaran_timmermann_perfect_and_degenerate():
    y, _ = noisy_predictions(200, 1.0, seed=7)
    perfect = m.pesaran_timmermann(y, y)
    assert perfect["statistic"] > 10 and perfect["p_value"] < 1e-20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        constant = m.pesaran_timmermann(y, np.ones_like(y))
        flat_outcome = m.pesaran_timmermann(np.zeros_like(y), y)
    assert constant["statistic"] is None and constant["p_value"] == 1.0
    assert flat_outcome["statistic"] is None and flat_outcome["p_value"] == 1.0


# ---------------------------------------------------------------- summarise_seeds

def test_summarise_seeds():
    runs = [{"accuracy": 0.5, "mcc": 0.1, "roc_auc": None, "n": 10, "confusion": {"tp": 1}},
            {"accuracy": 0.7, "mcc": 0.3, "roc_auc": 0.6, "n": 10, "confusion": {"tp": 2}}]
    summary = m.summarise_seeds(runs)
    assert summary["n_seeds"] == 2
    assert summary["accuracy"]["mean"] == pytest.approx(0.6)
    assert summary["accuracy"]["std"] == pytest.approx(math.sqrt(0.02))  # ddof = 1
    assert summary["n"] == {"mean": 10.0, "std": 0.0}
    assert "roc_auc" not in summary and "confusion" not in summary
    one = m.summarise_seeds(runs[:1])
    assert one["accuracy"] == {"mean": 0.5, "std": 0.0} and one["n_seeds"] == 1
    json.dumps(summary)


# ---------------------------------------------------------------- baselines, small cases

def test_majority_and_always_up():
    assert bl.majority(np.array([1.0, 1.0, 0.0])) == pytest.approx(2 / 3)
    proba, cls = bl.always_up(3)
    assert (cls == 1).all() and (proba == 1 - 1e-6).all()
    close = random_walk(30)
    y = labels(close)
    y[:10] = [1, 0] * 5  # a tie in training: share 0.5 counts as up
    proba, cls = bl.run_baseline("majority", table_of(close, y), 1, np.arange(10),
                                 np.arange(10, 15))
    assert (proba == 0.5).all() and (cls == 1).all()


def test_persistence_direction_of_the_move_into_the_day():
    close = np.array([10.0, 11.0, 12.0, 11.0, 13.0, 12.0, 14.0, 15.0, 15.0])
    # day 0 has no move (class 1 by convention); a tie (day 8) is not up
    proba, cls = bl.persistence(close, np.arange(9))
    assert cls.tolist() == [1, 1, 1, 0, 1, 0, 1, 1, 0]
    assert proba == pytest.approx([0.99, 0.99, 0.99, 0.01, 0.99, 0.01, 0.99, 0.99, 0.01])


def test_persistence_calibrated_on_training_days():
    close = np.array([10.0, 11.0, 12.0, 11.0, 13.0, 12.0, 14.0, 15.0, 14.0])
    y = labels(close)  # 1 1 0 1 0 1 1 0 NaN
    # training days 1..5 (day 0 has no move): after an up move (days 1 2 4) the next
    # move was up once, after a down move (days 3 5) twice: (1+1)/(3+2), (2+1)/(2+2)
    proba, cls = bl.persistence(close, np.array([6, 7, 8]), y=y, train_days=np.arange(6))
    assert cls.tolist() == [1, 1, 0]
    assert proba == pytest.approx([0.4, 0.4, 0.75])  # the rule's class, not proba >= 0.5
    by_default, _ = bl.persistence(close, np.array([6, 7, 8]), train_days=np.arange(6))
    assert by_default == pytest.approx(proba)  # labels derived from close
    with pytest.raises(ValueError, match="precede"):
        bl.persistence(close, np.array([5, 6]), y=y, train_days=np.arange(6))


def test_lagged_log_returns_rows_read_only_the_past():
    close = np.array([1.0, 2.0, 4.0, 8.0, 4.0])
    lagged = bl.lagged_log_returns(close, 2)
    log2 = math.log(2)
    assert np.isnan(lagged[0]).all() and np.isnan(lagged[1, 1])
    assert lagged[1, 0] == pytest.approx(log2)
    assert lagged[4] == pytest.approx([-log2, log2])  # r[4], r[3]


def test_logistic_rejects_training_days_that_reach_the_test_span():
    close = random_walk(100)
    with pytest.raises(ValueError, match="precede"):
        bl.logistic_lagged_returns(close, np.arange(60), np.arange(50, 70))
    with pytest.raises(ValueError, match="label"):
        bl.logistic_lagged_returns(close, np.arange(100), np.arange(99, 100))


def test_logistic_one_class_in_training_gives_the_share():
    close = np.linspace(100, 200, 40)  # every move up
    proba, cls = bl.logistic_lagged_returns(close, np.arange(30), np.arange(30, 40))
    assert (proba == 1 - 1e-6).all() and (cls == 1).all()


def test_run_baseline_every_name_over_walk_forward_blocks():
    close = random_walk(300, seed=3)
    y = labels(close)
    for name in bl.BASELINES:
        for start in range(200, 300, 40):  # the last block includes the unlabelled last day
            test_days = np.arange(start, min(start + 40, 300))
            proba, cls = bl.run_baseline(name, table_of(close, y), 5, np.arange(4, start - 1),
                                         test_days)
            assert proba.shape == cls.shape == test_days.shape
            assert ((proba >= 0) & (proba <= 1)).all() and set(cls.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="baseline"):
        bl.run_baseline("random_walk", table_of(close, y), 1, np.arange(100),
                        np.arange(100, 120))


# ---------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def real_close(real_dir: Path) -> np.ndarray:
    return read_export(real_dir / f"{TARGET}.csv").frame["close"].to_numpy(dtype="float64")


TRAIN = np.arange(291)
TEST = np.arange(291, 416)


def test_real_data_days_and_labels(real_close: np.ndarray):
    y = labels(real_close)
    assert len(real_close) == 417
    assert (~np.isnan(y)).sum() == 416
    assert round(float(np.nanmean(y)), 3) == 0.649
    assert len(TEST) == 125 and TEST[-1] == 415


def test_real_data_majority_reproduces_the_readme(real_close: np.ndarray):
    y = labels(real_close)
    proba, cls = bl.run_baseline("majority", table_of(real_close, y), 1, TRAIN, TEST)
    assert (cls == 1).all()  # 181 of the 291 training labels are up
    result = m.classification_metrics(y[TEST], proba, y_pred=cls)
    assert round(result["accuracy"], 3) == 0.712
    assert m.classification_metrics(y[TEST], proba)["accuracy"] == result["accuracy"]


def test_real_data_persistence_reproduces_the_readme(real_close: np.ndarray):
    y = labels(real_close)
    proba, cls = bl.run_baseline("persistence", table_of(real_close, y), 1, TRAIN, TEST)
    result = m.classification_metrics(y[TEST], proba, y_pred=cls)
    assert round(result["accuracy"], 3) == 0.600
    assert round(result["balanced_accuracy"], 3) == 0.512
    assert round(result["mcc"], 3) == 0.025
    _, uncalibrated = bl.persistence(real_close, TEST)
    assert (uncalibrated == cls).all()


def test_real_data_logistic_reads_no_close_after_the_day(real_close: np.ndarray):
    proba, cls = bl.logistic_lagged_returns(real_close, TRAIN, TEST)
    assert set(cls.tolist()) == {0, 1}
    day = 350
    changed = real_close.copy()
    changed[day + 1:] *= np.random.default_rng(0).uniform(0.8, 1.2, len(changed) - day - 1)
    proba_changed, cls_changed = bl.logistic_lagged_returns(changed, TRAIN, TEST)
    known = TEST <= day
    np.testing.assert_array_equal(proba_changed[known], proba[known])
    np.testing.assert_array_equal(cls_changed[known], cls[known])
    assert not np.allclose(proba_changed[~known], proba[~known])  # the check can fail


# ---------------------------------------------------------------- the strong linear baseline

def test_logistic_window_reads_no_row_after_the_day():
    table = table_of(random_walk(300, seed=5))
    train, test = np.arange(9, 200), np.arange(201, 299)
    proba, cls = bl.logistic_window(table.features, table.labels, 10, train, test)
    day = 250
    changed = table.features.copy()
    changed[day + 1:] = np.random.default_rng(1).normal(size=changed[day + 1:].shape)
    later, _ = bl.logistic_window(changed, table.labels, 10, train, test)
    known = test <= day
    np.testing.assert_array_equal(later[known], proba[known])
    assert not np.allclose(later[~known], proba[~known])  # the check can fail
    with pytest.raises(ValueError, match="days of features before it"):
        bl.logistic_window(table.features, table.labels, 10, np.arange(5, 200), test)


def test_logistic_window_standardises_on_training_rows_only():
    """Rows after the training days, made huge, change no training-fitted probability."""
    table = table_of(random_walk(260, seed=6))
    train, test = np.arange(9, 180), np.arange(181, 200)
    proba, _ = bl.logistic_window(table.features, table.labels, 10, train, test)
    changed = table.features.copy()
    changed[200:] *= 1e6  # after every test day: never read
    again, _ = bl.logistic_window(changed, table.labels, 10, train, test)
    np.testing.assert_array_equal(again, proba)


@pytest.fixture(scope="module")
def tedpix_table(tmp_path_factory) -> FeatureTable:
    """TEDPIX 2008-2019 as TSETMC serves it, read as layout D, the default feature sets."""
    import shutil

    from pipelines.data.merge import column_name
    from pipelines.modelling.features import DEFAULT_SETS, feature_table
    from tests.support.tsetmc_server import recorded_answer_path

    folder = tmp_path_factory.mktemp("tedpix")
    shutil.copy(recorded_answer_path(), folder / f"{TARGET}.json")
    frame = read_export(folder / f"{TARGET}.json").frame
    wide = pd.DataFrame({"date": frame["date"].to_numpy()} | {
        column_name(TARGET, f): frame[f].to_numpy() for f in ("high", "low", "close")})
    return feature_table(wide, TARGET, DEFAULT_SETS, "price_action")


def test_strong_baseline_reproduces_the_tedpix_figure(tedpix_table: FeatureTable):
    """The shared README: 10 days of [log return, range, close's place], C = 1: MCC 0.272."""
    from pipelines.modelling.baselines import baseline_walk_forward
    from pipelines.modelling.features import chronological_split, labelled_sample_days
    from pipelines.modelling.walkforward import walk_forward_blocks

    table = tedpix_table
    assert table.names == [f"{TARGET}__logret", f"{TARGET}__range", f"{TARGET}__close_place"]
    days = labelled_sample_days(table, 10)
    split = chronological_split(days, 0.15, 0.3)
    assert f"{table.dates[split.test[0]]:%Y-%m}" == "2016-09"
    assert f"{table.dates[split.test[-1]]:%Y-%m}" == "2019-12"
    blocks = walk_forward_blocks(days, split.test, 60, gap=1)
    y = table.labels[split.test].astype(int)
    scores = {}
    for name in ("logistic_window", "persistence"):
        proba, cls = baseline_walk_forward(name, table, blocks, 10)
        scores[name] = m.classification_metrics(y, proba, y_pred=cls)
    assert abs(scores["logistic_window"]["mcc"] - 0.272) <= 0.02, scores["logistic_window"]
    assert abs(scores["persistence"]["mcc"] - 0.186) <= 0.02, scores["persistence"]
    assert scores["logistic_window"]["mcc"] > scores["persistence"]["mcc"] + 0.05
