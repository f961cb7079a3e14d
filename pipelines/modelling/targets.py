"""Several targets: which indices a project forecasts, and their record side by side.

``data.targets`` names the indices forecast besides ``data.target_index`` (the headline:
the merge's calendar, the DVC metrics, first on every page). ``tsepipe evaluate`` walks
every one forward and writes the list it forecast (``targets.json`` in the walk-forward's
folder); every later stage reads that list (``forecast_targets``) and runs once per target
on the target's own paths (``Paths.for_target``: the headline's are today's, each other
target's are ``per_target/ISIN/`` inside the same folders).

``targets_table`` is the select stage's summary across targets (``paths.targets_table``):
each target's champion, its test MCC with the 95 % interval, its Pesaran-Timmermann
p-value and that p-value adjusted for the number of targets (``evaluate.p_adjustment``:
sixteen tries are not sixteen findings), and the pooled figures: the champions' forecasts
of every target on the test days as one record, and each network's, so that a global
network (one network over every target's windows) is compared with the per-target ones
over all targets at once, each with a moving-block interval drawn over days.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.errors import DataError, printable
from pipelines.core.params.paths import FILES, TARGETS, Paths
from pipelines.modelling import metrics as m
from pipelines.modelling.fitting import GLOBAL
from pipelines.modelling.leaderboard import Leaderboard


def forecast_targets(paths: Paths, headline: str) -> tuple[list[str], list[dict[str, str]]]:
    """(the targets the last walk-forward forecast, the headline first; those asked for and
    left out, with why), from the walk-forward's ``targets.json``; the headline alone when
    there is none (a walk-forward of an older version)."""
    path = paths.walk_forward_dir / FILES["targets_table"]
    if not path.is_file():
        return [headline], []
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        targets = [str(target) for target in found["targets"]]
        left_out = list(found.get("not_forecast") or [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{printable(path)}: damaged ({type(exc).__name__}); run tsepipe "
                        "evaluate again, or dvc checkout "
                        f"{printable(paths.walk_forward_dir)}") from None
    if not targets or targets[0] != headline:
        raise DataError(f"{printable(path)}: the walk-forward's targets do not start with "
                        f"data.target_index {headline}; run tsepipe evaluate again")
    return targets, left_out


def drop_others(paths: Paths, folder_name: str, targets: list[str]) -> None:
    """Remove from ``paths.<folder_name>/per_target/`` the folders of targets no longer
    forecast (a target taken out of data.targets leaves nothing stale behind)."""
    folder = getattr(paths, folder_name) / TARGETS
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name not in targets:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()


def targets_table(paths: Paths, headline: str, adjustment: str, block: int, samples: int
                  ) -> dict[str, Any]:
    """The record of every target (``paths.targets_table``; see the module's docstring)."""
    targets, left_out = forecast_targets(paths, headline)
    rows, champions, networks = [], [], {}
    for target in targets:
        where = paths.for_target(target, headline)
        board = Leaderboard.read(where.leaderboard)
        row = board.models[board.champion]
        low, high = (list(row.test.get("mcc_ci") or []) + [None, None])[:2]
        baseline = board.best_baseline_on_test
        rows.append({
            "target": target, "champion": board.champion, "champion_kind": row.kind,
            "test_days": board.days.test, "test_mcc": row.test.get("mcc"),
            "mcc_lo": low, "mcc_hi": high,
            "pt_p": float(row.pesaran_timmermann.get("p_value", 1.0)),
            "best_baseline": baseline,
            "baseline_mcc": board.models[baseline].test.get("mcc")
            if baseline in board.models else None})
        test = _test_predictions(where.predictions)
        labels = test["label"]
        champions.append((labels, test[board.champion]))
        for name, model_row in board.models.items():
            if model_row.kind == "network":
                networks.setdefault(name, []).append((labels, test[name]))
    adjusted = m.adjusted_p_values([row["pt_p"] for row in rows], adjustment)
    for row, p_value in zip(rows, adjusted, strict=True):
        row["pt_p_adjusted"] = p_value
    return {"headline": headline, "adjustment": adjustment, "targets": rows,
            "pooled": {"targets": len(rows),
                       "days": int(sum(len(labels) for labels, _ in champions)),
                       "champions": _pooled(champions, block, samples),
                       "per_network": {name: _pooled(pairs, block, samples)
                                    for name, pairs in networks.items()
                                    if len(pairs) == len(rows)},
                       "global_against": _against(networks, len(rows), block, samples)},
            "not_forecast": left_out}


def _test_predictions(path: Path) -> dict[str, np.ndarray]:
    """Each model's class on the test days, and the labels, from ``predictions.parquet``."""
    frame = pd.read_parquet(path, columns=["model", "split", "day", "label", "predicted"])
    test = frame[frame["split"] == "test"].sort_values(["model", "day"])
    found = {name: group["predicted"].to_numpy(dtype="int64")
             for name, group in test.groupby("model", sort=False)}
    first = test[test["model"] == test["model"].iloc[0]]
    return found | {"label": first["label"].to_numpy(dtype="int64")}


def _against(networks: dict[str, list[tuple[np.ndarray, np.ndarray]]], targets: int,
             block: int, samples: int) -> dict[str, dict[str, Any]]:
    """Each global network against its per-target namesake (global_gru against gru), pooled
    over the targets: the difference of their MCCs with its paired interval."""
    compared = {}
    for name, pairs in networks.items():
        own = networks.get(name.removeprefix(GLOBAL))
        if name.startswith(GLOBAL) and own and len(pairs) == len(own) == targets:
            labels = np.stack([labels for labels, _ in pairs])
            compared[name] = {"against": name.removeprefix(GLOBAL)} | m.pooled_mcc_difference(
                labels, np.stack([p for _, p in pairs]), np.stack([p for _, p in own]),
                block, samples)
    return compared


def _pooled(pairs: list[tuple[np.ndarray, np.ndarray]], block: int, samples: int
            ) -> dict[str, float]:
    labels = np.stack([labels for labels, _ in pairs])
    predicted = np.stack([predicted for _, predicted in pairs])
    return m.pooled_mcc(labels, predicted, block, samples)
