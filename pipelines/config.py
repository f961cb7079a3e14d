"""Parameters from ``params.yaml``: the one place where paths and tunables are defined."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import DataError

DEFAULT_PARAMS = Path("params.yaml")
TRADING_WEEKDAYS = frozenset({5, 6, 0, 1, 2})  # TSE trades Saturday .. Wednesday (Monday is 0)


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


def load_params(path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read params.yaml; a missing or malformed file is a DataError naming it."""
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
    return params


def paths(params: dict[str, Any]) -> Paths:
    return Paths(**{name: Path(value) for name, value in params["paths"].items()})
