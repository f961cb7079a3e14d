"""Honest evaluation: chronological split, expanding-window walk-forward, baselines.

The labelled days (a window is available and the next close is known) are split in
time order into train / validation / test. Validation picks the champion: every model
and baseline is fitted on the training days and scored on the validation days. The
test span is then walked forward: every ``refit_every`` days each model is refitted on
all labelled days before the block minus a ``gap``, so that no training label reaches
into the block, and predicts each day of the block once. Scalers are fitted on the
same training rows only. Neural models run over several seeds; their mean probability
is the model's prediction, and the per-seed metrics give the spread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.features import FeatureTable, TrainOnlyScaler, sample_days, windows


@dataclass
class Blocks:
    """Walk-forward blocks: for each, the training days and the days it predicts."""

    train: list[np.ndarray]
    predict: list[np.ndarray]


def walk_forward_blocks(labelled_days: np.ndarray, test_days: np.ndarray, refit_every: int,
                        gap: int) -> Blocks:
    """Expanding window: block b trains on labelled days < start_b - gap."""
    if refit_every < 1 or gap < 0:
        raise ValueError("evaluate.refit_every must be >= 1 and evaluate.gap >= 0")
    starts = range(0, len(test_days), refit_every)
    predict = [test_days[i:i + refit_every] for i in starts]
    train = [labelled_days[labelled_days < block[0] - gap] for block in predict]
    return Blocks(train, predict)


@dataclass
class NetworkRun:
    """What one fit of a network did (for the model card and the benchmark)."""

    epochs: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


def fit_network(config: Any, table: FeatureTable, window: int, train_days: np.ndarray,
                seed: int, deterministic: bool = False, mixed_precision: bool = False
                ) -> tuple[Any, TrainOnlyScaler, NetworkRun]:
    """Fit one network on ``train_days`` (scaler on their rows only); return it and its run.

    The last tenth of the training days (in time order) is held out for early stopping.
    """
    from pipelines import devices
    from pipelines.models import build_model, early_stopping

    devices.configure(seed, deterministic=deterministic, mixed_precision=mixed_precision)
    scaler = TrainOnlyScaler().fit(table.features, int(train_days[-1]))
    samples = windows(scaler.transform(table.features), window)
    first_day = window - 1
    x = samples[train_days - first_day]
    y = table.labels[train_days]
    n_stop = max(1, len(train_days) // 10)
    model = build_model(config, samples.shape[1:])
    started = time.perf_counter()
    history = model.fit(
        x[:-n_stop], y[:-n_stop], validation_data=(x[-n_stop:], y[-n_stop:]),
        epochs=config.epochs, batch_size=config.batch_size, shuffle=True, verbose=0,
        callbacks=[early_stopping(config)],
    )
    seconds = time.perf_counter() - started
    run = NetworkRun(len(history.history["loss"]), seconds,
                     {k: [float(v) for v in vs] for k, vs in history.history.items()})
    return model, scaler, run


def predict_network(model: Any, scaler: TrainOnlyScaler, table: FeatureTable, window: int,
                    days: np.ndarray) -> np.ndarray:
    """Probability of up for each of ``days`` (rows after ``days.max()`` are not read)."""
    last = int(days.max())
    samples = windows(scaler.transform(table.features[: last + 1]), window)
    x = samples[days - (window - 1)]
    return model.predict(x, verbose=0).reshape(-1).astype("float64")


def network_walk_forward(config: Any, table: FeatureTable, window: int, blocks: Blocks,
                         seed: int, deterministic: bool = False,
                         mixed_precision: bool = False,
                         ) -> tuple[np.ndarray, list[NetworkRun]]:
    """Out-of-sample probabilities for every predicted day of ``blocks``, and the runs."""
    probabilities, runs = [], []
    for train_days, predict_days in zip(blocks.train, blocks.predict, strict=True):
        model, scaler, run = fit_network(config, table, window, train_days, seed,
                                         deterministic=deterministic,
                                         mixed_precision=mixed_precision)
        probabilities.append(predict_network(model, scaler, table, window, predict_days))
        runs.append(run)
    return np.concatenate(probabilities), runs


def baseline_walk_forward(name: str, table: FeatureTable, blocks: Blocks
                          ) -> tuple[np.ndarray, np.ndarray]:
    """A baseline's probabilities and classes over the walk-forward blocks."""
    from pipelines.baselines import run_baseline

    probabilities, classes = [], []
    for train_days, predict_days in zip(blocks.train, blocks.predict, strict=True):
        proba, cls = run_baseline(name, table.close, table.labels, train_days, predict_days)
        probabilities.append(np.asarray(proba, dtype="float64"))
        classes.append(np.asarray(cls, dtype="int64"))
    return np.concatenate(probabilities), np.concatenate(classes)


def labelled_sample_days(table: FeatureTable, window: int) -> np.ndarray:
    """Days that have a full window behind them and a known label."""
    days = sample_days(len(table.labels), window)
    return days[~np.isnan(table.labels[days])]


@dataclass(frozen=True)
class EvaluationSettings:
    """The ``features``, ``split``, ``evaluate`` and ``train`` tunables of params.yaml."""

    window: int = 10
    validation_fraction: float = 0.15
    test_fraction: float = 0.3
    refit_every: int = 60
    gap: int = 1
    seeds: tuple[int, ...] = (1, 2, 3)
    champion_metric: str = "mcc"
    baselines: tuple[str, ...] = ("majority", "always_up", "persistence", "logistic")
    bootstrap_block: int = 10
    bootstrap_samples: int = 1000
    deterministic: bool = False
    mixed_precision: bool = False


@dataclass
class ModelResult:
    """One model's (or baseline's) predictions on the validation and test days."""

    name: str
    kind: str  # network | baseline
    validation_proba: np.ndarray
    test_proba: np.ndarray  # mean over seeds for networks
    test_proba_by_seed: list[np.ndarray] = field(default_factory=list)
    runs: list[NetworkRun] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    # A baseline's own classes (persistence's class is its rule, not proba >= 0.5).
    validation_cls: np.ndarray | None = None
    test_cls: np.ndarray | None = None

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


def evaluate_models(table: FeatureTable, configs: dict[str, Any],
                    settings: EvaluationSettings,
                    progress: Callable[[str], None] | None = None) -> Evaluation:
    """Validation scores and walk-forward test predictions for networks and baselines.

    ``configs``: model name -> ``models.ModelConfig``.
    """
    from pipelines.features import chronological_split

    say = progress or (lambda message: None)
    labelled = labelled_sample_days(table, settings.window)
    split = chronological_split(labelled, settings.validation_fraction, settings.test_fraction)
    validation_blocks = walk_forward_blocks(labelled, split.validation,
                                            max(len(split.validation), 1), settings.gap)
    test_blocks = walk_forward_blocks(labelled, split.test, settings.refit_every, settings.gap)
    results: dict[str, ModelResult] = {}
    for name in settings.baselines:
        validation_proba, validation_cls = baseline_walk_forward(name, table, validation_blocks)
        test_proba, test_cls = baseline_walk_forward(name, table, test_blocks)
        results[name] = ModelResult(name, "baseline", validation_proba, test_proba,
                                    validation_cls=validation_cls, test_cls=test_cls)
    for name, config in configs.items():
        validation_by_seed, test_by_seed, runs = [], [], []
        for seed in settings.seeds:
            say(f"{name} seed {seed}: validation fit")
            proba, seed_runs = network_walk_forward(
                config, table, settings.window, validation_blocks, seed,
                settings.deterministic, mixed_precision=settings.mixed_precision)
            validation_by_seed.append(proba)
            say(f"{name} seed {seed}: walk-forward, {len(test_blocks.predict)} refits")
            proba, test_runs = network_walk_forward(
                config, table, settings.window, test_blocks, seed, settings.deterministic,
                mixed_precision=settings.mixed_precision)
            test_by_seed.append(proba)
            runs += seed_runs + test_runs
        results[name] = ModelResult(
            name, "network", np.mean(validation_by_seed, axis=0), np.mean(test_by_seed, axis=0),
            test_by_seed, runs, config.to_dict())
    return Evaluation(table.dates, table.labels, split, split.validation, split.test, results,
                      settings)


def leaderboard(evaluation: Evaluation) -> dict[str, Any]:
    """Metrics of every model on the same days, intervals, tests, and the champion.

    The champion is the best model on validation by ``champion_metric``; a network is
    promoted only if it also beats persistence there (otherwise the best baseline is).
    """
    from pipelines import metrics as m

    settings = evaluation.settings
    y_val = evaluation.labels[evaluation.validation_days].astype(int)
    y_test = evaluation.labels[evaluation.test_days].astype(int)
    rows: dict[str, dict[str, Any]] = {}
    for name, result in evaluation.results.items():
        test_pred = result.classes("test")
        row: dict[str, Any] = {
            "model": name, "kind": result.kind,
            "validation": m.classification_metrics(y_val, result.validation_proba,
                                                   y_pred=result.classes("validation")),
            "test": m.classification_metrics(y_test, result.test_proba, y_pred=test_pred),
        }
        for metric in ("balanced_accuracy", "mcc"):
            low, high = m.block_bootstrap_ci(y_test, test_pred, metric,
                                             block=settings.bootstrap_block,
                                             n_boot=settings.bootstrap_samples)
            row["test"][f"{metric}_ci"] = [low, high]
        if result.test_proba_by_seed:
            row["test_by_seed"] = m.summarise_seeds(
                [m.classification_metrics(y_test, p) for p in result.test_proba_by_seed])
            row["config"] = result.config
        if result.runs:
            row["training"] = {
                "fits": len(result.runs),
                "epochs_mean": float(np.mean([r.epochs for r in result.runs])),
                "seconds_total": float(sum(r.seconds for r in result.runs)),
                "seconds_per_epoch": float(sum(r.seconds for r in result.runs)
                                           / max(1, sum(r.epochs for r in result.runs))),
            }
        rows[name] = row

    metric = settings.champion_metric
    baseline_names = [n for n, r in evaluation.results.items() if r.kind == "baseline"]
    best_baseline = max(baseline_names, key=lambda n: _score(rows[n]["test"], metric))
    for name, row in rows.items():
        pred = evaluation.results[name].classes("test")
        best = evaluation.results[best_baseline].classes("test")
        row["vs_best_baseline"] = {"baseline": best_baseline,
                                   **m.mcnemar_test(y_test, pred, best)}
        row["pesaran_timmermann"] = m.pesaran_timmermann(y_test, pred)

    # The gate: a network is eligible only if it beats persistence on validation.
    notes, eligible = [], []
    persistence = rows.get("persistence")
    bar = _score(persistence["validation"], metric) if persistence else float("-inf")
    for name, row in rows.items():
        score = _score(row["validation"], metric)
        if row["kind"] == "network" and score <= bar:
            notes.append(f"{name} not promoted: validation {metric} {score:.3f} does not beat "
                         f"persistence ({bar:.3f})")
            continue
        eligible.append(name)
    champion = max(eligible, key=lambda n: _score(rows[n]["validation"], metric))
    from pipelines.devices import detect_device

    return {
        "champion": champion,
        "device": detect_device() if any(r["kind"] == "network" for r in rows.values())
        else None,
        "champion_metric": metric,
        "best_baseline_on_test": best_baseline,
        "notes": notes,
        "days": {"validation": len(evaluation.validation_days),
                 "test": len(evaluation.test_days),
                 "test_first": f"{evaluation.dates[evaluation.test_days[0]]:%Y-%m-%d}",
                 "test_last": f"{evaluation.dates[evaluation.test_days[-1]]:%Y-%m-%d}"},
        "models": rows,
    }


def _score(metrics: dict[str, Any], metric: str) -> float:
    value = metrics.get(metric)
    return float("-inf") if value is None or np.isnan(value) else float(value)


def write_evaluation(evaluation: Evaluation, board: dict[str, Any], out_dir: Any,
                     metrics_path: Any, rolling_window: int = 40) -> None:
    """Predictions (Parquet), the leaderboard (JSON), small metrics and DVC plot files.

    ``out_dir/predictions.parquet``: one row per model, split and day (probability,
    class, label). ``out_dir/leaderboard.json``: ``board``. ``metrics_path``: the test
    metrics per model, flat, for ``dvc metrics``. ``out_dir/plots/``: confusion.csv
    (champion), roc.csv, rolling_accuracy.csv. The folder is written aside and swapped in
    whole (``fileio.atomic_folder``): a failed or killed run leaves the last good one.
    """
    from pathlib import Path

    from pipelines.fileio import atomic_folder

    out, metrics_path = Path(out_dir), Path(metrics_path)
    with atomic_folder(out) as staging:
        inside = metrics_path.resolve().is_relative_to(out.resolve())
        staged_metrics = staging / metrics_path.resolve().relative_to(out.resolve()) \
            if inside else None
        _write_evaluation_files(evaluation, board, staging, staged_metrics, rolling_window)
    if not inside:
        _write_metrics(board, metrics_path)


def _write_metrics(board: dict[str, Any], metrics_path: Any) -> None:
    from pipelines.fileio import write_json

    write_json(metrics_path, {
        "champion": board["champion"],
        "models": {name: {k: row["test"][k] for k in
                          ("accuracy", "balanced_accuracy", "mcc", "f1", "roc_auc", "brier")}
                   for name, row in board["models"].items()}})


def _write_evaluation_files(evaluation: Evaluation, board: dict[str, Any], out: Any,
                            metrics_path: Any, rolling_window: int) -> None:
    import pandas as pd
    from sklearn.metrics import roc_curve

    from pipelines.fileio import atomic_path, write_json

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
    with atomic_path(out / "predictions.parquet") as tmp:
        predictions.to_parquet(tmp, index=False)
    write_json(out / "leaderboard.json", board)
    if metrics_path is not None:
        _write_metrics(board, metrics_path)

    test = predictions[predictions["split"] == "test"]
    plots = out / "plots"
    champion = test[test["model"] == (board["champion"] or test["model"].iloc[0])]
    _write_csv(plots / "confusion.csv", champion[["label", "predicted"]].rename(
        columns={"label": "actual"}))
    roc_parts = []
    for name, rows in test.groupby("model", sort=False):
        if rows["label"].nunique() == 2 and rows["probability_up"].nunique() > 1:
            fpr, tpr, _ = roc_curve(rows["label"], rows["probability_up"])
            roc_parts.append(pd.DataFrame({"model": name, "fpr": fpr, "tpr": tpr}))
    if roc_parts:
        _write_csv(plots / "roc.csv", pd.concat(roc_parts, ignore_index=True))
    rolling = rolling_accuracy(test, rolling_window)
    _write_csv(plots / "rolling_accuracy.csv",
               rolling.reset_index().assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d")))


def rolling_accuracy(test: Any, window: int, min_periods: int = 1) -> Any:
    """Rolling share of correct directions: a frame indexed by date, a column per model.

    ``test``: prediction rows (``date``, ``model``, ``label``, ``predicted``).
    """
    hits = test.assign(hit=(test["label"] == test["predicted"]).astype(float))
    table = hits.pivot(index="date", columns="model", values="hit").sort_index()
    return table.rolling(window, min_periods=min_periods).mean()


def _write_csv(path: Any, frame: Any) -> None:
    from pipelines.fileio import write_text

    write_text(path, frame.to_csv(index=False, float_format="%.6g"))
