"""The walk-forwards on a Dask cluster of its own: a real ``dask scheduler`` and three
``dask worker`` processes on loopback, as a cluster elsewhere (GPU workers) would be.

Three targets of the real 1397-1398 exports, two networks each and a global network: seven
(target, network) chains. ``evaluate_targets`` pointed at that scheduler
(``evaluate.scheduler``) spreads them over all three workers, every run names the worker
that ran its chain, and, with deterministic settings, the predictions are the ones the
same chains give in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.params.data import DataSection
from pipelines.core.params.paths import Paths
from pipelines.core.params.train import ModelConfig
from pipelines.modelling.evaluate import evaluate_targets
from pipelines.modelling.features import FeatureTable, target_tables
from tests.conftest import TARGET
from tests.modelling.test_evaluate import TINY
from tests.support.stages import evaluation_settings, merge_files

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).parent / "dask")
WORKERS = 3
# 416 days: 62 validation and 125 test days in 3 blocks of 70, window 5, one seed
KEYS = {"window": 5, "validation_fraction": 0.15, "refit_every": 70, "seeds": (1,),
        "bootstrap_samples": 50, "warm_epochs": 2, "deterministic": True}
CONFIGS = {"gru": ModelConfig.from_dict({"name": "gru", **TINY}),
           "lstm": ModelConfig.from_dict({"name": "lstm", **TINY, "cell": "lstm"})}


def settings(**keys):
    """The test's settings (``KEYS``, and ``keys``), one global network: global_gru."""
    return evaluation_settings(**KEYS, **keys).but(train={"global_networks": ["gru"]})


def _wait(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def real_tables(tmp_path_factory, real_dir) -> dict[str, FeatureTable]:
    """The feature tables of the first three targets of ``data.targets: all`` on the real
    exports (TEDPIX first), as the evaluate stage reads them."""
    from pipelines.data.ingest import ingest

    folder = tmp_path_factory.mktemp("real-targets")
    ingest(real_dir, folder / "tables", folder / "ingest.json")
    ids = [path.stem for path in sorted(real_dir.glob("*.csv"))]
    (folder / "v.json").write_text(json.dumps({"passed": True, "usable_index_ids": ids}))
    merge_files(folder / "tables", folder / "v.json", folder / "d.parquet", folder / "s.json",
                TARGET)
    tables, missing = target_tables(Paths(dataset=folder / "d.parquet"),
                                    DataSection(target_index=TARGET, targets="all"),
                                    settings().features)
    assert not missing and len(tables) == len(ids)
    return dict(list(tables.items())[:3])


@pytest.fixture
def dask_cluster(tmp_path) -> Iterator[str]:
    """A scheduler and three one-thread workers, each a process (group) of its own, found
    through a scheduler file; the scheduler's address. Every one is stopped at the end,
    with the chain processes its workers started, however the test ends."""
    from distributed import Client

    env = os.environ | {"PYTHONPATH": str(ROOT), "TF_NUM_INTRAOP_THREADS": "1",
                        "TF_NUM_INTEROP_THREADS": "1"}
    scheduler_file = tmp_path / "scheduler.json"
    logs = tmp_path / "logs"
    logs.mkdir()
    started: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with (logs / f"{name}.log").open("w") as log:
            started.append(subprocess.Popen(
                [DASK, *args, "--scheduler-file", str(scheduler_file)], cwd=tmp_path, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
              "--no-dashboard")
        _wait(scheduler_file.exists, "the scheduler did not start")
        address = json.loads(scheduler_file.read_text())["address"]
        for number in range(1, WORKERS + 1):
            start(f"worker-{number}", "worker", "--nthreads", "1", "--host", "127.0.0.1",
                  "--no-dashboard", "--name", f"external-{number}")
        with Client(address, timeout=30) as client:
            _wait(lambda: len(client.scheduler_info()["workers"]) == WORKERS,
                  f"the {WORKERS} workers did not join")
        yield address
    finally:
        for process in started:
            os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_three_workers_take_the_chains_and_give_the_in_process_predictions(
        real_tables, dask_cluster):
    from distributed import Client

    with Client(dask_cluster, timeout=30) as client:
        workers = set(client.scheduler_info()["workers"])
    told: list[str] = []
    remote = evaluate_targets(real_tables, settings(scheduler=dask_cluster),
                              CONFIGS, progress=told.append)
    names = [*CONFIGS, "global_gru"]
    assert "7 chains" in told[0], told[0]  # 3 targets x 2 networks, and global_gru
    refits = [line for line in told if "refits done" in line]  # each came back from a worker
    assert len(refits) % 7 == 0 and f"; {len(refits)}/{len(refits)} refits done" in refits[-1]
    ran_on = {}
    for target, evaluation in remote.items():
        for name in names:
            runs = evaluation.results[name].runs
            assert runs and all(run.worker in workers for run in runs), (target, name)
            ran_on[(target, name)] = {run.worker for run in runs}
    # a global network's chain is one task: every target's slice names the same worker
    assert len({frozenset(ran_on[(target, "global_gru")]) for target in remote}) == 1
    assert set().union(*ran_on.values()) == workers  # all three took chains

    first, second, _ = (remote[target].results["global_gru"].test_proba for target in remote)
    assert not np.array_equal(first, second)  # one network, each target's own forecast
    local = evaluate_targets(real_tables, settings(workers=1), CONFIGS)
    for target in real_tables:
        for name in names:
            here, there = local[target].results[name], remote[target].results[name]
            assert all(run.worker is None for run in here.runs)
            for split in ("validation_proba", "test_proba"):
                np.testing.assert_array_equal(getattr(there, split), getattr(here, split),
                                              err_msg=f"{target} {name} {split}")
