"""The walk-forwards on a Dask cluster of its own: a real ``dask scheduler`` and two
``dask worker`` processes on loopback, as a cluster elsewhere (GPU workers) would be.

With deterministic settings, ``evaluate`` pointed at that scheduler (``evaluate.scheduler``)
gives the same predictions as the local run, and the chains ran on those workers.
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

from pipelines.core.params.train import ModelConfig
from pipelines.modelling.evaluate import evaluate_models
from tests.modelling.test_evaluate import TINY, synthetic_table
from tests.support.stages import evaluation_settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).parent / "dask")


def _wait(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g} s")
        time.sleep(0.5)


@pytest.fixture
def dask_cluster(tmp_path) -> Iterator[str]:
    """A scheduler and two one-thread workers, each a process of its own; the address."""
    from distributed import Client

    env = os.environ | {"PYTHONPATH": str(ROOT), "TF_NUM_INTRAOP_THREADS": "1",
                        "TF_NUM_INTEROP_THREADS": "1", "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    address_file = tmp_path / "scheduler.json"
    started = [subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(address_file)], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        _wait(address_file.exists, "the scheduler did not start")
        address = json.loads(address_file.read_text())["address"]
        started += [subprocess.Popen(
            [DASK, "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
             "--no-dashboard", "--name", f"external-{number}"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            for number in (1, 2)]
        with Client(address, timeout=30) as client:
            _wait(lambda: len(client.scheduler_info()["workers"]) == 2,
                  "the two workers did not join")
        yield address
    finally:
        for process in started:
            os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def test_evaluate_on_an_external_cluster_gives_the_local_predictions(dask_cluster):
    from distributed import Client

    table = synthetic_table(n=200)
    keys = {"window": 5, "refit_every": 40, "seeds": (1, 2), "bootstrap_samples": 50,
            "warm_epochs": 2, "deterministic": True}
    configs = {"gru": ModelConfig.from_dict(TINY), "gru_too": ModelConfig.from_dict(TINY)}
    local = evaluate_models(table, evaluation_settings(workers=2, **keys), configs)
    told: list[str] = []
    remote = evaluate_models(table, evaluation_settings(scheduler=dask_cluster, **keys),
                             configs, progress=told.append)
    for name in configs:  # one task per network: both workers take one
        for split in ("validation_proba", "test_proba"):
            np.testing.assert_allclose(getattr(remote.results[name], split),
                                       getattr(local.results[name], split), atol=1e-6)
    refits = [line for line in told if "refits done" in line]
    assert refits and refits[-1].split("; ")[1].startswith(f"{len(refits)}/{len(refits)}")
    with Client(dask_cluster, timeout=30) as client:  # the chains ran on its workers
        done = client.run(lambda dask_worker: len(dask_worker.state.log))
    assert len(done) == 2 and all(count > 0 for count in done.values())
