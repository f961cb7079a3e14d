"""The sweep flow: every config of a grid evaluated as one Prefect task on a Dask cluster.

``run_sweep`` picks the task runner at call time (prefect-dask's ``DaskTaskRunner``): a
local cluster of ``n_workers`` worker processes with one thread each, or an existing
Dask scheduler (``scheduler_address``, e.g. ``tcp://10.0.0.5:8786``), and runs
``sweep_flow`` with it. Tasks get the dataset's path and plain dicts, never DataFrames,
and return plain dicts (``pipelines.modelling.sweep.run`` rows); the flow writes
``<out_dir>/leaderboard.parquet`` and ``leaderboard.json`` and publishes the table
artifact ``sweep-leaderboard``.

Each config trains in a fresh child process of its worker (TensorFlow/Keras leak about
27 MB per model fit, see ``pipelines.modelling.sweep.run``; ``isolate=False`` trains in the worker
itself). TensorFlow threads: one intra-op and one inter-op thread per training process
(``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS``: set in the local workers'
environment, passed on to the child, applied through ``tf.config.threading`` too), so
that n workers of one thread use about n cores. Workers of an existing cluster keep
their own values when their environment sets them.

On an existing cluster, the workers must see the dataset at the same absolute path
(shared disk) and have this project installed. A config whose task fails does not stop
the others: the leaderboard lists it under ``failed`` and the flow ends Failed.

Stopped (Ctrl-C, SIGTERM, SIGHUP) or killed outright, nothing of the sweep runs on: a
local worker that does not end within 4 s is killed by its nanny, which would leave the
worker's training process and the temporary Prefect server the worker started for its
task runs (there is no ``PREFECT_API_URL`` to share); ``run_sweep``'s watchdog
(``pipelines.core.processes.watch_descendants``) stops them once the sweep's process has
ended.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed, State
from prefect_dask import DaskTaskRunner

import flows  # noqa: F401  (Prefect defaults; as this module's package it has run already)
from flows.artifacts import run_name
from pipelines.core.devices import TF_THREAD_ENV, limit_tensorflow_threads
from pipelines.core.params.load import load_params
from pipelines.core.params.paths import FILES
from pipelines.core.params.sweep import SweepSection
from pipelines.core.params.train import ModelConfig
from pipelines.core.processes import watch_descendants
from pipelines.modelling.fitting import DASHBOARD_ENV, dashboard_options
from pipelines.modelling.settings import EvaluationSettings
from pipelines.modelling.sweep.grid import grid_from_params
from pipelines.modelling.sweep.leaderboard import flat_row, write_leaderboard
from pipelines.modelling.sweep.run import (
    baseline_rows,
    evaluate_config,
    evaluate_config_isolated,
    settings_to_dict,
)

ARTIFACT_COLUMNS = ("rank", "model", "kind", "params", "validation_mcc",
                    "validation_balanced_accuracy", "test_mcc", "test_balanced_accuracy",
                    "test_mcc_ci_low", "test_mcc_ci_high", "test_mcc_seed_std",
                    "p_vs_best_baseline", "epochs_mean", "training_seconds", "worker")


def _dashboard_link_if_asked(record: logging.LogRecord) -> bool:
    """prefect-dask's "The Dask dashboard is available at ..." only where a local cluster
    has one (``TSEPIPE_DASK_DASHBOARD``): else that link is the scheduler's bare HTTP port."""
    return (bool(os.environ.get(DASHBOARD_ENV, "").strip())
            or not str(record.msg).startswith("The Dask dashboard is available"))


def task_runner(scheduler_address: str | None = None, n_workers: int | None = None
                ) -> DaskTaskRunner:
    """A runner on the Dask scheduler at ``scheduler_address``, else on a local cluster of
    ``n_workers`` processes (default: the schema's ``sweep.n_workers``), with no dashboard
    unless ``TSEPIPE_DASK_DASHBOARD`` asks for one, and Dask's INFO lines left unshown."""
    n_workers = SweepSection().n_workers if n_workers is None else n_workers
    if scheduler_address:
        return DaskTaskRunner(address=scheduler_address)
    if n_workers < 1:
        raise ValueError(f"n_workers: expected at least 1, got {n_workers}")
    logging.getLogger("prefect.task_runner.dask").addFilter(_dashboard_link_if_asked)
    # the local cluster's scheduler and nannies log their start and stop at INFO through
    # Prefect's console; their warnings and errors still show
    logging.getLogger("distributed").setLevel(logging.WARNING)
    return DaskTaskRunner(cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1,
                                          "processes": True, "env": dict(TF_THREAD_ENV),
                                          **dashboard_options()})


def worker_info() -> dict[str, Any]:
    """Where this task runs: the Dask worker's address (None outside Dask) and the pid."""
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        address = None
    return {"address": address, "pid": os.getpid()}


@task(name="sweep-config", task_run_name="evaluate {config[name]}")
def evaluate_config_task(dataset: str, config: dict[str, Any], settings: dict[str, Any],
                         target_index: str, feature_sets: dict[str, list[str]],
                         isolate: bool) -> dict[str, Any]:
    """One config's leaderboard row, tagged with the worker (and process) that computed it.

    ``isolate``: train in a fresh child process of the worker (``pipelines.modelling.sweep.run``'s
    Memory note), else in the worker process itself.
    """
    if isolate:
        row = evaluate_config_isolated(dataset, config, settings, target_index, feature_sets)
    else:
        threads = limit_tensorflow_threads()
        row = evaluate_config(dataset, config, settings, target_index, feature_sets)
        row["process"] = {"pid": os.getpid(), "tf_threads": threads}
    return row | {"worker": worker_info()}


@task(name="sweep-baselines", task_run_name="baselines")
def baselines_task(dataset: str, settings: dict[str, Any], target_index: str,
                   feature_sets: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows = baseline_rows(dataset, settings, target_index, feature_sets)
    return [row | {"worker": worker_info()} for row in rows]


def cluster_info() -> dict[str, Any]:
    """The Dask scheduler and workers of the running flow's task runner (empty without one)."""
    context = FlowRunContext.get()
    runner = getattr(context, "task_runner", None)
    if not isinstance(runner, DaskTaskRunner):
        return {}
    info = runner.client.scheduler_info(n_workers=-1)
    return {"scheduler": info.get("address"),
            "workers": sorted(info.get("workers", {})),
            "threads": {address: worker.get("nthreads")
                        for address, worker in sorted(info.get("workers", {}).items())}}


@flow(name="tsepipe-sweep", task_runner=task_runner(), flow_run_name=run_name,
      description="Every config of a grid through the walk-forward evaluation, on Dask.")
def sweep_flow(dataset: str | None = None, out_dir: str | None = None,
               grid: list[dict[str, Any]] | None = None, scheduler_address: str | None = None,
               n_workers: int | None = None, params_path: str = "params.yaml",
               isolate: bool | None = None) -> State:
    """Evaluate each config of ``grid`` (default: ``params.yaml``'s ``sweep`` grid).

    ``scheduler_address`` and ``n_workers`` describe the task runner ``run_sweep`` chose;
    called directly, the flow runs on its default runner, a local cluster of
    ``sweep.n_workers`` workers. Unset, ``dataset``, ``out_dir`` and ``isolate`` are
    ``paths.dataset``, ``sweep.out_dir`` and ``sweep.isolate``; the evaluation settings,
    target and feature kind come from ``params_path`` too. Returns a
    Completed state with a summary, or Failed (after writing the leaderboard of what did
    finish) when a task failed.
    """
    log = get_run_logger()
    started = time.perf_counter()
    params = load_params(params_path)
    dataset = dataset or str(params.paths.dataset)
    out_dir = out_dir or params.sweep.out_dir
    isolate = params.sweep.isolate if isolate is None else isolate
    settings = settings_to_dict(EvaluationSettings.of(params))
    configs = grid if grid is not None else grid_from_params(params.sweep.model_dump())
    configs = _checked(configs, reserved=settings["evaluate"]["baselines"])
    dataset_path = str(Path(dataset).resolve())
    target, sets = params.data.target_index, params.features.sets
    problem = _dataset_problem(dataset_path, target)
    if problem:
        return Failed(message=problem)
    cluster = cluster_info()
    log.info("sweep of %d configs x %d seeds on %s", len(configs), len(settings["train"]["seeds"]),
             f"Dask workers {cluster['workers']}" if cluster else "the flow's task runner")

    baselines = baselines_task.submit(dataset_path, settings, target, sets)
    futures = {c["name"]: evaluate_config_task.submit(dataset_path, c, settings, target, sets,
                                                      isolate)
               for c in configs}
    rows, failed = [], []
    for name, future in [("baselines", baselines), *futures.items()]:
        try:
            result = future.result()
        except Exception as exc:  # one failed config must not lose the others
            failed.append({"model": name, "error": f"{type(exc).__name__}: {exc}"})
            log.error("%s failed: %s: %s", name, type(exc).__name__, exc)
            continue
        rows.extend(result if isinstance(result, list) else [result])

    meta = {"settings": settings, "dataset": dataset_path, "target_index": target,
            "feature_set": settings["features"]["set"], "configs": len(configs), "failed": failed,
            "dask": cluster, "seconds": round(time.perf_counter() - started, 3)}
    board = write_leaderboard(rows, out_dir, meta)
    _publish(board)
    summary = {"leaderboard": str(Path(out_dir) / FILES["leaderboard"]),
               "rows": len(board["rows"]), "failed": [f["model"] for f in failed],
               "best": board["rows"][0]["model"] if board["rows"] else None,
               "workers": cluster.get("workers", [])}
    if failed:
        return Failed(message=f"{len(failed)} of {len(configs) + 1} sweep tasks failed: "
                              + ", ".join(f["model"] for f in failed), data=summary)
    return Completed(message=f"{len(configs)} configs evaluated; best on validation: "
                             f"{summary['best']}", data=summary)


def _dataset_problem(path: str, target_index: str) -> str | None:
    """Why the dataset cannot be swept (read from its schema), else None."""
    if not Path(path).is_file():
        return f"{path}: no merged dataset; run the data flow first"
    columns = pq.read_schema(path).names
    if f"{target_index}__close" not in columns:
        return f"{path}: no close of the target index {target_index} (data.target_index)"
    return None


def _checked(configs: list[dict[str, Any]], reserved: Iterable[str] = ()
             ) -> list[dict[str, Any]]:
    """Each config checked and named (before any task starts); names must be unique and
    not a baseline's (``reserved``)."""
    checked = [ModelConfig.from_dict(dict(c)).to_dict() for c in configs]
    names = [c["name"] for c in checked]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"sweep grid: two configs are named {duplicates[0]!r}")
    taken = sorted(set(names) & set(reserved))
    if taken:
        raise ValueError(f"sweep grid: {taken[0]!r} is the name of a baseline")
    if not checked:
        raise ValueError("sweep grid: no configs")
    return checked


def _publish(board: dict[str, Any]) -> None:
    table = []
    for row in board["rows"]:
        flat = flat_row(row)
        table.append({k: round(v, 4) if isinstance(v, float) else v
                      for k, v in flat.items() if k in ARTIFACT_COLUMNS})
    failed = board.get("failed") or []
    create_table_artifact(
        key="sweep-leaderboard", table=table,
        description=f"{board['configs']} configs and the baselines, sorted by "
                    f"{board['sorted_by']}"
                    + (f"; failed: {', '.join(f['model'] for f in failed)}" if failed else ""))


def run_sweep(dataset: str | None = None, out_dir: str | None = None,
              grid: list[dict[str, Any]] | None = None, scheduler_address: str | None = None,
              n_workers: int | None = None, params_path: str = "params.yaml",
              isolate: bool | None = None) -> State:
    """Run ``sweep_flow`` on the Dask cluster asked for; return its final state.

    Unset arguments come from ``params.yaml`` (``paths.dataset``, ``sweep.out_dir``,
    ``sweep.scheduler_address``, ``sweep.n_workers``, ``sweep.isolate``), then the
    flow's defaults.
    """
    params = load_params(params_path)
    sweep = params.sweep
    dataset = dataset or str(params.paths.dataset)
    out_dir = out_dir or sweep.out_dir
    scheduler_address = scheduler_address or sweep.scheduler_address
    n_workers = n_workers or sweep.n_workers
    isolate = sweep.isolate if isolate is None else isolate
    runner = task_runner(scheduler_address, n_workers)
    watch_descendants()
    return sweep_flow.with_options(task_runner=runner)(
        dataset=dataset, out_dir=out_dir, grid=grid, scheduler_address=scheduler_address,
        n_workers=n_workers, params_path=params_path, isolate=bool(isolate), return_state=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.sweep [--scheduler tcp://host:8786] [--workers N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset")
    parser.add_argument("--out-dir")
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler")
    parser.add_argument("--workers", type=int, help="local Dask worker processes")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    state = run_sweep(args.dataset, args.out_dir, None, args.scheduler, args.workers,
                      args.params)
    print(state.message)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    # Run the module's own copy so that Dask pickles the tasks by reference to flows.sweep.
    from flows.sweep import main as _main

    raise SystemExit(_main())
