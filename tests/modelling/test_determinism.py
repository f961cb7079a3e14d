"""Reproducible networks (``train.deterministic``, on by default): the same code, data and
seed give the same bits in another process, and a walk-forward run again gives the same
forecasts and metrics files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipelines.core.params.train import TrainSection
from tests.conftest import BIN, env, run

# one fit of a tiny seed stack, then a warm refit, as a walk-forward's chain process
FIT = """
import hashlib, json, sys
import numpy as np, pandas as pd
from pipelines.core import devices
from pipelines.core.params.train import ModelConfig
from pipelines.modelling.features import FeatureTable, make_labels
from pipelines.modelling.fitting import fit_seeds, predict_network
from pipelines.modelling.models import copy_layers

devices.limit_tensorflow_threads()
rng = np.random.default_rng(0)
returns = rng.normal(0.001, 0.01, 260)
close = 1000 * np.exp(np.cumsum(returns))
features = np.column_stack([returns, rng.normal(size=260), rng.normal(size=260)])
table = FeatureTable(pd.bdate_range("2020-01-01", periods=260), features,
                     make_labels(close), close, ["a", "b", "c"])
config = ModelConfig.from_dict({"cell": "lstm", "units": [4], "dropout": 0.1, "epochs": 3,
                                "batch_size": 16, "patience": 2})
days, seeds = np.arange(4, 200), (1, 2)
model, scaler, _ = fit_seeds(config, table, 5, days, seeds, deterministic=True,
                             mixed_precision=False)
model, scaler, _ = fit_seeds(config, table, 5, np.arange(4, 230), seeds, deterministic=True,
                             mixed_precision=False, model=model, epochs=2)
predicted = predict_network(model, scaler, table, 5, np.arange(231, 258), seeds)
digest = hashlib.sha256(predicted.tobytes())
for seed in seeds:
    for layer in copy_layers(model, seed):
        for array in layer.get_weights():
            digest.update(array.tobytes())
print(json.dumps({"sha256": digest.hexdigest(), "predicted": predicted.tolist()}))
"""


def test_determinism_is_the_default():
    assert TrainSection().deterministic is True


def test_two_processes_fit_the_same_bits():
    """Two fits (a cold one, then a warm refit) of the same data and seeds, each in a
    process of its own, run at the same time: the same predictions and weights, bit for
    bit."""
    environment = env() | {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    children = [subprocess.Popen([sys.executable, "-c", FIT], env=environment,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    outcomes = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    first, second = outcomes
    assert first["sha256"] == second["sha256"], (first["predicted"][0], second["predicted"][0])
    predicted = first["predicted"]
    assert len(predicted) == 2 and len(predicted[0]) == 27
    assert predicted[0] != predicted[1]  # two seeds, two networks: the check could fail


def _outputs(project: Path) -> dict[str, bytes]:
    """What ``evaluate`` and ``select`` write that carries no timings: the forecasts, the
    final networks' weights, every metrics file."""
    patterns = ("reports/walk_forward/walk_forward.parquet",
                "reports/walk_forward/networks/*.npz",
                "reports/evaluation/predictions.parquet", "metrics/*.json")
    return {str(path.relative_to(project)): path.read_bytes()
            for pattern in patterns for path in sorted(project.glob(pattern))}


def test_the_walk_forward_run_again_gives_the_same_files(trained_project):
    """The trained sample's evaluate and select run again (same code, data and params):
    every forecast, final network and metrics file is the same, byte for byte."""
    before = _outputs(trained_project)
    assert any(name.endswith(".npz") for name in before) and any(
        name.startswith("metrics/") for name in before), sorted(before)
    for stage in ("evaluate", "select"):
        run([str(BIN / "tsepipe"), stage], trained_project)
    after = _outputs(trained_project)
    assert sorted(after) == sorted(before)
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, changed
