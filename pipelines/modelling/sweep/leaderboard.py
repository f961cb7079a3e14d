"""The sweep's leaderboard: every config's row and the baselines', best validation MCC first.

``write_leaderboard`` writes the full rows as JSON and one flat row each as Parquet
(``flat_row``, also the Prefect artifact's columns); ``plain`` makes a row
JSON-serialisable (Python scalars, NaN and inf as None) wherever it was computed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.fileio import atomic_path, write_json
from pipelines.core.params.paths import FILES

METRICS = ("accuracy", "balanced_accuracy", "mcc", "f1", "roc_auc", "brier", "log_loss")
SORT_METRIC = "mcc"  # on validation, as evaluate's champion


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and tuples turned into Python ones, NaN/inf into None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _sort_key(row: dict[str, Any]) -> tuple[float, str]:
    value = (row.get("validation") or {}).get(SORT_METRIC)
    score = float(value) if value is not None and math.isfinite(value) else float("-inf")
    return -score, str(row["model"])


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best validation MCC first (ties by name); each row gets its ``rank`` (1 = best)."""
    names = [row["model"] for row in rows]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"leaderboard: two rows are named {duplicates[0]!r}")
    return [row | {"rank": rank} for rank, row in enumerate(sorted(rows, key=_sort_key), 1)]


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """One leaderboard row as flat columns (the Parquet table and the Prefect artifact)."""
    config = row.get("config") or {}
    test, validation = row.get("test") or {}, row.get("validation") or {}
    by_seed = row.get("test_by_seed") or {}
    training = row.get("training") or {}
    worker = row.get("worker") or {}
    units = config.get("units")
    flat: dict[str, Any] = {
        "rank": row.get("rank"),
        "model": row["model"],
        "kind": row["kind"],
        "cell": config.get("cell"),
        "units": "-".join(str(u) for u in units) if units else None,
        "layers": len(units) if units else None,
        "optimizer": config.get("optimizer"),
        "dropout": config.get("dropout"),
        "learning_rate": config.get("learning_rate"),
        "l1": config.get("l1"),
        "max_epochs": config.get("epochs"),
        "params": row.get("params"),
    }
    for split, metrics in (("validation", validation), ("test", test)):
        for metric in METRICS:
            flat[f"{split}_{metric}"] = metrics.get(metric)
    for metric in ("mcc", "balanced_accuracy"):
        low, high = test.get(f"{metric}_ci") or (None, None)
        flat[f"test_{metric}_ci_low"], flat[f"test_{metric}_ci_high"] = low, high
    flat["test_mcc_seed_std"] = (by_seed.get("mcc") or {}).get("std")
    flat["n_seeds"] = by_seed.get("n_seeds")
    flat["fits"] = training.get("fits")
    flat["epochs_mean"] = training.get("epochs_mean")
    flat["training_seconds"] = training.get("seconds_total")
    flat["seconds_per_epoch"] = training.get("seconds_per_epoch")
    versus = row.get("vs_best_baseline") or {}
    flat["best_baseline"] = versus.get("baseline")
    flat["p_vs_best_baseline"] = versus.get("p_value_one_sided")
    flat["pesaran_timmermann_p"] = (row.get("pesaran_timmermann") or {}).get("p_value")
    flat["wall_seconds"] = row.get("wall_seconds")
    flat["worker"] = worker.get("address")
    flat["worker_pid"] = worker.get("pid")
    flat["process_pid"] = (row.get("process") or {}).get("pid")
    return flat


def write_leaderboard(rows: list[dict[str, Any]], out_dir: Path | str,
                      meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``out_dir/leaderboard.json`` (full rows) and ``leaderboard.parquet`` (flat).

    Rows (networks and baselines, told apart by ``kind``) are sorted by validation MCC,
    best first. ``meta`` (settings, cluster, failures, ...) goes into the JSON beside
    the rows. Both files are written atomically. Returns the JSON document.
    """
    out = Path(out_dir)
    ranked = sort_rows([plain(row) for row in rows])
    board = {"sorted_by": f"validation {SORT_METRIC}", **plain(dict(meta or {})),
             "rows": ranked}
    table = pd.DataFrame([flat_row(row) for row in ranked])
    with atomic_path(out / "leaderboard.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    write_json(out / FILES["leaderboard"], board)
    return board
