"""Features and labels from the merged dataset, and the windows the networks read.

Label of day t: 1 if the target's close on the next trading day is higher, else 0. The
last day has no label (NaN): it is the day to forecast.

Features per index (``kind="stationary"``, the default): the log return of the close,
the change of log(1 + volume), and the day's range (high - low) / close. With
``kind="levels"`` the raw columns are used, as the study did (prices drift, so every
scaler fitted on the past is out of range later: kept only to reproduce the study).

A window sample for day t stacks the feature rows t-W+1 .. t (numpy's
``sliding_window_view``, no Python loop). Scalers are fitted on training rows only:
``TrainOnlyScaler.fit`` takes the last training day and never looks past it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.config import COLUMN_SEPARATOR

FEATURE_KINDS = ("stationary", "levels")


def make_labels(close: np.ndarray) -> np.ndarray:
    """1.0 where the next close is higher, 0.0 where not, NaN for the last day."""
    close = np.asarray(close, dtype="float64")
    labels = np.full(close.shape, np.nan)
    labels[:-1] = (close[1:] > close[:-1]).astype("float64")
    return labels


def _index_ids(frame: pd.DataFrame) -> list[str]:
    seen: dict[str, None] = {}
    for column in frame.columns:
        if COLUMN_SEPARATOR in column:
            seen.setdefault(column.split(COLUMN_SEPARATOR)[0], None)
    return list(seen)


def stationary_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Per index: log return, change of log(1 + volume), range / close (first row NaN)."""
    columns = {}
    for index_id in _index_ids(frame):
        col = lambda field, i=index_id: frame[f"{i}{COLUMN_SEPARATOR}{field}"]  # noqa: E731
        columns[f"{index_id}__logret"] = np.log(col("close")).diff()
        if f"{index_id}__volume" in frame:
            columns[f"{index_id}__logvol_change"] = np.log1p(col("volume")).diff()
        if f"{index_id}__high" in frame and f"{index_id}__low" in frame:
            columns[f"{index_id}__range"] = (col("high") - col("low")) / col("close")
    return pd.DataFrame(columns, index=frame.index)


def level_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Every numeric column as it is (the study's set-up)."""
    return frame.drop(columns=["date"]).astype("float64")


@dataclass
class FeatureTable:
    """Features and labels by trading day (rows with incomplete features removed)."""

    dates: pd.DatetimeIndex
    features: np.ndarray  # (days, features)
    labels: np.ndarray  # (days,), NaN on the last day
    close: np.ndarray  # the target's close, for baselines and reports
    names: list[str]


def feature_table(frame: pd.DataFrame, target_index: str, kind: str = "stationary"
                  ) -> FeatureTable:
    """Build the feature table from a merged dataset (``merge.read_dataset``'s frame)."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"features.kind: expected one of {', '.join(FEATURE_KINDS)}, "
                         f"got {kind!r}")
    features = stationary_features(frame) if kind == "stationary" else level_features(frame)
    close = frame[f"{target_index}{COLUMN_SEPARATOR}close"].to_numpy(dtype="float64")
    labels = make_labels(close)
    complete = features.notna().all(axis=1).to_numpy()
    return FeatureTable(
        dates=pd.DatetimeIndex(frame["date"])[complete],
        features=features.to_numpy(dtype="float64")[complete],
        labels=labels[complete],
        close=close[complete],
        names=list(features.columns),
    )


def windows(features: np.ndarray, window: int) -> np.ndarray:
    """(days, F) -> (days - window + 1, window, F); sample i ends on day i + window - 1."""
    if window < 1 or window > len(features):
        raise ValueError(f"window must be within 1..{len(features)}, got {window}")
    view = np.lib.stride_tricks.sliding_window_view(features, window, axis=0)
    return np.ascontiguousarray(view.transpose(0, 2, 1))


def sample_days(n_days: int, window: int) -> np.ndarray:
    """The day each window sample ends on (its label's day)."""
    return np.arange(window - 1, n_days)


@dataclass
class Split:
    """Chronological split of the labelled days (day indices into a FeatureTable)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def chronological_split(labelled_days: np.ndarray, validation_fraction: float,
                        test_fraction: float) -> Split:
    """Oldest days for training, then validation, then the most recent for testing."""
    n = len(labelled_days)
    n_test = int(round(n * test_fraction))
    n_validation = int(round(n * validation_fraction))
    n_train = n - n_test - n_validation
    if n_train < 1 or n_test < 1:
        raise ValueError(f"split: {n} labelled days leave {n_train} for training and "
                         f"{n_test} for testing")
    return Split(labelled_days[:n_train], labelled_days[n_train:n_train + n_validation],
                 labelled_days[n_train + n_validation:])


class TrainOnlyScaler:
    """Standardises features with the mean and spread of training rows only."""

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.last_day_: int | None = None

    def fit(self, features: np.ndarray, last_training_day: int) -> TrainOnlyScaler:
        """Fit on rows 0 .. last_training_day (inclusive), the rows training windows use."""
        rows = features[: last_training_day + 1]
        self.mean_ = rows.mean(axis=0)
        scale = rows.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.last_day_ = last_training_day
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        if self.mean_ is None:
            raise RuntimeError("TrainOnlyScaler.transform before fit")
        return (values - self.mean_) / self.scale_
