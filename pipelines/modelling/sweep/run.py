"""One sweep config scored like ``evaluate``, in this process or in a fresh one.

``evaluate_config`` scores one config the way ``evaluate`` and ``select`` score the models
of ``train.models``: the same chronological split, validation fit and expanding-window
walk-forward over the test days, the same seeds, the same metrics, bootstrap intervals
and tests (it calls ``evaluate_models`` and ``leaderboard`` with that one config). It
reads the merged dataset from a path and returns a plain, JSON-serialisable row, so
that it can run in another process or on another machine. ``baseline_rows`` gives the
baselines' rows once.

The comparison of a network with the best baseline (``vs_best_baseline``) needs the
baselines' test forecasts, so ``evaluate_config`` computes the baselines again beside
its network (deterministic, and milliseconds next to one network fit); their rows come
from ``baseline_rows`` only.

Memory: with TensorFlow 2.21 / Keras 3.15 every ``fit`` of a new model leaves about
27 MB behind in the process (``gc.collect`` and ``keras.backend.clear_session`` do not
free it; keras-team/keras#17458, tensorflow/tensorflow#61791). The study grid makes
1,152 fits with three seeds, about 31 GB in one long-lived process, so
``evaluate_config_isolated`` runs each config in a fresh Python process
(``python -m pipelines.modelling.sweep.run request.json row.json``) that gives it all back.

No Prefect here: ``flows/sweep.py`` runs these functions as tasks on a Dask cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipelines.core.devices import TF_THREAD_ENV, limit_tensorflow_threads
from pipelines.core.fileio import write_json
from pipelines.core.params.train import ModelConfig
from pipelines.data.dataset import read_dataset
from pipelines.modelling.evaluate import evaluate_models
from pipelines.modelling.features import FeatureTable, check_dataset, feature_table
from pipelines.modelling.models import build_model
from pipelines.modelling.select import leaderboard
from pipelines.modelling.settings import EvaluationSettings
from pipelines.modelling.sweep.leaderboard import plain


def settings_to_dict(settings: EvaluationSettings) -> dict[str, Any]:
    """Plain values to send to another process; one process each (``evaluate.workers``)."""
    return settings.but(evaluate={"workers": 1}).to_dict()


def load_table(dataset_path: Path | str, target_index: str,
               feature_sets: dict[str, list[str]] | str, default: str | None = None
               ) -> FeatureTable:
    frame, _ = read_dataset(dataset_path)
    check_dataset(frame, dataset_path, target_index)
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
    started = time.perf_counter()
    config = ModelConfig.from_dict(dict(config_dict))
    settings = EvaluationSettings.from_dict(settings_dict)
    if not settings.evaluate.baselines:
        raise ValueError("evaluate.baselines: the sweep compares every network with the "
                         "baselines; name at least one")
    table = load_table(dataset_path, target_index, feature_sets, settings.features.set)
    board = leaderboard(evaluate_models(table, settings, {config.name: config}),
                        calibration="none")
    row = board.models[config.name].model_dump(mode="json", exclude_unset=True)
    row["params"] = parameter_count(config, settings.features.window,
                                    len(table.view(config.features or None).names))
    row["days"] = board.days.model_dump()
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
        done = subprocess.run([sys.executable, "-m", "pipelines.modelling.sweep.run",
                               str(request_path), str(row_path)],
                              env=child_env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not row_path.exists():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{config_dict.get('name')}: the evaluation process exited "
                               f"{done.returncode}:\n{tail}")
        return json.loads(row_path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.modelling.sweep.run REQUEST.json ROW.json``: one config's row."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pipelines.modelling.sweep.run REQUEST.json ROW.json",
              file=sys.stderr)
        return 2
    request = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    threads = limit_tensorflow_threads()
    row = evaluate_config(**request)
    row["process"] = {"pid": os.getpid(), "tf_threads": threads}
    write_json(args[1], row)
    return 0


def parameter_count(config: Any, window: int, n_features: int) -> int:
    return int(build_model(config, (window, n_features)).count_params())


def baseline_rows(dataset_path: Path | str, settings_dict: dict[str, Any], target_index: str,
                  feature_sets: dict[str, list[str]] | str = "stationary") -> list[dict[str, Any]]:
    """The leaderboard rows of ``evaluate.baselines`` (kind "baseline"), in that order."""
    started = time.perf_counter()
    settings = EvaluationSettings.from_dict(settings_dict)
    table = load_table(dataset_path, target_index, feature_sets, settings.features.set)
    board = leaderboard(evaluate_models(table, settings, {}), calibration="none")
    seconds = time.perf_counter() - started
    days = board.days.model_dump()
    return [plain(board.models[name].model_dump(mode="json", exclude_unset=True)
                  | {"days": days, "wall_seconds": seconds})
            for name in settings.evaluate.baselines]


if __name__ == "__main__":
    raise SystemExit(main())
