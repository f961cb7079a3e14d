"""The hyper-parameter sweep: the study's grid of networks, each scored like ``evaluate``.

``study_grid`` is the grid the course studies explored: LSTM and GRU, one layer of
32 / 64 / 80 / 128 / 180 units or a stack of 2-4 layers (128-64, 128-64-32,
128-64-32-16), the optimisers Adam, Adagrad and RMSprop, dropout off (0.0) and on
(0.2): 2 x 8 x 3 x 2 = 96 configs. ``grid_from_params`` reads ``params.yaml``'s
``sweep`` section (the study grid, or a grid of its own).

``evaluate_config`` scores one config the way ``pipelines.evaluate`` scores the models
of ``train.models``: the same chronological split, validation fit and expanding-window
walk-forward over the test days, the same seeds, the same metrics, bootstrap intervals
and tests (it calls ``evaluate_models`` and ``leaderboard`` with that one config). It
reads the merged dataset from a path and returns a plain, JSON-serialisable row, so
that it can run in another process or on another machine. ``baseline_rows`` gives the
baselines' rows once. ``write_leaderboard`` writes them all, best validation MCC first.

The comparison of a network with the best baseline (``vs_best_baseline``) needs the
baselines' test forecasts, so ``evaluate_config`` computes the baselines again beside
its network (deterministic, and milliseconds next to one network fit); their rows come
from ``baseline_rows`` only.

Memory: with TensorFlow 2.21 / Keras 3.15 every ``fit`` of a new model leaves about
27 MB behind in the process (``gc.collect`` and ``keras.backend.clear_session`` do not
free it; keras-team/keras#17458, tensorflow/tensorflow#61791). The study grid makes
1,152 fits with three seeds, about 31 GB in one long-lived process, so
``evaluate_config_isolated`` runs each config in a fresh Python process
(``python -m pipelines.sweep request.json row.json``) that gives it all back.

No Prefect here: ``flows/sweep.py`` runs these functions as tasks on a Dask cluster.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.config import LEADERBOARD
from pipelines.devices import TF_THREAD_ENV, limit_tensorflow_threads
from pipelines.evaluate import EvaluationSettings, evaluate_models, leaderboard
from pipelines.features import FeatureTable, feature_table
from pipelines.fileio import atomic_path, write_json
from pipelines.merge import read_dataset
from pipelines.models import OPTIMIZERS

STUDY_CELLS = ("lstm", "gru")  # the study swept these two of models.CELLS
SINGLE_LAYER_UNITS = (32, 64, 80, 128, 180)
STACKS = ((128, 64), (128, 64, 32), (128, 64, 32, 16))
DROPOUTS = (0.0, 0.2)
# What every config of the study grid shares unless params.yaml says otherwise: the
# study's L1 kernel regulariser and Adam learning rate; epochs, batch size and patience
# as train.models (the study's 200 epochs without early stopping overfit).
STUDY_FIXED: dict[str, Any] = {"l1": 0.001, "learning_rate": 0.001, "epochs": 40,
                               "batch_size": 32, "patience": 6}
# The keys a grid may vary; the name of a config spells out each one that varies.
GRID_KEYS = ("cell", "units", "optimizer", "dropout")
NAME_ABBREVIATIONS = {"learning_rate": "lr", "l1": "l1", "l2": "l2", "epochs": "e",
                      "batch_size": "b", "patience": "p", "recurrent_dropout": "rd",
                      "bidirectional": "bi", "task": "", "loss": ""}
METRICS = ("accuracy", "balanced_accuracy", "mcc", "f1", "roc_auc", "brier", "log_loss")
SORT_METRIC = "mcc"  # on validation, as evaluate's champion


def config_name(config: dict[str, Any], varied: tuple[str, ...] = ()) -> str:
    """``<cell>-<units joined by ->-<optimizer>-d<dropout>``, e.g. ``lstm-128-64-adam-d0.2``.

    ``varied``: further keys that differ between the configs of a grid; each adds
    ``-<abbreviation><value>`` (e.g. ``-lr0.0001``) so that names stay unique.
    """
    units = config.get("units", [64])
    units = [units] if isinstance(units, int) else units
    parts = [str(config.get("cell", "lstm")), *(str(u) for u in units),
             str(config.get("optimizer", "adam")), f"d{_number(config.get('dropout', 0.0))}"]
    for key in varied:
        if key in GRID_KEYS or key == "name":
            continue
        parts.append(f"{NAME_ABBREVIATIONS.get(key, key)}{_number(config.get(key))}")
    return "-".join(parts)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:g}"


def study_grid(fixed: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The study's grid (96 configs), each a ``ModelConfig`` mapping with a unique name.

    ``fixed``: settings every config shares (epochs, batch_size, patience,
    learning_rate, l1, ...), over ``STUDY_FIXED``.
    """
    units = [[u] for u in SINGLE_LAYER_UNITS] + [list(s) for s in STACKS]
    return expand_grid({"cell": list(STUDY_CELLS), "units": units, "optimizer": list(OPTIMIZERS),
                        "dropout": list(DROPOUTS)}, STUDY_FIXED | dict(fixed or {}))


def expand_grid(axes: dict[str, list[Any]], fixed: dict[str, Any] | None = None
                ) -> list[dict[str, Any]]:
    """Every combination of ``axes`` (key -> list of values), with ``fixed`` added.

    ``axes["units"]`` is a list of layer lists (``[[64], [128, 64]]``); a bare integer
    in it is one layer. Configs are checked (``ModelConfig.from_dict``) and named by
    ``config_name``; a duplicate name is a ValueError.
    """
    from pipelines.models import ModelConfig

    fixed = dict(fixed or {})
    overlap = sorted(set(axes) & set(fixed))
    if overlap:
        raise ValueError(f"sweep.grid: {overlap[0]} is both a grid axis and a fixed value")
    axes = dict(axes)
    if "units" in axes:
        axes["units"] = [_layers(value) for value in axes["units"]]
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"sweep.grid.{key}: expected a non-empty list of values, "
                             f"got {values!r}")
    varied = tuple(key for key, values in axes.items() if len(values) > 1)
    keys = list(axes)
    configs, seen = [], {}
    for combination in itertools.product(*(axes[k] for k in keys)):
        spec = fixed | dict(zip(keys, combination, strict=True))
        spec.pop("name", None)
        name = config_name(spec, varied)
        if name in seen:
            raise ValueError(f"sweep.grid: two configs are both named {name!r}: "
                             f"{seen[name]} and {spec}")
        seen[name] = spec
        configs.append(ModelConfig.from_dict({"name": name} | spec).to_dict())
    return configs


def _layers(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list | tuple) and value:
        return list(value)
    raise ValueError(f"sweep.grid.units: expected a list of layer lists such as "
                     f"[[64], [128, 64]], got the entry {value!r}")


def grid_from_params(sweep_params: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The configs of ``params.yaml``'s ``sweep`` section.

    ``grid: study`` (or no grid): ``study_grid``. Otherwise ``grid`` is a mapping: a key
    with a list value is an axis (``units``: a list of layer lists), a key with a single
    value is shared by every config. ``fixed`` (a mapping) is shared by every config of
    either kind of grid. For example::

        sweep:
          grid: {cell: [lstm, gru], units: [[32], [128, 64]], optimizer: [adam],
                 dropout: [0.0, 0.2], learning_rate: 0.001}
          fixed: {epochs: 40, batch_size: 32, patience: 6, l1: 0.001}
    """
    sweep_params = dict(sweep_params or {})
    fixed = sweep_params.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ValueError(f"sweep.fixed: expected a mapping, got {fixed!r}")
    grid = sweep_params.get("grid", "study")
    if grid in (None, "study"):
        return study_grid(fixed)
    if not isinstance(grid, dict):
        raise ValueError(f"sweep.grid: expected 'study' or a mapping of lists, got {grid!r}")
    axes = {k: v for k, v in grid.items() if isinstance(v, list)}
    shared = {k: v for k, v in grid.items() if not isinstance(v, list)}
    if "units" in shared:
        raise ValueError("sweep.grid.units: expected a list of layer lists such as [[64]]")
    return expand_grid(axes, fixed | shared)


def settings_to_dict(settings: EvaluationSettings) -> dict[str, Any]:
    """Plain values (lists for tuples) to send to another process; one process each."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in settings.to_dict().items()} | {"workers": 1}


def settings_from_dict(values: dict[str, Any] | EvaluationSettings) -> EvaluationSettings:
    if isinstance(values, EvaluationSettings):
        return values
    known = {f.name for f in fields(EvaluationSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"evaluation settings: unknown key {unknown[0]!r}")
    return EvaluationSettings.from_dict(values)


def load_table(dataset_path: Path | str, target_index: str,
               feature_sets: dict[str, list[str]] | str, default: str | None = None
               ) -> FeatureTable:
    frame, _ = read_dataset(dataset_path)
    return feature_table(frame, target_index, feature_sets, default or None)


def evaluate_config(dataset_path: Path | str, config_dict: dict[str, Any],
                    settings_dict: dict[str, Any], target_index: str,
                    feature_sets: dict[str, list[str]] | str = "stationary") -> dict[str, Any]:
    """One network through ``evaluate``'s split and walk-forward; its leaderboard row.

    The row (plain JSON values): ``model``, ``kind`` "network", ``validation`` and
    ``test`` metrics (test with bootstrap intervals), ``test_by_seed`` (mean and std
    over seeds), ``training`` (fits, mean epochs, seconds), ``config``, ``params``
    (parameter count), ``vs_best_baseline``, ``pesaran_timmermann``, ``days`` and
    ``wall_seconds``.
    """
    from pipelines.models import ModelConfig

    started = time.perf_counter()
    config = ModelConfig.from_dict(dict(config_dict))
    settings = settings_from_dict(settings_dict)
    if not settings.baselines:
        raise ValueError("evaluate.baselines: the sweep compares every network with the "
                         "baselines; name at least one")
    table = load_table(dataset_path, target_index, feature_sets, settings.feature_set)
    board = leaderboard(evaluate_models(table, {config.name: config}, settings))
    row = board["models"][config.name]
    row["params"] = parameter_count(config, settings.window,
                                    len(table.view(config.features or None).names))
    row["days"] = board["days"]
    row["wall_seconds"] = time.perf_counter() - started
    return plain(row)


def evaluate_config_isolated(dataset_path: Path | str, config_dict: dict[str, Any],
                             settings_dict: dict[str, Any], target_index: str,
                             feature_sets: dict[str, list[str]] | str = "stationary",
                             env: dict[str, str] | None = None) -> dict[str, Any]:
    """``evaluate_config`` in a fresh Python process (see Memory above); the same row.

    The child inherits this process's environment (``env`` on top); its TensorFlow
    thread limits default to 1. The row gains ``process``: the child's pid and its
    TensorFlow thread limits. A failure raises RuntimeError with the child's last
    lines of output.
    """
    request = {"dataset_path": str(dataset_path), "config_dict": dict(config_dict),
               "settings_dict": dict(settings_dict), "target_index": target_index,
               "feature_sets": feature_sets}
    child_env = dict(TF_THREAD_ENV) | dict(os.environ) | dict(env or {})
    with tempfile.TemporaryDirectory(prefix="tsepipe-sweep-") as folder:
        request_path, row_path = Path(folder) / "request.json", Path(folder) / "row.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "pipelines.sweep", str(request_path),
                               str(row_path)], env=child_env, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0 or not row_path.exists():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{config_dict.get('name')}: the evaluation process exited "
                               f"{done.returncode}:\n{tail}")
        return json.loads(row_path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.sweep REQUEST.json ROW.json``: one config, row as JSON."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pipelines.sweep REQUEST.json ROW.json", file=sys.stderr)
        return 2
    request = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    threads = limit_tensorflow_threads()
    row = evaluate_config(**request)
    row["process"] = {"pid": os.getpid(), "tf_threads": threads}
    write_json(args[1], row)
    return 0


def parameter_count(config: Any, window: int, n_features: int) -> int:
    from pipelines.models import build_model

    return int(build_model(config, (window, n_features)).count_params())


def baseline_rows(dataset_path: Path | str, settings_dict: dict[str, Any], target_index: str,
                  feature_sets: dict[str, list[str]] | str = "stationary") -> list[dict[str, Any]]:
    """The leaderboard rows of ``evaluate.baselines`` (kind "baseline"), in that order."""
    started = time.perf_counter()
    settings = settings_from_dict(settings_dict)
    table = load_table(dataset_path, target_index, feature_sets, settings.feature_set)
    board = leaderboard(evaluate_models(table, {}, settings))
    seconds = time.perf_counter() - started
    return [plain(board["models"][name] | {"days": board["days"], "wall_seconds": seconds})
            for name in settings.baselines]


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
    import pandas as pd

    out = Path(out_dir)
    ranked = sort_rows([plain(row) for row in rows])
    board = {"sorted_by": f"validation {SORT_METRIC}", **plain(dict(meta or {})),
             "rows": ranked}
    table = pd.DataFrame([flat_row(row) for row in ranked])
    with atomic_path(out / "leaderboard.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    write_json(out / LEADERBOARD, board)
    return board


if __name__ == "__main__":
    raise SystemExit(main())
