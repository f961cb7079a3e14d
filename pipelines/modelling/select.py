"""Choosing the champion from the walk-forward's forecasts: the select stage.

It reads what ``evaluate`` wrote (every network's and baseline's out-of-sample P(up) and
class, ``pipelines.modelling.results``) and refits nothing, so a change of the champion
rule, of a combination of evaluated members or of the calibration reruns it in seconds:

- the combinations (``evaluate.combinations``): the mean of their members' P(up), day by
  day, up when it is >= 0.5;
- every model's scores on the validation and test days, with 95 % moving-block bootstrap
  intervals, McNemar's test against the best baseline and Pesaran-Timmermann's against
  chance;
- the champion, by the rule of ``pipelines.modelling.champion`` on the validation days;
- calibration (``pipelines.modelling.calibration``): every candidate's Brier score and
  calibration error on the test days, raw and through each map fitted on the validation
  days; the champion's map (``forecast.calibration``; ``auto``: chosen by a check on the
  validation days alone), and how often its out-of-sample forecasts in each band of the
  published probability went up;
- the files: ``leaderboard.json``, ``predictions.parquet``, the backtest of the
  champion's test-day forecasts and the plot tables for ``dvc plots``, into
  ``paths.evaluation_dir`` (written aside and swapped in whole), and the headline numbers
  for ``dvc metrics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from pipelines.core.fileio import atomic_folder, atomic_path, write_json, write_metrics, write_text
from pipelines.core.params.backtest import BacktestSection
from pipelines.core.params.forecast import ForecastSection
from pipelines.core.params.paths import FILES, PLOTS, TARGETS, Paths
from pipelines.modelling import calibration as cal
from pipelines.modelling import metrics as m
from pipelines.modelling.backtest import backtest
from pipelines.modelling.champion import choose_champion, score
from pipelines.modelling.leaderboard import Days, Leaderboard, ModelRow
from pipelines.modelling.metrics import rolling_accuracy
from pipelines.modelling.results import (
    Evaluation,
    ModelResult,
    predictions_frame,
    read_walk_forward,
    walk_forward_settings,
)
from pipelines.modelling.settings import EvaluationSettings


def select(paths: Paths, settings: EvaluationSettings, backtest_settings: BacktestSection,
           forecast: ForecastSection, headline: bool) -> Leaderboard:
    """The select stage for one target (its ``paths``, ``Paths.for_target``): the
    leaderboard, champion and calibration from the walk-forward's files; written to
    ``paths.evaluation_dir`` and, for the ``headline`` target, ``paths.headline_metrics``."""
    evaluation = read_walk_forward(paths.walk_forward, paths.walk_forward_record, settings)
    board = leaderboard(evaluation, forecast.calibration)
    write_selection(evaluation, board, paths.evaluation_dir,
                    paths.headline_metrics if headline else None, backtest_settings)
    return board


def combine(name: str, members: list[ModelResult]) -> ModelResult:
    """The combination of ``members``: the mean of their probabilities of up, day by day
    (each network's already a mean over its seeds); up when that mean is >= 0.5."""
    return ModelResult(
        name, "combination",
        np.mean([member.validation_proba for member in members], axis=0),
        np.mean([member.test_proba for member in members], axis=0),
        members=[member.name for member in members],
        reads=f"the mean probability of up of {', '.join(member.name for member in members)}")


def add_combinations(evaluation: Evaluation) -> None:
    """``evaluate.combinations`` added to the results, each whose members were all
    evaluated (a sweep's grid has other names)."""
    results = evaluation.results
    for name, members in evaluation.settings.evaluate.combinations.items():
        if all(member in results and results[member].kind != "combination"
               for member in members):
            results[name] = combine(name, [results[member] for member in members])


def leaderboard(evaluation: Evaluation, calibration: str) -> Leaderboard:
    """Metrics of every model on the same days, intervals, tests, the champion and its
    calibration (``calibration``: ``forecast.calibration``).

    The combinations are added first (``add_combinations``). The champion is chosen by
    ``pipelines.modelling.champion.choose_champion``; ``champion_reason`` says why, with
    numbers.
    """
    add_combinations(evaluation)
    settings = evaluation.settings
    walk = settings.evaluate
    y_val, y_test = evaluation.labels_of("validation"), evaluation.labels_of("test")
    rows = {name: _row(name, result, y_val, y_test, settings)
            for name, result in evaluation.results.items()}
    metric = walk.champion_metric
    baseline_names = [n for n, r in evaluation.results.items() if r.kind == "baseline"]
    best_baseline = max(baseline_names, key=lambda n: score(rows[n]["test"], metric))
    for name, row in rows.items():
        pred = evaluation.results[name].classes("test")
        best = evaluation.results[best_baseline].classes("test")
        row["vs_best_baseline"] = {"baseline": best_baseline,
                                   **m.mcnemar_test(y_test, pred, best)}
        row["pesaran_timmermann"] = m.pesaran_timmermann(y_test, pred)
    champion, reason, notes = choose_champion(rows, baseline_names, metric,
                                              walk.promotion_margin)
    return Leaderboard(
        champion=champion,
        champion_reason=reason,
        device=evaluation.device,
        champion_metric=metric,
        promotion_margin=walk.promotion_margin,
        best_baseline_on_validation=max(
            baseline_names, key=lambda n: score(rows[n]["validation"], metric)),
        best_baseline_on_test=best_baseline,
        notes=notes,
        walk_forward=evaluation.walk_forward or walk_forward_settings(settings),
        days=Days(validation=len(evaluation.validation_days), test=len(evaluation.test_days),
                  validation_first=_day(evaluation, evaluation.validation_days, 0),
                  validation_last=_day(evaluation, evaluation.validation_days, -1),
                  test_first=_day(evaluation, evaluation.test_days, 0),
                  test_last=_day(evaluation, evaluation.test_days, -1)),
        models={name: ModelRow(**row) for name, row in rows.items()},
        calibration=champion_calibration(evaluation.results[champion], y_val, y_test,
                                         calibration),
        baselines_by_validation=sorted(
            baseline_names, key=lambda n: -score(rows[n]["validation"], metric)),
    )


def _day(evaluation: Evaluation, days: np.ndarray, position: int) -> str | None:
    return f"{evaluation.dates[days[position]]:%Y-%m-%d}" if len(days) else None


def _row(name: str, result: ModelResult, y_val: np.ndarray, y_test: np.ndarray,
         settings: EvaluationSettings) -> dict[str, Any]:
    """One model's leaderboard row: metrics on both spans, intervals, calibration, seeds,
    training."""
    test_pred = result.classes("test")
    row: dict[str, Any] = {
        "model": name, "kind": result.kind,
        "validation": m.classification_metrics(y_val, result.validation_proba,
                                               y_pred=result.classes("validation"))
        if len(y_val) else {},
        "test": m.classification_metrics(y_test, result.test_proba, y_pred=test_pred),
        "feature_set": result.feature_set or None,
        "features": result.features,
        "reads": result.reads,
    }
    if result.members:
        row["members"] = result.members
    spans = [("test", y_test, test_pred)]
    if len(y_val):  # the spread of the score the champion is chosen on, too
        spans.append(("validation", y_val, result.classes("validation")))
        row["calibration"] = cal.scores_on_test_days(
            (result.validation_proba, y_val), (result.test_proba, y_test))
    for span, y, pred in spans:
        for metric in ("balanced_accuracy", "mcc"):
            low, high = m.block_bootstrap_ci(y, pred, metric,
                                             block=settings.evaluate.bootstrap_block,
                                             n_boot=settings.evaluate.bootstrap_samples)
            row[span][f"{metric}_ci"] = [low, high]
    row.update(result.summary)  # a network's test_by_seed and training
    if result.kind == "network":
        row["config"] = result.config
    return row


def champion_calibration(result: ModelResult, y_val: np.ndarray, y_test: np.ndarray,
                         setting: str) -> dict[str, Any]:
    """The champion's calibration: the method (``setting``, or for ``auto`` the check's
    choice on the validation days alone), its map fitted on every validation day, and the
    reliability of the published (calibrated) probability on the validation and test days,
    by band (how often the days in each band went up)."""
    if len(y_val) == 0:
        method, check = "none", {"note": "no validation days: nothing to fit a map on"}
    elif setting == "auto":
        method, check = cal.choose_method(result.validation_proba, y_val)
    else:
        method, check = setting, {"note": "set in params.yaml (forecast.calibration)"}
    mapping = cal.fit_map(method, result.validation_proba, y_val)
    published = {split: cal.apply_map(mapping, result.proba(split))
                 for split in ("validation", "test")}
    return {"setting": setting, "method": mapping["method"], "check": check, "map": mapping,
            "reliability": {split: cal.reliability(published[split], y)
                            for split, y in (("validation", y_val), ("test", y_test))}}


def write_selection(evaluation: Evaluation, board: Leaderboard, out_dir: Path,
                    metrics_path: Path | None, backtest_settings: BacktestSection) -> None:
    """Predictions (Parquet), the leaderboard (JSON), small metrics and DVC plot files.

    ``out_dir/predictions.parquet``: one row per model (combinations included), split and
    day (probability, class, label). ``out_dir/leaderboard.json``: ``board``.
    ``metrics_path``: the headline for ``dvc metrics`` and ``dvc exp show``
    (``Leaderboard.headline``: the champion, its test MCC and interval, the best baseline's);
    None for a target other than the headline (its figures are in ``paths.targets_table``).
    ``out_dir/plots/``: confusion.csv (champion), roc.csv and calibration.csv (a column per
    model), rolling_accuracy.csv (``evaluate.rolling_window`` days), equity.csv (names:
    ``pipelines/core/files.yaml``). ``out_dir/backtest.json``: the backtest of the
    champion's test-day forecasts (``backtest_settings``: params.yaml's section), also in
    ``board.backtest``. The folder is written aside and swapped in whole
    (``fileio.atomic_folder``): a failed or killed run leaves the last good one. The
    further targets' folders inside it (``per_target/``) are carried over.
    """
    out = Path(out_dir)
    with atomic_folder(out, keep=(TARGETS,)) as staging:
        _write_backtest(evaluation, board, staging, backtest_settings)
        predictions = predictions_frame(evaluation)
        with atomic_path(staging / FILES["predictions"]) as tmp:
            predictions.to_parquet(tmp, index=False)
        board.write(staging / FILES["leaderboard"])
        _write_plots(predictions, board, staging / PLOTS,
                     evaluation.settings.evaluate.rolling_window)
    if metrics_path is not None:
        write_metrics(metrics_path, board.headline())


def _write_backtest(evaluation: Evaluation, board: Leaderboard, out: Path,
                    settings: BacktestSection) -> None:
    if evaluation.close is None:
        return
    forecasts = {board.champion: evaluation.results[board.champion].classes("test")}
    if "persistence" in evaluation.results:
        forecasts["persistence"] = evaluation.results["persistence"].classes("test")
    result, equity = backtest(evaluation.dates, evaluation.close, evaluation.test_days,
                              forecasts, settings)
    result["champion"] = board.champion
    board.backtest = result
    write_json(out / FILES["backtest"], result)
    # fixed column names for dvc plots: the champion's column is "champion"
    equity = equity.rename(columns={board.champion: "champion"})
    _write_csv(out / PLOTS / FILES["equity_plot"],
               equity.reset_index().assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d")))


def _write_plots(predictions: pd.DataFrame, board: Leaderboard, plots: Path,
                 rolling_window: int) -> None:
    test = predictions[predictions["split"] == "test"]
    champion = test[test["model"] == board.champion]
    _write_csv(plots / FILES["confusion_plot"], champion[["label", "predicted"]].rename(
        columns={"label": "actual"}))
    _write_csv(plots / FILES["roc_plot"], roc_table(test))
    _write_csv(plots / FILES["calibration_plot"], calibration_table(test))
    rolling = rolling_accuracy(test, rolling_window)
    _write_csv(plots / FILES["rolling_accuracy_plot"],
               rolling.reset_index().assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d")))


ROC_POINTS = 101  # the false positive rates every model's ROC curve is read at


def roc_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """One ROC curve per model on a shared false positive rate grid (0, 0.01, .. 1): a
    column ``fpr`` and one true positive rate column per model (so ``dvc plots`` draws
    one line per model), the curve through the model's ROC points (at a rate where the
    curve rises straight up, its top). A constant forecast is the diagonal; with labels
    of one value there is no curve (an empty column)."""
    grid = np.linspace(0.0, 1.0, ROC_POINTS)
    table = pd.DataFrame({"fpr": grid})
    for name, rows in predictions.groupby("model", sort=False):
        table[name] = np.nan
        if rows["label"].nunique() == 2:
            fpr, tpr, _ = roc_curve(rows["label"], rows["probability_up"])
            table[name] = _along(fpr, tpr, grid)
    return table


def _along(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The ROC polyline (points in order, vertical steps included) at each rate of grid."""
    last = np.searchsorted(fpr, grid, side="right") - 1  # the top of a step at that rate
    following = np.minimum(last + 1, len(fpr) - 1)
    span = fpr[following] - fpr[last]
    weight = np.divide(grid - fpr[last], span, out=np.zeros_like(grid), where=span > 0)
    return tpr[last] + weight * (tpr[following] - tpr[last])


def calibration_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """The reliability of each model's probabilities: for ten bands of predicted P(up)
    (``predicted``: the band's middle), the share of up days among the days each model put
    in it; empty where a model put no day."""
    edges = np.linspace(0.0, 1.0, cal.BANDS + 1)
    table = pd.DataFrame({"predicted": (edges[:-1] + edges[1:]) / 2})
    for name, rows in predictions.groupby("model", sort=False):
        bands = cal.band_of(rows["probability_up"])
        observed = rows["label"].groupby(bands).mean()
        table[name] = observed.reindex(range(cal.BANDS)).to_numpy()
    return table


def _write_csv(path: Any, frame: Any) -> None:
    write_text(path, frame.to_csv(index=False, float_format="%.6g"))
