"""Walk-forward evaluation: no leakage, train-only scaling, the champion gate, real data."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.core.errors import DataError
from pipelines.core.params.backtest import BacktestSection
from pipelines.core.params.train import ModelConfig
from pipelines.modelling.baselines import baseline_walk_forward
from pipelines.modelling.evaluate import evaluate_models
from pipelines.modelling.features import FeatureTable, feature_table, make_labels, windows
from pipelines.modelling.fitting import (
    chains_for,
    fit_network,
    fit_seeds,
    network_walk_forward,
    predict_network,
    walk_forward_chains,
)
from pipelines.modelling.leaderboard import Leaderboard
from pipelines.modelling.results import ModelResult
from pipelines.modelling.select import leaderboard
from pipelines.modelling.walkforward import walk_forward_blocks
from tests.support.stages import evaluation_settings

TARGET = "IRX6XTPI0009"
TINY = {"cell": "gru", "units": [4], "epochs": 3, "batch_size": 16, "patience": 1}
CPU = {"deterministic": False, "mixed_precision": False}  # fit_network's switches


def synthetic_table(n: int = 220, n_features: int = 6, seed: int = 0) -> FeatureTable:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.001, 0.01, n)
    close = 1000 * np.exp(np.cumsum(returns))
    features = np.column_stack([returns] + [rng.normal(size=n) for _ in range(n_features - 1)])
    return FeatureTable(pd.bdate_range("2020-01-01", periods=n), features, make_labels(close),
                        close, [f"f{i}" for i in range(n_features)])


def labelled(table: FeatureTable, window: int) -> np.ndarray:
    days = np.arange(window - 1, len(table.labels))
    return days[~np.isnan(table.labels[days])]


def test_windows_stack_the_last_w_days():
    features = np.arange(20.0).reshape(10, 2)
    stacked = windows(features, 3)
    assert stacked.shape == (8, 3, 2)
    assert stacked[0].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert stacked[-1, -1].tolist() == [18, 19]


def test_labels_look_one_day_ahead_and_the_last_day_has_none():
    labels = make_labels(np.array([10.0, 11, 11, 9, 12]))
    assert labels[:-1].tolist() == [1, 0, 0, 1] and np.isnan(labels[-1])


@pytest.mark.parametrize("refit_every, gap", [(1, 0), (7, 1), (30, 3), (500, 1)])
def test_every_block_trains_only_on_days_before_it_minus_the_gap(refit_every, gap):
    days = np.arange(5, 200)
    test = days[120:]
    blocks = walk_forward_blocks(days, test, refit_every, gap)
    assert np.array_equal(np.concatenate(blocks.predict), test)
    for train, predict in zip(blocks.train, blocks.predict, strict=True):
        assert train.max() < predict.min() - gap
        assert np.array_equal(train, days[days < predict.min() - gap])  # expanding window


def test_scaler_and_model_see_no_rows_after_the_training_days():
    table = synthetic_table()
    window, train_days = 5, labelled(synthetic_table(), 5)[:150]
    poisoned = FeatureTable(table.dates, table.features.copy(), table.labels.copy(),
                            table.close, table.names)
    poisoned.features[train_days[-1] + 1:] = np.nan  # any read of a later row spreads NaN
    model, scaler, run = fit_network(ModelConfig.from_dict(TINY), poisoned, window,
                                     train_days, seed=1, **CPU)
    assert scaler.last_day_ == train_days[-1]
    assert np.isfinite(scaler.mean_).all() and np.isfinite(scaler.scale_).all()
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(run.history["loss"]).all() and np.isfinite(run.history["val_loss"]).all()
    clean = fit_network(ModelConfig.from_dict(TINY), table, window, train_days, seed=1,
                        **CPU)[1]
    assert np.allclose(clean.mean_, scaler.mean_)


def test_a_copy_in_a_seed_stack_learns_as_it_would_alone():
    """Seed 1's copy fitted beside seed 2 predicts as seed 1 fitted alone in a stack (its
    gradients come from its own loss only; same batches); seed 2's copy differs."""
    table, window = synthetic_table(), 5
    train_days = labelled(table, window)[:150]
    predict_days = labelled(table, window)[151:170]
    config = ModelConfig.from_dict(TINY | {"epochs": 4})
    fits = {seeds: fit_seeds(config, table, window, train_days, seeds, deterministic=True,
                             mixed_precision=False) for seeds in ((1, 2), (1,))}
    both, alone = (predict_network(model, scaler, table, window, predict_days, seeds)
                   for seeds, (model, scaler, _) in fits.items())
    assert both.shape == (2, len(predict_days)) and alone.shape == (1, len(predict_days))
    np.testing.assert_allclose(both[0], alone[0], atol=1e-5)
    assert not np.allclose(both[0], both[1], atol=1e-3)
    runs = fits[(1, 2)][2]
    assert [run.seed for run in runs] == [1, 2] and all(run.stacked == 2 for run in runs)
    np.testing.assert_allclose(runs[0].history["val_loss"], fits[(1,)][2][0].history["val_loss"],
                               rtol=1e-5)


def _changed_after(table: FeatureTable, cut: int, seed: int = 5) -> FeatureTable:
    """A copy whose labels from ``cut`` on are shuffled and whose data after it is noise."""
    rng = np.random.default_rng(seed)
    features, labels, close = table.features.copy(), table.labels.copy(), table.close.copy()
    future = np.arange(cut, len(labels) - 1)
    labels[future] = rng.permutation(labels[future])
    labels[future[: len(future) // 2]] = 1 - labels[future[: len(future) // 2]]
    features[cut + 1:] = rng.normal(size=features[cut + 1:].shape) * 3
    close[cut + 1:] = close[cut] * np.exp(np.cumsum(rng.normal(0, 0.05, len(close) - cut - 1)))
    return FeatureTable(table.dates, features, labels, close, table.names)


def test_no_prediction_on_or_before_day_t_depends_on_anything_after_it():
    table, window = synthetic_table(), 5
    days = labelled(table, window)
    test_days = days[150:]
    blocks = walk_forward_blocks(days, test_days, refit_every=25, gap=1)
    cut = int(test_days[30])  # inside the second block
    changed = _changed_after(table, cut)
    config = ModelConfig.from_dict(TINY)
    upto = test_days <= cut
    for warm_start in (False, True):  # cold refits, and refits from the previous weights
        before = network_walk_forward(config, table, window, blocks, (3,), deterministic=True,
                                      mixed_precision=False, warm_start=warm_start,
                                      warm_epochs=2)[0][0]
        after = network_walk_forward(config, changed, window, blocks, (3,),
                                     deterministic=True, mixed_precision=False,
                                     warm_start=warm_start, warm_epochs=2)[0][0]
        assert np.array_equal(before[upto], after[upto]), warm_start
        assert not np.allclose(before[~upto], after[~upto])  # the check can fail
    for name in ("majority", "always_up", "persistence", "logistic", "logistic_window"):
        base_before = baseline_walk_forward(name, table, blocks, window)
        base_after = baseline_walk_forward(name, changed, blocks, window)
        for b, a in zip(base_before, base_after, strict=True):
            assert np.array_equal(b[upto], a[upto]), name


def test_shuffled_test_labels_leave_the_first_block_unchanged():
    table, window = synthetic_table(seed=2), 5
    days = labelled(table, window)
    test_days = days[150:]
    blocks = walk_forward_blocks(days, test_days, refit_every=40, gap=1)
    shuffled = FeatureTable(table.dates, table.features, table.labels.copy(), table.close,
                            table.names)
    shuffled.labels[test_days] = np.random.default_rng(0).permutation(table.labels[test_days])
    config = ModelConfig.from_dict(TINY)
    cold = {"deterministic": True, "mixed_precision": False, "warm_start": False,
            "warm_epochs": 1}
    a = network_walk_forward(config, table, window, blocks, (4,), **cold)[0][0]
    b = network_walk_forward(config, shuffled, window, blocks, (4,), **cold)[0][0]
    first = len(blocks.predict[0])
    assert np.array_equal(a[:first], b[:first])


def _fake_evaluation(network_validation: str) -> Any:
    """A network, persistence and logistic_window; the network's validation is "weak"
    (always wrong), "close" (as good as the best baseline, within the margin) or "good"."""
    from pipelines.modelling.features import Split
    from pipelines.modelling.results import Evaluation

    y = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0] * 4, dtype=float)
    days = np.arange(len(y))
    val, test = days[:20], days[20:]
    truth = y[val]
    good = np.where(truth == 1, 0.9, 0.1)
    weak = np.where(truth == 1, 0.2, 0.8)  # always wrong: MCC -1
    nearly = good.copy()
    nearly[[0, 1]] = 1 - nearly[[0, 1]]  # two days wrong: MCC 0.79, as logistic_window
    persistence = np.roll(truth, 1)
    results = {
        "persistence": ModelResult("persistence", "baseline", persistence, y[test],
                                   validation_cls=persistence.astype(int),
                                   test_cls=y[test].astype(int)),
        "logistic_window": ModelResult("logistic_window", "baseline", nearly,
                                       np.full(len(test), 0.6)),
        "net": ModelResult("net", "network",
                           {"weak": weak, "close": nearly, "good": good}[network_validation],
                           np.full(len(test), 0.6), [np.full(len(test), 0.6)]),
    }
    return Evaluation(pd.bdate_range("2020-01-01", periods=len(y)), y, Split(days, val, test),
                      val, test, results, evaluation_settings(bootstrap_samples=50,
                                                             promotion_margin=0.02))


def test_a_network_must_beat_the_best_baseline_by_the_margin():
    for case in ("weak", "close"):  # below the best baseline, or level with it
        board = leaderboard(_fake_evaluation(case), "none")
        assert board.champion == "logistic_window", case
        assert board.best_baseline_on_validation == "logistic_window"
        assert board.notes == [f"net not promoted: validation mcc "
                                  f"{board.models['net'].validation['mcc']:.3f} does not "
                                  "beat the best baseline logistic_window (0.792) by the margin "
                                  "0.02"]
        assert board.champion_reason.startswith("no network beats the best baseline "
                                                   "logistic_window (validation mcc 0.792)")
    board = leaderboard(_fake_evaluation("good"), "none")
    assert board.champion == "net" and board.notes == []
    assert board.champion_reason == ("net beats the best baseline logistic_window on the "
                                        "walk-forward validation days: mcc 1.000 against 0.792, "
                                        "more than the margin 0.02")


def test_the_leaderboard_reads_back_as_written_and_a_damaged_one_is_named(tmp_path):
    board = leaderboard(_fake_evaluation("good"), "none")
    path = board.write(tmp_path / "leaderboard.json")
    again = Leaderboard.read(path)
    assert again == board and again.champion_row.kind == "network"
    assert again.networks == ["net"] and again.stand_in == "logistic_window"
    with pytest.raises(DataError, match=r"no-such\.json: no leaderboard; run tsepipe select"):
        Leaderboard.read(tmp_path / "no-such.json")
    damaged = json.loads(path.read_text())
    damaged["models"]["net"]["kind"] = "oracle"
    path.write_text(json.dumps(damaged))
    with pytest.raises(DataError, match=r"leaderboard\.json: not a .*models\.net\.kind"):
        Leaderboard.read(path)
    path.write_text('{"champion": ')
    with pytest.raises(DataError, match=r"leaderboard\.json: not a leaderboard"):
        Leaderboard.read(path)


def test_validation_is_walked_forward_with_the_refit_rule_and_progress_is_told():
    table, window = synthetic_table(n=260), 5
    settings = evaluation_settings(window=window, refit_every=20, seeds=(1, 2),
                                  bootstrap_samples=50, warm_epochs=2, workers=1)
    lines = []
    evaluation = evaluate_models(table, settings, {"gru": ModelConfig.from_dict(TINY)},
                                 progress=lines.append)
    n_val, n_test = len(evaluation.validation_days), len(evaluation.test_days)
    blocks = -(-n_val // 20) + -(-n_test // 20)
    assert lines[0] == (f"1 networks x 2 seeds (fitted together), {blocks} refits each "
                        f"({-(-n_val // 20)} validation, {-(-n_test // 20)} test blocks), "
                        "warm refits")
    refits = [line for line in lines[1:] if " refit " in line]
    assert len(refits) == blocks  # both seeds in one stack: one refit fits both
    assert refits[0].startswith(f"gru seeds 1, 2: refit 1/{blocks} (")
    assert refits[-1].startswith(f"gru seeds 1, 2: refit {blocks}/{blocks} (")
    assert refits[-1].endswith(f"{blocks}/{blocks} refits done, ETA 0m00s")
    runs = evaluation.results["gru"].runs  # a run per seed and block
    assert [(run.seed, run.warm) for run in runs] == [(1, False), (2, False)] + [
        (seed, True) for _ in range(blocks - 1) for seed in (1, 2)]
    assert all(run.epochs <= 2 for run in runs[2:])  # warm refits: warm_epochs at most
    assert all(run.stacked == 2 for run in runs)
    board = leaderboard(evaluation, "auto")
    assert board.days.validation == n_val and board.walk_forward["warm_start"]
    assert board.models["gru"].training["warm_fits"] == 2 * (blocks - 1)
    assert board.models["gru"].feature_set is None  # a plain table: its own columns


def test_chains_in_parallel_processes_match_the_chains_in_this_one(caplog):
    table, window = synthetic_table(n=200), 5
    days = labelled(table, window)
    blocks = walk_forward_blocks(days, days[120:], refit_every=40, gap=1)
    config = ModelConfig.from_dict(TINY)
    chains = chains_for({"gru": (config, table), "gru_too": (config, table)}, (1, 2))
    assert [(chain.name, chain.seeds) for chain in chains] == [("gru", (1, 2)),
                                                               ("gru_too", (1, 2))]
    options = {"deterministic": True, "mixed_precision": False, "warm_start": True,
               "warm_epochs": 2}
    told = []
    parallel = walk_forward_chains(chains, window, blocks, options, workers=2,
                                   progress=told.append, scheduler="")
    here = walk_forward_chains(chains, window, blocks, options, workers=1, scheduler="")
    for (a, runs_a, _), (b, _, _) in zip(parallel, here, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
        assert a.shape == (2, sum(map(len, blocks.predict)))  # a row per seed
        assert len(runs_a) == 2 * len(blocks)
    assert sorted((m["model"], m["refit"]) for m in told) == [
        (name, refit) for name in ("gru", "gru_too") for refit in range(1, len(blocks) + 1)]
    assert [list(m["seeds"]) for m in told] == [[1, 2]] * len(told)
    assert told[-1]["done"] == told[-1]["total"] == 2 * len(blocks)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []  # Dask's scheduler logged none (a queue read that timed out did)


def test_no_feature_of_day_t_reads_a_later_day():
    """Every feature of every set: data after day t changed, rows up to t unchanged."""
    from pipelines.modelling.features import DEFAULT_SETS, FEATURES

    rng = np.random.default_rng(3)
    n = 120
    frame = pd.DataFrame({"date": pd.bdate_range("2021-01-01", periods=n)})
    for index_id in (TARGET, "EXO"):
        close = 1000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        spread = close * rng.uniform(0.001, 0.02, n)
        frame[f"{index_id}__open"] = close * (1 + rng.normal(0, 0.002, n))
        frame[f"{index_id}__high"] = close + spread * rng.uniform(0, 1, n)
        frame[f"{index_id}__low"] = close - spread * rng.uniform(0, 1, n)
        frame[f"{index_id}__close"] = close
        frame[f"{index_id}__volume"] = rng.integers(1e6, 1e7, n).astype(float)
    table = feature_table(frame, TARGET, DEFAULT_SETS, "price_action")
    assert {name.split("__")[1] for name in table.names} == set(FEATURES)
    cut = 80
    changed = frame.copy()
    numeric = changed.columns[1:]
    changed.loc[cut + 1:, numeric] = changed.loc[cut + 1:, numeric] * rng.uniform(
        0.5, 1.5, (n - cut - 1, len(numeric)))
    again = feature_table(changed, TARGET, DEFAULT_SETS, "price_action")
    upto = np.flatnonzero(table.dates <= frame["date"][cut])
    for set_name in DEFAULT_SETS:
        before, after = table.view(set_name), again.view(set_name)
        np.testing.assert_array_equal(before.features[upto], after.features[upto])
        assert not np.allclose(before.features[upto[-1] + 1:], after.features[upto[-1] + 1:])
    assert np.array_equal(table.labels[upto[:-1]], again.labels[upto[:-1]])


@pytest.mark.slow
def test_real_data_end_to_end_reproduces_the_readme_baselines(tmp_path, real_dir):
    """Real TEDPIX set, the README's split (test = last 125 labels), tiny networks."""
    from pipelines.data.dataset import read_dataset
    from pipelines.data.ingest import ingest
    from pipelines.modelling.select import write_selection
    from tests.support.stages import merge_files

    ingest(real_dir, tmp_path / "tables", tmp_path / "ingest.json")
    ids = [p.stem for p in sorted(real_dir.glob("*.csv"))]
    (tmp_path / "v.json").write_text(json.dumps({"passed": True, "usable_index_ids": ids}))
    merge_files(tmp_path / "tables", tmp_path / "v.json", tmp_path / "d.parquet",
                tmp_path / "s.json", TARGET)
    frame, _ = read_dataset(tmp_path / "d.parquet")
    table = feature_table(frame, TARGET, "stationary")
    assert len(table.labels) == 416  # the first day has no return
    settings = evaluation_settings(window=1, validation_fraction=0.15,
                                  test_fraction=125 / 415, refit_every=125, gap=0, seeds=(1,),
                                  bootstrap_samples=200)
    configs = {"lstm": ModelConfig.from_dict({"name": "lstm", **TINY, "cell": "lstm"}),
               "gru": ModelConfig.from_dict({"name": "gru", **TINY})}
    evaluation = evaluate_models(table, settings, configs)
    assert len(evaluation.test_days) == 125
    assert f"{table.dates[evaluation.test_days[0]]:%Y-%m-%d}" == f"{frame['date'][291]:%Y-%m-%d}"
    board = leaderboard(evaluation, "auto")
    models = board.models
    assert round(models["majority"].test["accuracy"], 3) == 0.712
    persistence = models["persistence"].test
    assert round(persistence["accuracy"], 3) == 0.600
    assert round(persistence["balanced_accuracy"], 3) == 0.512
    assert round(persistence["mcc"], 3) == 0.025
    for name in ("lstm", "gru", "logistic", "always_up"):
        test = models[name].test
        assert 0 <= test["accuracy"] <= 1 and -1 <= test["mcc"] <= 1
        low, high = test["mcc_ci"]
        assert low <= high
    assert board.champion in models
    write_selection(evaluation, board, tmp_path / "evaluation", tmp_path / "metrics.json",
                    BacktestSection())
    predictions = pd.read_parquet(tmp_path / "evaluation/predictions.parquet")
    assert set(predictions["model"]) == set(models)
    assert len(predictions[(predictions["split"] == "test") & (predictions["model"] == "lstm")]
               ) == 125


def test_roc_and_calibration_tables_have_a_column_per_model():
    """dvc plots draws a line per column: every model on the same false positive rates."""
    from pipelines.modelling.select import ROC_POINTS, calibration_table, roc_table

    labels = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    frame = pd.concat([
        pd.DataFrame({"model": "perfect", "label": labels, "probability_up": labels * 0.9 + 0.05}),
        pd.DataFrame({"model": "constant", "label": labels, "probability_up": 0.62}),
        pd.DataFrame({"model": "reversed", "label": labels, "probability_up": 0.9 - labels * 0.8}),
    ])
    roc = roc_table(frame)
    assert list(roc.columns) == ["fpr", "perfect", "constant", "reversed"]
    assert len(roc) == ROC_POINTS and roc["fpr"].iloc[[0, -1]].tolist() == [0.0, 1.0]
    assert (roc["perfect"] == 1.0).all()  # every up day ranked above every down day
    assert np.allclose(roc["constant"], roc["fpr"])  # no ranking: the diagonal
    assert roc["reversed"].iloc[-2] == 0.0 and roc["reversed"].iloc[-1] == 1.0
    assert roc_table(frame.assign(label=1))["perfect"].isna().all()  # one class: no curve

    calibration = calibration_table(frame)
    assert calibration["predicted"].round(2).tolist() == [0.05, 0.15, 0.25, 0.35, 0.45, 0.55,
                                                          0.65, 0.75, 0.85, 0.95]
    assert calibration.loc[0, "perfect"] == 0.0 and calibration.loc[9, "perfect"] == 1.0
    assert calibration.loc[6, "constant"] == 0.5 and calibration["constant"].count() == 1
