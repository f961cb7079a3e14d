"""Honest evaluation: chronological split, walk-forward validation and test, baselines.

The labelled days (a window is available and the next close is known) are split in
time order into train / validation / test. Both later spans are walked forward with the
same rule: every ``refit_every`` days each model is refitted on all labelled days before
the block minus a ``gap``, so that no training label reaches into it, and predicts each
day of the block once. Scalers are fitted on the same training rows only. Networks run
over several seeds (fitted together, one walk-forward per network, the networks in
parallel processes on Dask); their mean probability is the model's prediction, and the
per-seed metrics give the spread. With ``warm_start`` a network's refits after the first
continue from the previous block's weights (``pipelines.modelling.fitting``).

The champion is chosen on the pooled validation predictions by the rule of
``pipelines.modelling.champion`` (candidates within ``promotion_margin`` of the best are
tied; a tie goes to a combination, else a baseline, else the best network); each
candidate's validation score has its bootstrap interval beside it. The leaderboard says
why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from pipelines.core.fileio import atomic_folder, atomic_path, write_json, write_metrics, write_text
from pipelines.core.params.backtest import BacktestSection
from pipelines.core.params.data import DataSection
from pipelines.core.params.paths import FILES, PLOTS, Paths
from pipelines.core.params.train import ModelConfig
from pipelines.modelling import metrics as m
from pipelines.modelling.backtest import backtest
from pipelines.modelling.baselines import baseline_walk_forward
from pipelines.modelling.champion import choose_champion, score
from pipelines.modelling.features import (
    FeatureTable,
    chronological_split,
    dataset_table,
    labelled_sample_days,
)
from pipelines.modelling.fitting import (
    Chain,
    FinalFit,
    NetworkRun,
    chains_for,
    save_final,
    walk_forward_chains,
)
from pipelines.modelling.leaderboard import Days, Leaderboard, ModelRow
from pipelines.modelling.metrics import rolling_accuracy
from pipelines.modelling.settings import EvaluationSettings
from pipelines.modelling.walkforward import walk_forward_blocks


@dataclass
class ModelResult:
    """One model's (or baseline's) predictions on the validation and test days."""

    name: str
    kind: str  # network | baseline | combination
    validation_proba: np.ndarray  # mean over seeds for networks
    test_proba: np.ndarray  # mean over seeds for networks
    test_proba_by_seed: list[np.ndarray] = field(default_factory=list)
    runs: list[NetworkRun] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    # A baseline's own classes (persistence's class is its rule, not proba >= 0.5).
    validation_cls: np.ndarray | None = None
    test_cls: np.ndarray | None = None
    features: list[str] = field(default_factory=list)  # what it reads
    feature_set: str = ""
    members: list[str] = field(default_factory=list)  # a combination's
    final: FinalFit | None = None  # a network's next refit on every labelled day

    def classes(self, split: str) -> np.ndarray:
        own = self.validation_cls if split == "validation" else self.test_cls
        proba = self.validation_proba if split == "validation" else self.test_proba
        return own if own is not None else (proba >= 0.5).astype(int)


@dataclass
class Evaluation:
    dates: Any  # pandas DatetimeIndex of the feature table
    labels: np.ndarray
    split: Any
    validation_days: np.ndarray
    test_days: np.ndarray
    results: dict[str, ModelResult]
    settings: EvaluationSettings
    close: np.ndarray | None = None  # the target's closes (for the backtest)


# What each baseline reads, for the leaderboard.
BASELINE_INPUTS = {
    "majority": "the share of up days among the training labels",
    "always_up": "nothing",
    "persistence": "the direction of the move into the day",
    "logistic": "the target's last 5 log returns",
    "logistic_window": "the window of the feature set the networks read",
}


def evaluate(paths: Paths, data: DataSection, settings: EvaluationSettings,
             backtest: BacktestSection, progress: Callable[[str], None] | None = None
             ) -> Leaderboard:
    """The evaluate stage: every network and baseline walked forward on the merged dataset;
    the leaderboard, predictions, plots and backtest written to ``paths.evaluation_dir``."""
    table, _ = dataset_table(paths, data, settings.features)
    evaluation = evaluate_models(table, settings, progress=progress, final=True)
    board = leaderboard(evaluation)
    write_evaluation(evaluation, board, paths.evaluation_dir, paths.evaluate_metrics,
                     backtest)
    return board


def evaluate_models(table: FeatureTable, settings: EvaluationSettings,
                    configs: dict[str, ModelConfig] | None = None,
                    progress: Callable[[str], None] | None = None, final: bool = False
                    ) -> Evaluation:
    """Walk-forward validation and test predictions of every network and baseline.

    ``table``: the feature table of the default set, ``features.set`` (its ``view`` reaches
    the others).
    ``configs``: model name -> ``ModelConfig``, the networks (default: ``train.models``;
    a sweep passes its own). ``progress`` gets one line per network refit: "lstm seed 2/3:
    refit 5/9 (...); ETA 1m20s".
    """
    say = progress or (lambda message: None)
    configs = settings.train.models if configs is None else configs
    window, walk, seeds = settings.features.window, settings.evaluate, settings.train.seeds
    labelled = labelled_sample_days(table, window)
    split = chronological_split(labelled, settings.split.validation_fraction,
                                settings.split.test_fraction)
    validation_blocks = walk_forward_blocks(labelled, split.validation, walk.refit_every,
                                            walk.gap) if len(split.validation) else None
    test_blocks = walk_forward_blocks(labelled, split.test, walk.refit_every, walk.gap)
    blocks = (validation_blocks + test_blocks) if validation_blocks else test_blocks
    n_validation = len(split.validation)
    default = table  # the view of features.set (dataset_table makes it so)
    results: dict[str, ModelResult] = {}
    for name in walk.baselines:
        proba, cls = baseline_walk_forward(name, default, blocks, window)
        results[name] = ModelResult(
            name, "baseline", proba[:n_validation], proba[n_validation:],
            validation_cls=cls[:n_validation], test_cls=cls[n_validation:],
            features=default.names if name == "logistic_window" else [],
            feature_set=default.set_name if name == "logistic_window" else "")
    chains = chains_for({name: (config, default.view(config.features or None))
                         for name, config in configs.items()}, seeds)
    if chains:
        say(f"{len(configs)} networks x {len(seeds)} seeds (fitted together), "
            f"{len(blocks)} refits each "
            f"({len(validation_blocks or [])} validation, {len(test_blocks)} test blocks), "
            f"{'warm' if walk.warm_start else 'cold'} refits")
    options = {"deterministic": settings.train.deterministic,
               "mixed_precision": settings.train.mixed_precision,
               "warm_start": walk.warm_start, "warm_epochs": walk.warm_epochs,
               "final_days": labelled if final and walk.warm_start else None}
    outcomes = walk_forward_chains(chains, window, blocks, options, walk.workers,
                                   progress=lambda m: say(_progress_line(m)),
                                   scheduler=walk.scheduler)
    results.update(_network_results(configs, chains, outcomes, seeds, n_validation))
    for name, members in walk.combinations.items():
        if all(member in results for member in members):  # a sweep's grid has other names
            results[name] = combine(name, [results[member] for member in members])
    return Evaluation(table.dates, table.labels, split, split.validation, split.test, results,
                      settings, table.close)


def _network_results(configs: dict[str, ModelConfig], chains: list[Chain],
                     outcomes: list[tuple], seeds: Sequence[int], n_validation: int
                     ) -> dict[str, ModelResult]:
    """Each network's result from its chains' outcomes: the mean over seeds of the
    probabilities (validation days first, ``n_validation`` of them, then test days), each
    seed's test probabilities, the runs, and the first seed's final refit."""
    results = {}
    for name, config in configs.items():
        own = [(chain, outcome) for chain, outcome in zip(chains, outcomes, strict=True)
               if chain.name == name]
        rows = {seed: proba for chain, (probabilities, _, _) in own
                for seed, proba in zip(chain.seeds, probabilities, strict=True)}
        by_seed = [rows[seed] for seed in seeds]
        view = own[0][0].table
        results[name] = ModelResult(
            name, "network", np.mean([p[:n_validation] for p in by_seed], axis=0),
            np.mean([p[n_validation:] for p in by_seed], axis=0),
            [p[n_validation:] for p in by_seed], [run for _, o in own for run in o[1]],
            config.to_dict(), features=view.names, feature_set=view.set_name,
            final=next((o[2] for chain, o in own if seeds[0] in chain.seeds), None))
    return results


def combine(name: str, members: list[ModelResult]) -> ModelResult:
    """The combination of ``members``: the mean of their probabilities of up, day by day
    (each network's already a mean over its seeds); up when that mean is >= 0.5."""
    return ModelResult(
        name, "combination",
        np.mean([member.validation_proba for member in members], axis=0),
        np.mean([member.test_proba for member in members], axis=0),
        members=[member.name for member in members])


def _progress_line(message: dict[str, Any]) -> str:
    eta = message.get("eta_seconds")
    eta_text = f"{int(eta // 60)}m{int(eta % 60):02d}s" if eta is not None else "?"
    seeds = message["seeds"]
    return (f"{message['model']} seed{'s' if len(seeds) > 1 else ''} "
            f"{', '.join(map(str, seeds))}: refit "
            f"{message['refit']}/{message['refits']} ({message['epochs']} epochs, "
            f"{message['seconds']:.1f} s); {message['done']}/{message['total']} refits done, "
            f"ETA {eta_text}")


def leaderboard(evaluation: Evaluation) -> Leaderboard:
    """Metrics of every model on the same days, intervals, tests, and the champion.

    The champion is chosen by ``pipelines.modelling.champion.choose_champion``;
    ``champion_reason`` says why, with numbers.
    """
    settings = evaluation.settings
    walk = settings.evaluate
    y_val = evaluation.labels[evaluation.validation_days].astype(int)
    y_test = evaluation.labels[evaluation.test_days].astype(int)
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
        device=next((run.device for result in evaluation.results.values()
                     for run in result.runs if run.device), None),  # the chains' own
        champion_metric=metric,
        promotion_margin=walk.promotion_margin,
        best_baseline_on_validation=max(
            baseline_names, key=lambda n: score(rows[n]["validation"], metric)),
        best_baseline_on_test=best_baseline,
        notes=notes,
        walk_forward={"refit_every": walk.refit_every, "gap": walk.gap,
                      "warm_start": walk.warm_start,
                      "warm_epochs": walk.warm_epochs if walk.warm_start else None,
                      "seeds": list(settings.train.seeds), "window": settings.features.window},
        days=Days(validation=len(evaluation.validation_days), test=len(evaluation.test_days),
                  validation_first=_day(evaluation, evaluation.validation_days, 0),
                  validation_last=_day(evaluation, evaluation.validation_days, -1),
                  test_first=_day(evaluation, evaluation.test_days, 0),
                  test_last=_day(evaluation, evaluation.test_days, -1)),
        models={name: ModelRow(**row) for name, row in rows.items()},
    )


def _day(evaluation: Evaluation, days: np.ndarray, position: int) -> str | None:
    return f"{evaluation.dates[days[position]]:%Y-%m-%d}" if len(days) else None


def _row(name: str, result: ModelResult, y_val: np.ndarray, y_test: np.ndarray,
         settings: EvaluationSettings) -> dict[str, Any]:
    """One model's leaderboard row: metrics on both spans, intervals, seeds, training."""
    test_pred = result.classes("test")
    row: dict[str, Any] = {
        "model": name, "kind": result.kind,
        "validation": m.classification_metrics(y_val, result.validation_proba,
                                               y_pred=result.classes("validation"))
        if len(y_val) else {},
        "test": m.classification_metrics(y_test, result.test_proba, y_pred=test_pred),
        "feature_set": result.feature_set or None,
        "features": result.features,
        "reads": _reads(name, result, settings.features.window),
    }
    if result.members:
        row["members"] = result.members
    spans = [("test", y_test, test_pred)]
    if len(y_val):  # the spread of the score the champion is chosen on, too
        spans.append(("validation", y_val, result.classes("validation")))
    for span, y, pred in spans:
        for metric in ("balanced_accuracy", "mcc"):
            low, high = m.block_bootstrap_ci(y, pred, metric,
                                             block=settings.evaluate.bootstrap_block,
                                             n_boot=settings.evaluate.bootstrap_samples)
            row[span][f"{metric}_ci"] = [low, high]
    if result.test_proba_by_seed:
        row["test_by_seed"] = m.summarise_seeds(
            [m.classification_metrics(y_test, p) for p in result.test_proba_by_seed])
        row["config"] = result.config
    if result.runs:
        row["training"] = _training(result.runs)
    return row


def _reads(name: str, result: ModelResult, window: int) -> str:
    if result.kind == "baseline":
        return BASELINE_INPUTS.get(name, "")
    if result.kind == "combination":
        return f"the mean probability of up of {', '.join(result.members)}"
    return (f"the last {window} days of the feature set {result.feature_set} "
            f"({len(result.features)} features)")


def _training(runs: list[NetworkRun]) -> dict[str, Any]:
    cold = [r for r in runs if not r.warm]
    warm = [r for r in runs if r.warm]
    return {
        "fits": len(runs),
        "warm_fits": len(warm),
        "epochs_mean": float(np.mean([r.epochs for r in runs])),
        "epochs_mean_cold": float(np.mean([r.epochs for r in cold])) if cold else None,
        "epochs_mean_warm": float(np.mean([r.epochs for r in warm])) if warm else None,
        "seconds_total": float(sum(r.seconds for r in runs)),
        "seconds_per_epoch": float(sum(r.seconds for r in runs)
                                   / max(1, sum(r.epochs for r in runs))),
    }


def write_evaluation(evaluation: Evaluation, board: Leaderboard, out_dir: Path,
                     metrics_path: Path, backtest: BacktestSection) -> None:
    """Predictions (Parquet), the leaderboard (JSON), small metrics and DVC plot files.

    ``out_dir/predictions.parquet``: one row per model, split and day (probability,
    class, label). ``out_dir/leaderboard.json``: ``board``. ``metrics_path``: the headline
    numbers for ``dvc metrics`` (``Leaderboard.headline``). ``out_dir/plots/``: confusion.csv
    (champion), roc.csv and calibration.csv (a column per model), rolling_accuracy.csv
    (``evaluate.rolling_window`` days), equity.csv (names: ``pipelines/core/files.yaml``).
    ``out_dir/backtest.json``: the backtest of the champion's test-day forecasts
    (``backtest``: params.yaml's section), also in ``board.backtest``. The folder is
    written aside and swapped in whole (``fileio.atomic_folder``): a failed or killed run
    leaves the last good one.
    """
    out, metrics_path = Path(out_dir), Path(metrics_path)
    with atomic_folder(out) as staging:
        inside = metrics_path.resolve().is_relative_to(out.resolve())
        staged_metrics = staging / metrics_path.resolve().relative_to(out.resolve()) \
            if inside else None
        _write_evaluation_files(evaluation, board, staging, staged_metrics, backtest)
    if not inside:
        _write_metrics(board, metrics_path)


def _write_metrics(board: Leaderboard, metrics_path: Any) -> None:
    write_metrics(metrics_path, board.headline())


def _write_evaluation_files(evaluation: Evaluation, board: Leaderboard, out: Path,
                            metrics_path: Path | None, backtest_settings: BacktestSection
                            ) -> None:
    plots = out / PLOTS
    for name, result in evaluation.results.items():
        if result.final is not None:  # tsepipe train saves these as the networks
            save_final(out / FILES["final_networks"], name,
                       evaluation.settings.train.models[name], result.features,
                       evaluation.settings.train.seeds[0], result.final)
    if evaluation.close is not None:
        forecasts = {board.champion: evaluation.results[board.champion].classes("test")}
        if "persistence" in evaluation.results:
            forecasts["persistence"] = evaluation.results["persistence"].classes("test")
        result, equity = backtest(evaluation.dates, evaluation.close, evaluation.test_days,
                                  forecasts, backtest_settings)
        result["champion"] = board.champion
        board.backtest = result
        write_json(out / FILES["backtest"], result)
        # fixed column names for dvc plots: the champion's column is "champion"
        equity = equity.rename(columns={board.champion: "champion"})
        _write_csv(plots / FILES["equity_plot"],
                   equity.reset_index().assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d")))

    frames = []
    for name, result in evaluation.results.items():
        for split, days, proba in (("validation", evaluation.validation_days,
                                    result.validation_proba),
                                   ("test", evaluation.test_days, result.test_proba)):
            frames.append(pd.DataFrame({
                "model": name, "kind": result.kind, "split": split,
                "date": evaluation.dates[days], "day": days,
                "label": evaluation.labels[days].astype(int),
                "probability_up": proba, "predicted": result.classes(split)}))
    predictions = pd.concat(frames, ignore_index=True)
    with atomic_path(out / FILES["predictions"]) as tmp:
        predictions.to_parquet(tmp, index=False)
    board.write(out / FILES["leaderboard"])
    if metrics_path is not None:
        _write_metrics(board, metrics_path)

    test = predictions[predictions["split"] == "test"]
    champion = test[test["model"] == board.champion]
    _write_csv(plots / FILES["confusion_plot"], champion[["label", "predicted"]].rename(
        columns={"label": "actual"}))
    _write_csv(plots / FILES["roc_plot"], roc_table(test))
    _write_csv(plots / FILES["calibration_plot"], calibration_table(test))
    rolling = rolling_accuracy(test, evaluation.settings.evaluate.rolling_window)
    _write_csv(plots / FILES["rolling_accuracy_plot"],
               rolling.reset_index().assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d")))


ROC_POINTS = 101  # the false positive rates every model's ROC curve is read at
CALIBRATION_BINS = 10


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
    """The reliability of each model's probabilities: for ten bins of predicted P(up)
    (``predicted``: the bin's middle), the share of up days among the days each model put
    in it; empty where a model put no day."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    table = pd.DataFrame({"predicted": (edges[:-1] + edges[1:]) / 2})
    for name, rows in predictions.groupby("model", sort=False):
        bins = np.clip(np.digitize(rows["probability_up"], edges[1:-1]), 0,
                       CALIBRATION_BINS - 1)
        observed = rows["label"].groupby(bins).mean()
        table[name] = observed.reindex(range(CALIBRATION_BINS)).to_numpy()
    return table


def _write_csv(path: Any, frame: Any) -> None:
    write_text(path, frame.to_csv(index=False, float_format="%.6g"))
