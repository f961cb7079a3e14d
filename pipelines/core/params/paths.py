"""``paths:``: where each stage reads and writes, and the file names inside those folders.

The folders and top-level files are settings (params.yaml, relative to the project root);
the names of the files inside the folders are fixed, written once in
``pipelines/core/files.yaml`` (which ``dvc.yaml`` reads too) and reached here as
properties, e.g. ``paths.leaderboard`` for ``reports/evaluation/leaderboard.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from pipelines.core.params.base import Section

FILES: dict[str, str] = yaml.safe_load(
    Path(__file__).parents[1].joinpath("files.yaml").read_text(encoding="utf-8"))["files"]
# the files of one model's folder, <models_dir>/<name>/
MODEL_CARD, SCALER, TRAINING_LOG, CHAMPION, BASELINE = (
    FILES["card"], FILES["scaler"], FILES["training_log"], FILES["champion"], FILES["baseline"])
PAGE = FILES["page"]
PLOTS = FILES["plots_dir"]
TARGETS = FILES["targets_dir"]
# the folders that hold one target's outputs (each further target's in TARGETS/ISIN/)
PER_TARGET = ("walk_forward_dir", "evaluation_dir", "models_dir", "forecasts_dir", "drift_dir",
              "accuracy_dir")


def model_file(seed: int) -> str:
    """The file of a network's copy of seed ``seed``, in its folder."""
    return FILES["model"].format(seed=seed)

Place = Annotated[Path, Field(strict=False)]  # written as text in params.yaml


class Paths(Section):
    """``paths:`` of params.yaml (relative to the project root).

    Every path stays inside the project: a relative one may not climb out of it with
    ``..``, and an absolute one, read from a params.yaml, must lie in that file's folder
    (``load_params`` passes it as the validation context ``project``), so that no stage
    writes outside the project (or outside what DVC tracks).
    """

    raw_dir: Place = Field(Path("data/raw"), description=(
        "the export files (DVC-tracked)"))
    tables_dir: Place = Field(Path("data/interim/tables"), description=(
        "one typed tidy Parquet table per file"))
    ingest_report: Place = Field(Path("data/interim/ingest.json"), description=(
        "what ingest read and left out"))
    validation_summary: Place = Field(Path("data/interim/validation.json"), description=(
        "validation's verdicts"))
    validation_report_dir: Place = Field(Path("reports/validation"), description=(
        "the validation page and Great Expectations' results per file"))
    quarantine_dir: Place = Field(Path("data/quarantine"), description=(
        "one record per file left out"))
    dataset: Place = Field(Path("data/processed/merged.parquet"), description=(
        "the merged dataset"))
    merge_summary: Place = Field(Path("data/processed/merge_summary.json"), description=(
        "the merge's summary"))
    walk_forward_dir: Place = Field(Path("reports/walk_forward"), description=(
        "every network's and baseline's out-of-sample forecasts and each network's final "
        "fit (tsepipe evaluate; replaced whole)"))
    evaluation_dir: Place = Field(Path("reports/evaluation"), description=(
        "the leaderboard, the champion and its calibration, predictions, backtest and plot "
        "tables (tsepipe select; replaced whole)"))
    models_dir: Place = Field(Path("models"), description=(
        "one folder per model: a network's seeds, card, scaler and training history; a "
        "baseline's fitted state; champion.json (the model artifact)"))
    forecasts_dir: Place = Field(Path("forecasts"), description=(
        "the latest forecast and the log of every forecast"))
    drift_dir: Place = Field(Path("reports/drift"), description=(
        "the drift page (ours), Evidently's drift report, the summary and its history"))
    accuracy_dir: Place = Field(Path("reports/accuracy"), description=(
        "the accuracy page (ours), the classification page (Evidently), their summary"))
    front_page: Place = Field(Path("reports/index.html"), description=(
        "the one page a reviewer opens"))
    metrics_dir: Place = Field(Path("metrics"), description=(
        "the headline numbers for dvc metrics (a small JSON file, committed to git with "
        "each version)"))

    @field_validator("*", mode="after")
    @classmethod
    def _inside_the_project(cls, value: Path, info: ValidationInfo) -> Path:
        project = (info.context or {}).get("project")
        if value.is_absolute():
            outside = project is not None and not value.resolve().is_relative_to(project)
        else:
            outside = Path(os.path.normpath(value)).parts[:1] == ("..",)
        if outside:
            raise PydanticCustomError(
                "outside_project", "is outside the project: give a path relative to the "
                "project root, without climbing out of it with ..")
        return value

    # the files inside those folders (names: pipelines/core/files.yaml)
    @property
    def validation_page(self) -> Path:
        return self.validation_report_dir / PAGE

    @property
    def leaderboard(self) -> Path:
        return self.evaluation_dir / FILES["leaderboard"]

    @property
    def predictions(self) -> Path:
        return self.evaluation_dir / FILES["predictions"]

    @property
    def backtest(self) -> Path:
        return self.evaluation_dir / FILES["backtest"]

    @property
    def plots_dir(self) -> Path:
        return self.evaluation_dir / PLOTS

    @property
    def walk_forward(self) -> Path:
        return self.walk_forward_dir / FILES["walk_forward"]

    @property
    def walk_forward_record(self) -> Path:
        return self.walk_forward_dir / FILES["walk_forward_record"]

    @property
    def final_networks(self) -> Path:
        return self.walk_forward_dir / FILES["final_networks"]

    @property
    def equity_plot(self) -> Path:
        return self.plots_dir / FILES["equity_plot"]

    @property
    def forecast(self) -> Path:
        return self.forecasts_dir / FILES["forecast"]

    @property
    def forecast_log(self) -> Path:
        return self.forecasts_dir / FILES["forecast_log"]

    @property
    def track_record(self) -> Path:
        return self.forecasts_dir / FILES["track_record"]

    @property
    def champion_record(self) -> Path:
        return self.models_dir / CHAMPION

    @property
    def champion_days(self) -> Path:
        return self.forecasts_dir / FILES["champion_days"]

    @property
    def drift_page(self) -> Path:
        return self.drift_dir / PAGE

    @property
    def drift_summary(self) -> Path:
        return self.drift_dir / FILES["drift_summary"]

    @property
    def drift_evidently_page(self) -> Path:
        return self.drift_dir / FILES["drift_evidently_page"]

    @property
    def drift_history(self) -> Path:
        return self.drift_dir / FILES["drift_history"]

    @property
    def accuracy_page(self) -> Path:
        return self.accuracy_dir / PAGE

    @property
    def classification_page(self) -> Path:
        return self.accuracy_dir / FILES["classification_page"]

    @property
    def accuracy_summary(self) -> Path:
        return self.accuracy_dir / FILES["accuracy_summary"]

    @property
    def headline_metrics(self) -> Path:
        """The one DVC metrics file, select's: the champion, its test MCC and interval, the
        best baseline's (``Leaderboard.headline``). The other stages' numbers stay in their
        summaries (validation, merge, drift) and the leaderboard, which are not metrics."""
        return self.metrics_dir / FILES["headline_metrics"]

    @property
    def metrics_files(self) -> list[Path]:
        """The DVC metrics files: git holds them with each version (dvc metrics diff)."""
        return [self.headline_metrics]

    @property
    def run_log(self) -> Path:
        """One JSON line per data run, appended by the data flow: the version it published,
        or a failed run's ``{"finished", "failed", "problems"}`` (the front page says so
        until a run goes through). Not a DVC output, so no stage depends on it."""
        return self.front_page.parent / FILES["run_log"]

    @property
    def monitoring_log(self) -> Path:
        """One JSON line per monitoring run: the drift share and the decision."""
        return self.front_page.parent / FILES["monitoring_log"]

    @property
    def raw_dvc(self) -> Path:
        """The ``.dvc`` file that versions the raw folder (``tsepipe run`` writes it)."""
        return self.raw_dir.with_name(self.raw_dir.name + ".dvc")

    def model_dir(self, name: str) -> Path:
        return self.models_dir / name

    @property
    def targets_table(self) -> Path:
        """Every target's champion, record and call, and the pooled figures (select)."""
        return self.evaluation_dir / FILES["targets_table"]

    @property
    def chain_cache(self) -> Path:
        """The walk-forward chains already run, by a hash of all they read (evaluate reruns
        only the chains whose inputs changed: a target added, say). Not a DVC output and
        not in git: deleting it costs time only."""
        return self.walk_forward_dir.parent / ".walk_forward_cache"

    def for_target(self, target: str, headline: str) -> Paths:
        """Where target ``target``'s own outputs go: these paths for the headline target
        (``data.target_index``), else each per-target folder's ``per_target/TARGET/``."""
        if target == headline:
            return self
        return self.model_copy(update={
            name: getattr(self, name) / TARGETS / target for name in PER_TARGET})
