"""Features and labels from the merged dataset, and the windows the networks read.

Label of day t: 1 if the target's close on the next trading day is higher, else 0. The
last day has no label (NaN): it is the day to forecast.

Features are computed per index from the fields its file has (an index without volume
gets no volume feature), each from day t and earlier only:

- ``logret``: the log return of the close, log(close[t] / close[t - 1]);
- ``range``: the day's range over its close, (high - low) / close;
- ``close_place``: where the close lies in the day's range, (close - low) / (high - low),
  0.5 on a day with no range;
- ``logvol_change``: the change of log(1 + volume).

A feature set is a named list of them (``features.sets`` in params.yaml; ``features.set``
is the default, each model may name its own). All are stationary. The set ``levels``
(every raw column, as the study used) is kept only to reproduce the study: prices drift,
so a scaler fitted on the past is out of range later.

A window sample for day t stacks the feature rows t-W+1 .. t (numpy's
``sliding_window_view``, no Python loop). Scalers are fitted on training rows only:
``TrainOnlyScaler.fit`` takes the last training day and never looks past it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.columns import COLUMN_SEPARATOR, column_name, field_of, index_of
from pipelines.core.errors import DataError, printable
from pipelines.core.fileio import file_md5, write_json
from pipelines.core.params.data import DataSection
from pipelines.core.params.features import (
    DEFAULT_SETS,
    LEVELS,
    FeaturesSection,
    check_feature_sets,
)
from pipelines.core.params.paths import Paths
from pipelines.data.dataset import read_dataset

FeatureFunction = Callable[[Callable[[str], pd.Series]], pd.Series]


def _close_place(col: Callable[[str], pd.Series]) -> pd.Series:
    spread = col("high") - col("low")
    place = (col("close") - col("low")) / spread.where(spread > 0)
    return place.where(spread > 0, 0.5).clip(0.0, 1.0)


# feature -> (the fields it needs, how it is computed from an index's columns); the names
# are the schema's FEATURE_NAMES (a test checks that they agree)
FEATURES: dict[str, tuple[tuple[str, ...], FeatureFunction]] = {
    "logret": (("close",), lambda col: np.log(col("close")).diff()),
    "range": (("high", "low", "close"), lambda col: (col("high") - col("low")) / col("close")),
    "close_place": (("high", "low", "close"), _close_place),
    "logvol_change": (("volume",), lambda col: np.log1p(col("volume")).diff()),
}


# What each feature is, in words, for the pages.
FEATURE_LABELS = {"logret": "log returns", "range": "ranges",
                  "close_place": "the close's place in the range",
                  "logvol_change": "volume changes"}


def describe(names: Sequence[str]) -> str:
    """The kinds of feature among ``names`` (``<index>__<feature>``), in words."""
    kinds = dict.fromkeys(field_of(name) for name in names)
    return ", ".join(FEATURE_LABELS.get(kind, kind) for kind in kinds)


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
            seen.setdefault(index_of(column), None)
    return list(seen)


def stationary_features(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Per index, each of ``features`` its fields allow (first row NaN for the changes)."""
    columns = {}
    for index_id in _index_ids(frame):
        def col(field: str, i: str = index_id) -> pd.Series:
            return frame[column_name(i, field)]

        for feature in features:
            needs, compute = FEATURES[feature]
            if all(column_name(index_id, need) in frame for need in needs):
                columns[column_name(index_id, feature)] = compute(col)
    return pd.DataFrame(columns, index=frame.index)


def level_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Every numeric column as it is (the study's set-up)."""
    return frame.drop(columns=["date"]).astype("float64")


@dataclass
class FeatureTable:
    """Features and labels by trading day (rows with incomplete features removed).

    ``sets``: feature set name -> the columns of ``features`` it reads; ``view(name)`` is
    the table of one set (the same days, labels and closes).
    """

    dates: pd.DatetimeIndex
    features: np.ndarray  # (days, features)
    labels: np.ndarray  # (days,), NaN on the last day
    close: np.ndarray  # the target's close, for baselines and reports
    names: list[str]
    sets: dict[str, list[int]] = field(default_factory=dict)  # of the whole table
    set_name: str = ""
    whole: FeatureTable | None = field(default=None, repr=False)  # a view's whole table

    def view(self, set_name: str | None) -> FeatureTable:
        """The table of feature set ``set_name`` (this one for None or its own name)."""
        if not set_name or set_name == self.set_name:
            return self
        whole = self.whole or self
        if set_name not in whole.sets:
            raise ValueError(f"feature set {set_name!r} is not in this table "
                             f"(it has {', '.join(whole.sets) or 'none'})")
        columns = whole.sets[set_name]
        return FeatureTable(whole.dates, whole.features[:, columns], whole.labels,
                            whole.close, [whole.names[c] for c in columns], whole.sets,
                            set_name, whole)


def feature_table(frame: pd.DataFrame, target_index: str,
                  sets: Mapping[str, Sequence[str]] | str,
                  default: str | None = None) -> FeatureTable:
    """Build the feature table of every set in ``sets`` from a merged dataset.

    ``frame``: ``dataset.read_dataset``'s frame. ``sets``: set name -> features (a bare set
    name picks it from ``DEFAULT_SETS``). Rows where any set's feature is missing are
    removed, so every set sees the same days. Returns the view of ``default`` (the first
    set when not given), whose ``view`` reaches the others.
    """
    if isinstance(sets, str):
        if sets not in DEFAULT_SETS:
            raise ValueError(f"features: unknown feature set {sets!r} (expected one of "
                             f"{', '.join(DEFAULT_SETS)})")
        sets = {sets: DEFAULT_SETS[sets]}
    check_feature_sets(sets)
    default = default or next(iter(sets))
    wanted = [f for f in dict.fromkeys(f for chosen in sets.values() for f in chosen)
              if f != LEVELS]
    stationary = stationary_features(frame, wanted)
    levels = level_features(frame) if any(LEVELS in chosen for chosen in sets.values()) \
        else pd.DataFrame(index=frame.index)
    features = pd.concat([stationary, levels], axis=1)
    close = frame[column_name(target_index, "close")].to_numpy(dtype="float64")
    labels = make_labels(close)
    complete = features.notna().all(axis=1).to_numpy()
    names = list(features.columns)
    n_stationary = stationary.shape[1]
    columns = {
        name: list(range(n_stationary, len(names))) if LEVELS in chosen else
        [i for i in range(n_stationary) if field_of(names[i]) in chosen]
        for name, chosen in sets.items()
    }
    table = FeatureTable(
        dates=pd.DatetimeIndex(frame["date"])[complete],
        features=features.to_numpy(dtype="float64")[complete],
        labels=labels[complete],
        close=close[complete],
        names=names,
        sets=columns,
    )
    return table.view(default)


def windows(features: np.ndarray, window: int) -> np.ndarray:
    """(days, F) -> (days - window + 1, window, F); sample i ends on day i + window - 1."""
    if window < 1 or window > len(features):
        raise ValueError(f"window must be within 1..{len(features)}, got {window}")
    view = np.lib.stride_tricks.sliding_window_view(features, window, axis=0)
    return np.ascontiguousarray(view.transpose(0, 2, 1))


def sample_days(n_days: int, window: int) -> np.ndarray:
    """The day each window sample ends on (its label's day)."""
    return np.arange(window - 1, n_days)


def labelled_sample_days(table: FeatureTable, window: int) -> np.ndarray:
    """Days that have a full window behind them and a known label."""
    days = sample_days(len(table.labels), window)
    return days[~np.isnan(table.labels[days])]


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
    """Standardises features with the mean and spread of training rows only.

    ``save`` and ``load`` keep it beside its model (``scaler.json``) with the names of the
    features it was fitted on, which the daily stages check against today's dataset.
    """

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.last_day_: int | None = None
        self.names: list[str] = []  # the features, in column order (set by save and load)

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

    def save(self, path: Path | str, names: Sequence[str]) -> None:
        """Write it as JSON (atomically), with the feature ``names`` it was fitted on."""
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("TrainOnlyScaler.save before fit")
        self.names = list(names)
        write_json(path, {"mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                          "last_training_day": self.last_day_, "features": self.names})

    @classmethod
    def load(cls, path: Path | str) -> TrainOnlyScaler:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
        scaler = cls()
        scaler.mean_ = np.asarray(saved["mean"])
        scaler.scale_ = np.asarray(saved["scale"])
        scaler.last_day_ = saved["last_training_day"]
        scaler.names = list(saved["features"])
        return scaler


def dataset_table(paths: Paths, data: DataSection, features: FeaturesSection
                  ) -> tuple[FeatureTable, str]:
    """The modelling stages' input: (the feature table of ``features.set`` over every set of
    ``features.sets``, built from the merged dataset; the dataset's MD5, its version)."""
    if not paths.dataset.exists():
        raise DataError(f"{paths.dataset}: no merged dataset; run tsepipe merge first")
    frame, _ = read_dataset(paths.dataset)
    check_dataset(frame, paths.dataset, data.target_index)
    table = feature_table(frame, data.target_index, features.sets, features.set)
    return table, file_md5(paths.dataset)


def target_tables(paths: Paths, data: DataSection, features: FeaturesSection
                  ) -> tuple[dict[str, FeatureTable], list[str]]:
    """({target: its feature table}, the targets asked for that the dataset lacks): every
    target of ``data.targets`` (``DataSection.resolve``: the headline first, then the
    merged dataset's order). The tables share their days and features (every index's) and
    differ in their labels and closes."""
    if not paths.dataset.exists():
        raise DataError(f"{paths.dataset}: no merged dataset; run tsepipe merge first")
    frame, _ = read_dataset(paths.dataset)
    check_dataset(frame, paths.dataset, data.target_index)
    ids = [index_of(name) for name in frame.columns
           if COLUMN_SEPARATOR in name and field_of(name) == "close"]
    targets, missing = data.resolve(ids)
    return {target: feature_table(frame, target, features.sets, features.set)
            for target in targets}, missing


def check_dataset(frame: pd.DataFrame, path: Path | str, target_index: str) -> None:
    """A DataError of one line unless ``frame`` is shaped as the merge writes it: a ``date``
    column of days, the target's close, every other column numbers (another Parquet table
    put in its place would otherwise fail deep inside a stage)."""
    close = column_name(target_index, "close")
    missing = [name for name in ("date", close) if name not in frame.columns]
    wrong = [] if missing else [name for name in frame.columns if name != "date" and
                                not pd.api.types.is_numeric_dtype(frame[name])]
    if not missing and not pd.api.types.is_datetime64_any_dtype(frame["date"]):
        wrong.insert(0, "date")
    if missing or wrong:
        what = (f"no column {', '.join(missing)}" if missing else
                f"column {', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''} of the "
                "wrong kind")
        raise DataError(f"{printable(path)}: not tsepipe's merged dataset ({printable(what)}); "
                        f"rebuild it with tsepipe merge, or dvc checkout {printable(path)}")
