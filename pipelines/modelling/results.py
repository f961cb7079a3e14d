"""The walk-forward's results: every model's out-of-sample forecasts, and their file.

``evaluate`` makes an ``Evaluation`` (each network's and baseline's P(up) and class on the
validation and test days) and writes it with ``write_walk_forward`` into
``paths.walk_forward_dir``: ``walk_forward.parquet`` (a row per model, split and day:
probability, class, label, the day's close and the next one) and ``evaluation.json``
(what each model is and how it was run). ``select`` reads them back with
``read_walk_forward`` and does everything that needs no refit: the combinations, the
scores and their intervals, the champion, the calibration and the plots. So a change of
the champion rule reruns the selection in seconds, not the walk-forward.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.errors import DataError, printable
from pipelines.core.fileio import atomic_path, write_json
from pipelines.modelling.settings import EvaluationSettings


@dataclass
class ModelResult:
    """One model's (or baseline's) predictions on the validation and test days."""

    name: str
    kind: str  # network | baseline | combination
    validation_proba: np.ndarray  # mean over seeds for networks
    test_proba: np.ndarray  # mean over seeds for networks
    test_proba_by_seed: list[np.ndarray] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)  # a network's fits (fitting.NetworkRun)
    config: dict[str, Any] = field(default_factory=dict)
    # A baseline's own classes (persistence's class is its rule, not proba >= 0.5).
    validation_cls: np.ndarray | None = None
    test_cls: np.ndarray | None = None
    features: list[str] = field(default_factory=list)  # what it reads
    feature_set: str = ""
    members: list[str] = field(default_factory=list)  # a combination's
    final: Any = None  # a network's next refit on every labelled day (fitting.FinalFit)
    reads: str = ""  # what it reads, in words
    summary: dict[str, Any] = field(default_factory=dict)  # what the walk-forward recorded

    def classes(self, split: str) -> np.ndarray:
        own = self.validation_cls if split == "validation" else self.test_cls
        proba = self.validation_proba if split == "validation" else self.test_proba
        return own if own is not None else (proba >= 0.5).astype(int)

    def proba(self, split: str) -> np.ndarray:
        return self.validation_proba if split == "validation" else self.test_proba


@dataclass
class Evaluation:
    """Every model on the same days. ``dates``, ``labels`` and ``close`` are indexed by the
    dataset's day number (``validation_days`` and ``test_days`` are such numbers); read back
    from the walk-forward's file they hold the predicted days and the day after each only
    (the rest NaT / NaN)."""

    dates: Any  # pandas DatetimeIndex
    labels: np.ndarray
    split: Any
    validation_days: np.ndarray
    test_days: np.ndarray
    results: dict[str, ModelResult]
    settings: EvaluationSettings
    close: np.ndarray | None = None  # the target's closes (for the backtest)
    device: dict[str, Any] | None = None  # where the networks' chains ran
    walk_forward: dict[str, Any] | None = None  # how it ran (read back: as evaluate recorded)

    def labels_of(self, split: str) -> np.ndarray:
        days = self.validation_days if split == "validation" else self.test_days
        return self.labels[days].astype(int)


def walk_forward_settings(settings: EvaluationSettings) -> dict[str, Any]:
    """How the walk-forward ran: its refit rule, the seeds and the window."""
    walk = settings.evaluate
    return {"refit_every": walk.refit_every, "gap": walk.gap, "warm_start": walk.warm_start,
            "warm_epochs": walk.warm_epochs if walk.warm_start else None,
            "seeds": list(settings.train.seeds), "window": settings.features.window}


def predictions_frame(evaluation: Evaluation) -> pd.DataFrame:
    """A row per model, split and day: model, kind, split, date, day, label,
    probability_up, predicted (its class)."""
    frames = []
    for name, result in evaluation.results.items():
        for split, days in (("validation", evaluation.validation_days),
                            ("test", evaluation.test_days)):
            frames.append(pd.DataFrame({
                "model": name, "kind": result.kind, "split": split,
                "date": evaluation.dates[days], "day": days,
                "label": evaluation.labels[days].astype(int),
                "probability_up": result.proba(split), "predicted": result.classes(split)}))
    return pd.concat(frames, ignore_index=True)


def write_walk_forward(evaluation: Evaluation, parquet: Path, record: Path) -> None:
    """The walk-forward's forecasts (``parquet``: ``predictions_frame`` with each day's
    ``close`` and ``next_close``) and its record (``record``: the walk-forward's settings,
    the device, and per model its kind, features, what it reads, config, training and
    per-seed scores)."""
    frame = predictions_frame(evaluation)
    close = np.asarray(evaluation.close, dtype="float64")
    frame["close"] = close[frame["day"]]
    frame["next_close"] = close[frame["day"] + 1]
    frame["next_date"] = evaluation.dates[frame["day"] + 1]
    with atomic_path(parquet) as tmp:
        frame.to_parquet(tmp, index=False)
    write_json(record, {
        "walk_forward": walk_forward_settings(evaluation.settings),
        "device": evaluation.device,
        "models": {name: {"kind": r.kind, "features": r.features, "feature_set": r.feature_set,
                          "reads": r.reads, "config": r.config or None, **r.summary}
                   for name, r in evaluation.results.items()},
    })


def read_walk_forward(parquet: Path, record: Path, settings: EvaluationSettings
                      ) -> Evaluation:
    """The ``Evaluation`` that ``write_walk_forward`` wrote (no network runs or final fits:
    their summaries only); a missing or foreign file is a ``DataError`` naming it."""
    for path in (parquet, record):
        if not Path(path).is_file():
            raise DataError(f"{printable(path)}: missing; run tsepipe evaluate first")
    try:
        frame = pd.read_parquet(parquet)
        meta = json.loads(Path(record).read_text(encoding="utf-8"))
        return _evaluation(frame, meta, settings)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{printable(parquet)}: not a walk-forward tsepipe can read "
                        f"({type(exc).__name__}: {str(exc)[:120]}); run tsepipe evaluate "
                        "again") from None


def _evaluation(frame: pd.DataFrame, meta: dict[str, Any], settings: EvaluationSettings
                ) -> Evaluation:
    first = frame[frame["model"] == frame["model"].iloc[0]]
    days = {split: first.loc[first["split"] == split, "day"].to_numpy(dtype="int64")
            for split in ("validation", "test")}
    size = int(frame["day"].max()) + 2
    dates = pd.Series(pd.NaT, index=range(size), dtype="datetime64[ns]")
    labels, close = np.full(size, np.nan), np.full(size, np.nan)
    dates[first["day"].to_numpy()] = pd.to_datetime(first["date"]).to_numpy()
    dates[first["day"].to_numpy() + 1] = pd.to_datetime(first["next_date"]).to_numpy()
    labels[first["day"]] = first["label"]
    close[first["day"]] = first["close"]
    close[first["day"] + 1] = first["next_close"]
    results = {}
    for name, rows in frame.groupby("model", sort=False):
        own = meta["models"][name]
        by_split = {split: rows[rows["split"] == split] for split in ("validation", "test")}
        results[name] = ModelResult(
            name, own["kind"], by_split["validation"]["probability_up"].to_numpy(),
            by_split["test"]["probability_up"].to_numpy(),
            config=own.get("config") or {},
            validation_cls=by_split["validation"]["predicted"].to_numpy(dtype="int64"),
            test_cls=by_split["test"]["predicted"].to_numpy(dtype="int64"),
            features=own.get("features") or [], feature_set=own.get("feature_set") or "",
            reads=own.get("reads", ""),
            summary={k: own[k] for k in ("training", "test_by_seed") if own.get(k)})
    return Evaluation(pd.DatetimeIndex(dates), labels, None, days["validation"], days["test"],
                      results, settings, close, meta.get("device"), meta.get("walk_forward"))
