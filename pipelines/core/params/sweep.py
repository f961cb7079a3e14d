"""``sweep:``: the hyper-parameter sweep (``tsepipe sweep``, ``flows/sweep.py``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from pipelines.core.params.base import Positive, Section


class SweepSection(Section):
    out_dir: str = Field("reports/sweep", description="leaderboard.parquet + leaderboard.json")
    n_workers: Positive = Field(2, description=(
        "local Dask worker processes, 1 thread (and 1 TF thread) each"))
    scheduler_address: str | None = Field(None, description=(
        "or an existing Dask scheduler, e.g. tcp://10.0.0.5:8786"))
    isolate: bool = Field(True, description=(
        "each config in a fresh process (TF/Keras keep ~27 MB per fit)"))
    grid: Literal["study"] | dict[str, list[Any]] = Field("study", description=(
        "study: the study's 96 configs; or a grid of lists, e.g. {cell: [lstm], units: "
        "[[64], [128, 64]]}"))
    fixed: dict[str, Any] = Field(
        default_factory=lambda: {"epochs": 40, "batch_size": 32, "patience": 6,
                                 "learning_rate": 0.001, "l1": 0.001},
        description="shared by every config; split, seeds, refits: as evaluate")
