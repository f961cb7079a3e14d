"""The sweep: the study's grid, grids from params.yaml, and a real run on 2 Dask workers."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

import flows  # noqa: F401  (Prefect defaults before prefect is imported)
from pipelines.modelling.sweep.grid import grid_from_params, study_grid
from pipelines.modelling.sweep.leaderboard import sort_rows, write_leaderboard
from tests.conftest import BIN, ROOT, TARGET, isolated

pytestmark = pytest.mark.slow

BOUNDS = {"accuracy": (0, 1), "balanced_accuracy": (0, 1), "mcc": (-1, 1), "f1": (0, 1),
          "roc_auc": (0, 1), "brier": (0, 1), "log_loss": (0, math.inf)}


def test_the_default_grid_is_the_studys():
    grid = study_grid()
    names = [c["name"] for c in grid]
    assert len(names) == len(set(names)) == 2 * 8 * 3 * 2
    assert {c["cell"] for c in grid} == {"lstm", "gru"}
    singles = {c["units"][0] for c in grid if len(c["units"]) == 1}
    assert singles == {32, 64, 80, 128, 180}
    assert {len(c["units"]) for c in grid} == {1, 2, 3, 4}
    assert {c["optimizer"] for c in grid} == {"adam", "adagrad", "rmsprop"}
    assert {c["dropout"] for c in grid} == {0.0, 0.2}
    assert "lstm-128-64-adam-d0.2" in names and "gru-180-rmsprop-d0" in names
    # every (cell, units) pair meets every optimiser and both dropouts
    pairs = {(c["cell"], tuple(c["units"])) for c in grid}
    assert len(pairs) == 16
    assert all(c["l1"] == 0.001 and c["epochs"] == 40 for c in grid)


def test_grid_from_params():
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert len(grid_from_params(params["sweep"])) == 96
    assert len(grid_from_params({"grid": "study"})) == 96
    assert grid_from_params({"grid": "study", "fixed": {"epochs": 7}})[0]["epochs"] == 7

    grid = grid_from_params({
        "grid": {"cell": ["lstm", "gru"], "units": [[16], [64, 32], 8],
                 "optimizer": ["adam"], "dropout": [0.0, 0.2], "learning_rate": 0.01},
        "fixed": {"epochs": 5, "batch_size": 16, "patience": 2, "l1": 0.0},
    })
    assert len(grid) == 2 * 3 * 1 * 2
    assert {tuple(c["units"]) for c in grid} == {(16,), (64, 32), (8,)}
    assert all(c["learning_rate"] == 0.01 and c["epochs"] == 5 and c["batch_size"] == 16
               for c in grid)
    assert "gru-64-32-adam-d0.2" in [c["name"] for c in grid]

    # a varied key beyond cell/units/optimizer/dropout joins the name
    names = [c["name"] for c in grid_from_params(
        {"grid": {"cell": ["lstm"], "units": [[8]], "learning_rate": [0.001, 0.0001]}})]
    assert names == ["lstm-8-adam-d0-lr0.001", "lstm-8-adam-d0-lr0.0001"]

    with pytest.raises(ValueError, match="optimizer"):
        grid_from_params({"grid": {"optimizer": ["sgd"]}})
    with pytest.raises(ValueError, match="units"):
        grid_from_params({"grid": {"units": 64}})
    with pytest.raises(ValueError, match="both a grid axis and a fixed value"):
        grid_from_params({"grid": {"epochs": [1, 2]}, "fixed": {"epochs": 3}})


def test_the_flow_checks_the_grid_before_any_task_runs():
    from flows.sweep import _checked, task_runner

    checked = _checked([{"cell": "gru", "units": [8]}])
    assert checked[0]["name"] == "gru8" and checked[0]["loss"] == "binary_crossentropy"
    with pytest.raises(ValueError, match="named 'a'"):
        _checked([{"name": "a"}, {"name": "a", "cell": "gru"}])
    with pytest.raises(ValueError, match="name of a baseline"):
        _checked([{"name": "persistence"}], reserved=["persistence"])
    with pytest.raises(ValueError, match="units"):
        _checked([{"units": []}])
    local = task_runner(n_workers=3)
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"]
    assert local.cluster_kwargs["env"]["TF_NUM_INTRAOP_THREADS"] == "1"
    assert task_runner("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"


def test_leaderboard_sorted_by_validation_mcc_with_baselines(tmp_path):
    rows = [
        {"model": "majority", "kind": "baseline", "validation": {"mcc": 0.0},
         "test": {"mcc": 0.0}},
        {"model": "lstm-4-adam-d0", "kind": "network", "validation": {"mcc": 0.2},
         "test": {"mcc": float("nan")}, "config": {"cell": "lstm", "units": [4]}},
        {"model": "gru-4-adam-d0", "kind": "network", "validation": {"mcc": None},
         "test": {"mcc": 0.1}, "config": {"cell": "gru", "units": [4]}},
    ]
    board = write_leaderboard(rows, tmp_path, {"note": "x"})
    assert [r["model"] for r in board["rows"]] == ["lstm-4-adam-d0", "majority",
                                                   "gru-4-adam-d0"]
    assert board["rows"][0]["test"]["mcc"] is None  # NaN written as null
    table = pd.read_parquet(tmp_path / "leaderboard.parquet")
    assert list(table["rank"]) == [1, 2, 3]
    assert list(table["kind"]) == ["network", "baseline", "network"]
    assert json.loads((tmp_path / "leaderboard.json").read_text())["note"] == "x"
    with pytest.raises(ValueError, match="two rows"):
        sort_rows(rows + rows[:1])


@pytest.fixture(scope="module")
def merged_dataset(tmp_path_factory) -> Path:
    from pipelines.data import sample
    from pipelines.data.ingest import ingest
    from tests.support.stages import merge_files

    folder = tmp_path_factory.mktemp("sweep-data")
    raw = folder / "raw"
    sample.generate(raw, n_days=300)
    ingest(raw, folder / "tables", folder / "ingest.json")
    validation = {"passed": True,
                  "usable_index_ids": [p.stem for p in sorted((folder / "tables").glob("*"))]}
    (folder / "validation.json").write_text(json.dumps(validation))
    merge_files(folder / "tables", folder / "validation.json", folder / "merged.parquet",
          folder / "merge_summary.json", TARGET)
    return folder / "merged.parquet"


@contextlib.contextmanager
def port_taken(port: int) -> Iterator[None]:
    """``port`` of 127.0.0.1 held by a listening socket for the block (or by whoever has it)."""
    with socket.socket() as holder:
        with contextlib.suppress(OSError):  # taken already: as good
            holder.bind(("127.0.0.1", port))
            holder.listen()
        yield


def test_sweep_flow_on_a_two_worker_dask_cluster(tmp_path, merged_dataset, monkeypatch,
                                                 recwarn, capfd, caplog):
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.sweep import run_sweep

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.delenv("TSEPIPE_DASK_DASHBOARD", raising=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["seeds"] = [1]
    params["evaluate"].update(refit_every=100, bootstrap_samples=200)
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    tiny = {"units": [4], "epochs": 2, "patience": 1, "batch_size": 32}
    grid = [{"name": "lstm-4", "cell": "lstm"} | tiny, {"name": "gru-4", "cell": "gru"} | tiny]
    out = tmp_path / "sweep"

    with port_taken(8787), prefect_test_harness(server_startup_timeout=None):
        state = run_sweep(dataset=str(merged_dataset), out_dir=str(out), grid=grid,
                          n_workers=2, params_path=str(params_path))
        assert state.is_completed(), state.message
        summary = state.result()
        with get_client(sync_client=True) as client:
            keys = {a.key for a in client.read_artifacts()}
    assert "sweep-leaderboard" in keys
    # quiet: no dashboard unless asked, so Dask says nothing of the taken port 8787 and
    # Prefect links to no dashboard; no Dask INFO chatter; no TensorFlow start-up lines
    printed = capfd.readouterr()
    printed = (printed.out + printed.err + caplog.text
               + "".join(f"{w.message}\n" for w in recwarn))
    assert "already in use" not in printed and "Dask dashboard" not in printed, printed
    assert "Scheduler at" not in printed and "Start Nanny" not in printed, printed
    assert "absl::InitializeLog" not in printed and "oneDNN" not in printed, printed
    assert "Finished in state Completed" in printed  # the run's own lines are there

    board = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(out / "leaderboard.parquet")
    baselines = params["evaluate"]["baselines"]
    expected = {"lstm-4", "gru-4", *baselines}
    assert {r["model"] for r in board["rows"]} == set(table["model"]) == expected
    assert len(table) == len(board["rows"]) == 2 + len(baselines)
    assert board["failed"] == [] and summary["rows"] == len(table)
    assert (table["kind"] == "network").sum() == 2
    assert set(table.loc[table["kind"] == "baseline", "model"]) == set(baselines)
    validation_mcc = [r["validation"]["mcc"] for r in board["rows"]]
    assert validation_mcc == sorted(validation_mcc, reverse=True)
    assert list(table["rank"]) == list(range(1, len(table) + 1))

    for row in board["rows"]:
        for split in ("validation", "test"):
            for metric, (low, high) in BOUNDS.items():
                value = row[split][metric]
                if metric == "roc_auc" and value is None:
                    continue
                assert math.isfinite(value) and low <= value <= high, (row["model"], metric)
        low, high = row["test"]["mcc_ci"]
        assert -1 <= low <= high <= 1
    networks = [r for r in board["rows"] if r["kind"] == "network"]
    days = networks[0]["days"]
    for row in networks:
        assert row["training"]["fits"] == 2  # 1 seed: 1 validation block + 1 test block
        assert row["training"]["warm_fits"] == 1  # the test block continues the first fit
        assert 1 <= row["training"]["epochs_mean"] <= 2
        assert row["training"]["seconds_total"] > 0
        assert row["params"] > 0 and row["test_by_seed"]["n_seeds"] == 1
        assert row["config"]["units"] == [4] and row["days"] == days
        assert row["process"]["tf_threads"] == {"intra_op": 1, "inter_op": 1}
        # trained in a fresh child process of the worker (TF/Keras leak memory per fit)
        assert row["process"]["pid"] != row["worker"]["pid"]
    assert days["test"] > 0 and days["validation"] > 0

    # the work really ran on a 2-worker Dask cluster, in processes other than this one
    workers = board["dask"]["workers"]
    assert len(workers) == 2 and set(board["dask"]["threads"].values()) == {1}
    used = {r["worker"]["address"] for r in board["rows"]}
    assert used == set(workers) == set(table["worker"])
    assert os.getpid() not in {r["worker"]["pid"] for r in board["rows"]}
    assert len({r["worker"]["pid"] for r in board["rows"]}) == 2


def test_sigterm_to_a_sweep_stops_its_workers_and_every_prefect_server(tmp_path,
                                                                      merged_dataset):
    """``tsepipe sweep`` of a 4-config grid, sent SIGTERM while its configs train: exit 143
    in one line, and nothing it started runs on: the Dask workers, their training
    processes, the temporary Prefect servers (the flow's, and each worker's own)."""
    from tests.e2e.test_signals import GONE_WITHIN_S, left_over, tree

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["seeds"] = [1]
    params["sweep"]["grid"] = {"cell": ["lstm", "gru"], "units": [[8], [16]],
                               "optimizer": ["adam"], "dropout": [0.0]}
    params["sweep"]["fixed"].update(epochs=30, patience=30)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False),
                                          encoding="utf-8")
    dataset = tmp_path / params["paths"]["dataset"]
    dataset.parent.mkdir(parents=True)
    shutil.copy2(merged_dataset, dataset)
    started = subprocess.Popen([str(BIN / "tsepipe"), "sweep"], cwd=tmp_path,
                               env=isolated(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and started.poll() is None:
            processes = tree(started.pid)
            if any("pipelines.modelling.sweep.run" in " ".join(command_line(p))
                   for p in processes):
                break  # a config trains
            time.sleep(0.5)
        time.sleep(1)  # its watchdog has seen them
        processes = tree(started.pid)
        servers = [p for p in processes if "uvicorn" in command_line(p)]
        assert len(servers) >= 2, [command_line(p) for p in processes]  # the flow's, a worker's
        started.send_signal(signal.SIGTERM)
        started.wait(timeout=GONE_WITHIN_S + 60)
        assert left_over(processes) == []
        output, _ = started.communicate(timeout=30)
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
    assert started.returncode == 143, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: interrupted (SIGTERM)"), output
    # nor before it: a Dask worker whose scheduler ended first logs its heartbeat's failure
    # in one line, without the closed connection's traceback (pipelines.modelling.fitting)
    assert "Traceback" not in output, output[-3000:]


def command_line(process: psutil.Process) -> list[str]:
    """A process's command line; empty once it has ended (it may, between two looks)."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []
