"""Parameters from ``params.yaml``: the one place where paths and tunables are defined.

``load_params`` reads the file and checks it once, against the schema below (pydantic):
every section known, every key known, each value of the right type and range. A wrong
file gives one ``error:`` line per wrong key, e.g.
``params.yaml: validate.max_bad_row_share: must be at most 1 (got 2.0)``, and nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipelines.errors import DataError

DEFAULT_PARAMS = Path("params.yaml")
TRADING_WEEKDAYS = frozenset({5, 6, 0, 1, 2})  # TSE trades Saturday .. Wednesday (Monday is 0)
# File names inside the output folders of params.yaml's paths (dvc.yaml repeats them)
LEADERBOARD = "leaderboard.json"
PREDICTIONS = "predictions.parquet"
BACKTEST = "backtest.json"
FORECAST = "latest.json"
FORECAST_LOG = "log.parquet"
DRIFT_SUMMARY = "drift.json"
ACCURACY_SUMMARY = "accuracy.json"
# The files of one model's folder, <models_dir>/<name>/
MODEL_FILE = "model.keras"
MODEL_CARD = "card.json"
SCALER = "scaler.json"
TRAINING_HISTORY = "history.csv"


@dataclass(frozen=True)
class Paths:
    raw_dir: Path
    tables_dir: Path
    ingest_report: Path
    validation_summary: Path
    validation_report_dir: Path
    quarantine_dir: Path
    dataset: Path
    merge_summary: Path
    evaluation_dir: Path
    evaluation_metrics: Path
    models_dir: Path
    forecasts_dir: Path
    drift_dir: Path
    accuracy_dir: Path
    front_page: Path

    # the files inside those folders: named here once, for their writers and readers
    @property
    def leaderboard(self) -> Path:
        return self.evaluation_dir / LEADERBOARD

    @property
    def predictions(self) -> Path:
        return self.evaluation_dir / PREDICTIONS

    @property
    def backtest(self) -> Path:
        return self.evaluation_dir / BACKTEST

    @property
    def forecast(self) -> Path:
        return self.forecasts_dir / FORECAST

    @property
    def forecast_log(self) -> Path:
        return self.forecasts_dir / FORECAST_LOG

    @property
    def drift_summary(self) -> Path:
        return self.drift_dir / DRIFT_SUMMARY

    @property
    def accuracy_summary(self) -> Path:
        return self.accuracy_dir / ACCURACY_SUMMARY


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


Share = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0)]


class PathsSection(_Section):
    raw_dir: str
    tables_dir: str
    ingest_report: str
    validation_summary: str
    validation_report_dir: str
    quarantine_dir: str
    dataset: str
    merge_summary: str
    evaluation_dir: str
    evaluation_metrics: str
    models_dir: str
    forecasts_dir: str
    drift_dir: str
    accuracy_dir: str
    front_page: str


class DataSection(_Section):
    target_index: Annotated[str, Field(min_length=1, pattern=r"^[^/\\\s]+$")]


def url_credentials(url: str) -> bool:
    """Whether ``url`` carries a user or password (``scheme://user:secret@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.netloc) and "@" in parts.netloc


class RemoteSection(_Section):
    """The DVC remote (``pipelines.remote``); credentials come from AWS_* variables only."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    url: Annotated[str, Field(min_length=1)]
    endpoint_url: Annotated[str, Field(pattern=r"^(https?://\S+)?$")]

    @model_validator(mode="after")
    def _no_secrets(self) -> RemoteSection:
        for key in ("url", "endpoint_url"):
            if url_credentials(getattr(self, key)):
                raise ValueError(f"{key}: must not hold credentials (user:password@); set "
                                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
        return self


class FetchSection(_Section):
    enabled: bool
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    timeout_seconds: Annotated[float, Field(gt=0)]
    retries: NonNegative
    backoff_seconds: Seconds
    pace_seconds: Seconds
    indices: dict[str, Annotated[int, Field(gt=0)]]


class IngestSection(_Section):
    file_patterns: Annotated[list[str], Field(min_length=1)]
    max_file_mb: Annotated[float, Field(gt=0)]


class ValidateSection(_Section):
    min_usable_files: Positive
    min_rows: Positive
    price_tolerance: Share
    max_bad_row_share: Share
    max_bad_rows: NonNegative


class MergeSection(_Section):
    min_coverage: Share
    max_fill_days: NonNegative
    max_target_days_lost: Share


class FeaturesSection(_Section):
    set: str
    window: Positive
    sets: Annotated[dict[str, Annotated[list[str], Field(min_length=1)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _known(self) -> FeaturesSection:
        # lazy: reading params (the CLI's start, `tsepipe run` with nothing to do) must not
        # pay for pandas; features does not import config, so this is no cycle
        from pipelines.features import check_feature_sets

        check_feature_sets(self.sets)
        if self.set not in self.sets:
            raise ValueError(f"set: {self.set!r} is not one of features.sets "
                             f"({', '.join(self.sets)})")
        return self


class SplitSection(_Section):
    validation_fraction: Annotated[float, Field(ge=0, lt=1)]
    test_fraction: Annotated[float, Field(gt=0, lt=1)]


class EvaluateSection(_Section):
    refit_every: Positive
    gap: NonNegative
    warm_start: bool
    warm_epochs: Positive
    workers: NonNegative
    champion_metric: Literal["mcc", "balanced_accuracy", "accuracy", "f1", "roc_auc"]
    promotion_margin: Annotated[float, Field(ge=0, le=1)]
    baselines: Annotated[list[Literal["majority", "always_up", "persistence", "logistic",
                                      "logistic_window"]], Field(min_length=1)]
    bootstrap_block: Positive
    bootstrap_samples: Positive


class TrainSection(_Section):
    seeds: Annotated[list[int], Field(min_length=1)]
    deterministic: bool
    mixed_precision: bool
    models: Annotated[dict[str, dict[str, Any]], Field(min_length=1)]

    @field_validator("models")
    @classmethod
    def _models(cls, models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from pipelines.models import ModelConfig  # lazy: as above (models imports devices)

        for name, spec in models.items():
            try:
                ModelConfig.from_dict({"name": name} | dict(spec or {}))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {exc}") from None
        return models


class DriftSection(_Section):
    current_days: Positive
    threshold: Share
    method: str | None
    method_threshold: Share


class SampleSection(_Section):
    days: Positive
    seed: int


class SweepSection(_Section):
    out_dir: str
    n_workers: Positive
    scheduler_address: str | None
    isolate: bool
    grid: Literal["study"] | dict[str, list[Any]]
    fixed: dict[str, Any]


class BacktestSection(_Section):
    mode: Literal["long_flat", "long_short"]
    cost_bps: Annotated[float, Field(ge=0)]
    risk_free_rate: Annotated[float, Field(ge=0, lt=5)]


class Params(_Section):
    """The whole of params.yaml: one section per stage (and paths)."""

    paths: PathsSection
    data: DataSection
    remote: RemoteSection
    fetch: FetchSection
    ingest: IngestSection
    validate_: ValidateSection = Field(alias="validate")
    merge: MergeSection
    features: FeaturesSection
    split: SplitSection
    evaluate: EvaluateSection
    train: TrainSection
    drift: DriftSection
    sample: SampleSection
    sweep: SweepSection
    backtest: BacktestSection

    @model_validator(mode="after")
    def _model_feature_sets(self) -> Params:
        for name, spec in self.train.models.items():
            chosen = (spec or {}).get("features") or ""
            if chosen and chosen not in self.features.sets:
                raise ValueError(f"train.models.{name}.features: {chosen!r} is not one of "
                                 f"features.sets ({', '.join(self.features.sets)})")
        return self


def _problem_lines(path: Path, error: ValidationError) -> list[str]:
    """One line per wrong key: ``FILE: section.key: what is wrong (got VALUE)``."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        kind = problem["type"]
        if kind == "extra_forbidden":
            message = ("unknown section" if len(problem["loc"]) == 1 else "unknown key")
        elif kind == "missing":
            message = "missing"
        elif kind == "value_error":  # our own checks name the key and the value
            key, _, message = message.partition(": ")
            where = f"{where}.{key}" if where else key
        else:
            message = f"{message} (got {problem['input']!r})"
        lines.append(f"{path}: {where}: {message}")
    return lines


def load_params(path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read and check params.yaml; a missing, malformed or wrong file is a DataError.

    Returns the parameters as plain mappings (each section as the file has it).
    """
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path}: parameters file not found (run tsepipe from the project root, "
            "or pass --params)"
        ) from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise DataError(f"{path}: expected a mapping of sections")
    try:
        Params.model_validate(params)
    except ValidationError as exc:
        raise DataError(_problem_lines(path, exc)) from None
    return params


def paths(params: dict[str, Any]) -> Paths:
    return Paths(**{name: Path(value) for name, value in params["paths"].items()})
