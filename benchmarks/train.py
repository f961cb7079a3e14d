"""Benchmark: training and inference speed of the networks, and the default full run.

Two parts:

- per cell (``lstm``, ``gru``, ``simple_rnn``; one recurrent layer of 64 units, L1 0.001
  as in ``params.yaml``, Adam, batch 32, the direction head of ``pipelines.models``), on
  synthetic data of ``--samples`` samples (default 800) shaped like ours, (10, 45), and
  like the study's, (4, 145): the seconds of every epoch of one ``model.fit`` of
  ``--epochs`` epochs (the first separately, since it includes tracing, and the median
  of the others), training samples per second (samples / median epoch), and inference
  samples per second (``model.predict`` on all samples, median of ``--repeats`` calls
  after one warm-up call; at batch 32 as the pipeline predicts, and in one batch). On the
  CPU always (pinned with ``tf.device("/CPU:0")``, cuDNN off, as on a CPU-only machine),
  and on the GPU too (``tf.device("/GPU:0")``) when ``pipelines.devices.detect_device``
  finds one. The fits here have no validation data and no early stopping; the pipeline's
  fits have both, so their epochs cost a little more.
- the default full run: a throw-away project in ``benchmarks/work/train-full/`` (ignored
  by git): a copy of ``params.yaml`` whose ``paths:`` point into that folder, then
  ``tsepipe sample-data``, ``ingest``, ``validate``, ``merge``, ``evaluate`` (walk-forward,
  LSTM + GRU, every seed), ``train`` and ``predict``, each a subprocess of this venv's
  ``tsepipe``, timed stage by stage. Its target is under 10 minutes (600 s) on 2 CPU
  cores; the result records whether this machine met it and how many cores it has.

Run from the project root::

    .venv/bin/python benchmarks/train.py [--out benchmarks/results/train.json]
        [--skip-full-run] [--epochs N]

The results are written atomically as JSON and summarised on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py (this script's folder is on sys.path)
import numpy as np
import yaml

from pipelines import devices  # before Keras: quiets TensorFlow's C++ start-up logs
from pipelines.fileio import write_json, write_text
from pipelines.models import CELLS, ModelConfig, build_model, cudnn_eligible

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("benchmarks/results/train.json")  # relative to the project root
DEFAULT_WORK = Path("benchmarks/work/train-full")
SHAPES = {"ours": (10, 45), "study": (4, 145)}  # (window, features) per sample
UNITS = 64
L1 = 0.001  # params.yaml's train.models.*.l1 (the study's L1 kernel regulariser)
BATCH_SIZE = 32  # params.yaml's batch_size, and Keras's default predict batch
TARGET_SECONDS = 600
TARGET_CORES = 2
FULL_RUN_STAGES = ("sample-data", "ingest", "validate", "merge", "evaluate", "train",
                   "predict")
# No telemetry from the stages' libraries, and TensorFlow's C++ logs quiet.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
             "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DVC_NO_ANALYTICS": "1"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time LSTM/GRU/SimpleRNN training and inference on synthetic data "
        "(CPU, and GPU when present), and the default full tsepipe run (target < 10 min).",
    )
    parser.add_argument("--out", type=Path, default=ROOT / DEFAULT_OUT,
                        help=f"JSON results file (default: {DEFAULT_OUT})")
    parser.add_argument("--epochs", type=int, default=10,
                        help="epochs per timed fit; the first is reported apart (default: 10)")
    parser.add_argument("--samples", type=int, default=800,
                        help="synthetic samples per fit (default: 800)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed predict calls after one warm-up call (default: 5)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--skip-full-run", action="store_true",
                        help="measure the cells only, not the default full run")
    parser.add_argument("--work-dir", type=Path, default=ROOT / DEFAULT_WORK,
                        help=f"scratch project of the full run, emptied first "
                        f"(default: {DEFAULT_WORK})")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                        help="parameters file the full run copies (default: params.yaml)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is reported apart)")
    if args.samples < BATCH_SIZE:
        parser.error(f"--samples must be at least {BATCH_SIZE}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


# --- per cell -------------------------------------------------------------------------


def _epoch_timer() -> Any:
    """A Keras callback that records the wall clock seconds of every epoch."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def _time_predict(model: Any, x: np.ndarray, batch_size: int, repeats: int) -> dict[str, Any]:
    """Median and best seconds of ``model.predict(x)`` after one warm-up call."""
    model.predict(x, batch_size=batch_size, verbose=0)  # builds the predict function
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x, batch_size=batch_size, verbose=0)
        runs.append(time.perf_counter() - start)
    median = statistics.median(runs)
    return {"batch_size": batch_size, "median_s": round(median, 5), "best_s": round(min(runs), 5),
            "samples_per_s": round(len(x) / median, 1)}


def bench_cell(cell: str, shape: tuple[int, int], device: str, args: argparse.Namespace
               ) -> dict[str, Any]:
    """Fit and predict one fresh network on ``device`` ("cpu" or "gpu"); its JSON entry."""
    import tensorflow as tf

    config = ModelConfig(cell=cell, units=(UNITS,), l1=L1, epochs=args.epochs,
                         batch_size=BATCH_SIZE)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.samples, *shape)).astype("float32")
    y = rng.integers(0, 2, args.samples).astype("float32")
    devices.configure(args.seed)
    with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
        model = build_model(config, shape)
        if device == "cpu":
            # With a GPU present, Keras would try the cuDNN kernel and soft placement could
            # move it onto the GPU: the generic loop is what a CPU-only machine runs.
            for layer in model.layers:
                if hasattr(layer, "use_cudnn"):
                    layer.use_cudnn = False
        timer = _epoch_timer()
        start = time.perf_counter()
        model.fit(x, y, epochs=args.epochs, batch_size=BATCH_SIZE, shuffle=True, verbose=0,
                  callbacks=[timer])
        fit_s = time.perf_counter() - start
        inference = {"pipeline_batch": _time_predict(model, x, BATCH_SIZE, args.repeats),
                     "one_batch": _time_predict(model, x, len(x), args.repeats)}
    later = timer.seconds[1:]
    median = statistics.median(later)
    eligible, _ = cudnn_eligible(config)
    return {
        "cell": cell,
        "device": device,
        "input_shape": list(shape),
        "samples": args.samples,
        "params": int(model.count_params()),
        "cudnn": device == "gpu" and eligible,
        "epochs": args.epochs,
        "first_epoch_s": round(timer.seconds[0], 4),
        "epoch_s_median": round(median, 4),
        "epoch_s_min": round(min(later), 4),
        "epoch_s_max": round(max(later), 4),
        "epoch_s_all": [round(s, 4) for s in timer.seconds],
        "fit_s": round(fit_s, 3),
        "train_samples_per_s": round(args.samples / median, 1),
        "inference": inference,
        "inference_samples_per_s": inference["pipeline_batch"]["samples_per_s"],
    }


def bench_cells(device_kinds: Sequence[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for device in device_kinds:
        for shape_name, shape in SHAPES.items():
            for cell in CELLS:
                print(f"  {device} {cell}{UNITS} on {shape_name} {shape} ...", flush=True)
                entry = bench_cell(cell, shape, device, args)
                results.append({"shape_name": shape_name} | entry)
    return results


# --- the default full run ---------------------------------------------------------------


def scratch_params(params_path: Path, work_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Copy params.yaml into ``work_dir`` with every ``paths:`` entry absolute there."""
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["paths"] = {name: str((work_dir / value).resolve())
                       for name, value in params["paths"].items()}
    target = work_dir / "params.yaml"
    write_text(target, "# benchmarks/train.py: params.yaml with paths under this folder\n"
               + yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    return target, params


def run_stage(command: list[str], cwd: Path, log_path: Path) -> tuple[float, int]:
    """Run one stage; its stdout and stderr go to ``log_path``. Returns (seconds, status)."""
    env = os.environ | QUIET_ENV
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env,
                              check=False)
    return time.perf_counter() - start, done.returncode


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def full_run_outcome(params: dict[str, Any]) -> dict[str, Any]:
    """What the full run produced: champion, training effort per network, the forecast."""
    where = params["paths"]
    board = _read_json(Path(where["evaluation_dir"]) / "leaderboard.json") or {}
    networks = {}
    for name in params["train"]["models"]:
        row = board.get("models", {}).get(name, {})
        card = _read_json(Path(where["models_dir"]) / name / "card.json") or {}
        networks[name] = {
            "walk_forward": row.get("training"),
            "test_mcc": row.get("test", {}).get("mcc"),
            "test_balanced_accuracy": row.get("test", {}).get("balanced_accuracy"),
            "input_shape": card.get("input_shape"),
            "final_fit": card.get("training"),
        }
    forecast = _read_json(Path(where["forecasts_dir"]) / "latest.json") or {}
    return {
        "champion": board.get("champion"),
        "days": board.get("days"),
        "networks": networks,
        "forecast": {k: forecast.get(k) for k in ("as_of", "next_trading_day", "direction",
                                                  "probability_up", "champion")},
    }


def full_run(work_dir: Path, params_path: Path) -> dict[str, Any]:
    """Every stage of the default run in a fresh scratch project, each timed."""
    if work_dir.exists():
        shutil.rmtree(work_dir)
    (work_dir / "logs").mkdir(parents=True)
    params_copy, params = scratch_params(params_path, work_dir)
    tsepipe = str(Path(sys.executable).parent / "tsepipe")
    sample = params.get("sample", {})
    commands = {
        "sample-data": [tsepipe, "sample-data", "--out", params["paths"]["raw_dir"],
                        "--days", str(sample.get("days", 1200)),
                        "--seed", str(sample.get("seed", 1397))],
    } | {stage: [tsepipe, stage, "--params", str(params_copy)]
         for stage in FULL_RUN_STAGES[1:]}
    stages: dict[str, float] = {}
    failed = None
    for stage in FULL_RUN_STAGES:
        print(f"  {stage} ...", end=" ", flush=True)
        log_path = work_dir / "logs" / f"{stage}.log"
        seconds, status = run_stage(commands[stage], work_dir, log_path)
        stages[stage] = round(seconds, 2)
        print(f"{seconds:.1f} s", flush=True)
        if status != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
            failed = {"stage": stage, "exit_status": status, "log_tail": tail}
            print("\n".join(tail), file=sys.stderr)
            break
    total = round(sum(stages.values()), 2)
    models = {name: {k: spec.get(k) for k in ("cell", "units", "epochs", "patience")}
              for name, spec in params["train"]["models"].items()}
    return {
        "work_dir": str(work_dir.relative_to(ROOT) if work_dir.is_relative_to(ROOT)
                        else work_dir),
        "stage_s": stages,
        "total_s": total,
        "completed": failed is None,
        "failed": failed,
        "setup": {"sample_days": sample.get("days"), "models": models,
                  "seeds": params["train"]["seeds"],
                  "refit_every": params["evaluate"]["refit_every"],
                  "baselines": params["evaluate"]["baselines"]},
        "outcome": full_run_outcome(params) if failed is None else None,
    }


# --- report -----------------------------------------------------------------------------


def machine_info(device: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    tf_package = "tensorflow-cpu" if common.package_version("tensorflow-cpu") else "tensorflow"
    return common.machine_info(("keras", "numpy")) | {
        "cpu_model": devices.cpu_model(),
        "tensorflow": tf.__version__,
        "tensorflow_package": tf_package,
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "device": device,
    }


NOTES = [
    "Times are wall clock (time.perf_counter) in seconds.",
    "cells: one fresh model per cell, shape and device, one Recurrent(64) layer with L1 "
    "0.001 and a sigmoid Dense(1) head (pipelines.models.build_model), Adam 1e-3, batch 32, "
    "shuffled, no validation data and no early stopping. first_epoch_s includes tracing "
    "the train function; epoch_s_median is over the epochs after the first; "
    "train_samples_per_s = samples / epoch_s_median.",
    "inference_samples_per_s is model.predict at batch 32 (what the pipeline uses), the "
    "median of the timed calls after a warm-up call; inference.one_batch predicts all "
    "samples in one batch.",
    "Synthetic data: standard normal features, random 0/1 labels; speed does not depend "
    "on the values. 'ours' = (window 10, 45 features: 15 indices x log return, volume "
    "change, range), 'study' = (window 4, 145 features: its raw columns).",
    "CPU runs are pinned with tf.device('/CPU:0') and use_cudnn=False (the loop a "
    "CPU-only machine runs); GPU runs (only when detect_device finds a GPU) use "
    "tf.device('/GPU:0') and Keras's cuDNN kernel for LSTM and GRU.",
    "full_run: fresh scratch project, each stage a subprocess of this venv's tsepipe "
    "(so every stage pays its own Python + TensorFlow import); total_s is the sum of the "
    "stages, sample-data included. The target (< 600 s) is defined on 2 CPU cores: "
    "see machine.cpus_usable and full_run.cores_match_target.",
]


def print_table(result: dict[str, Any]) -> None:
    """A short human-readable summary on stdout."""
    header = (f"{'device':<7}{'shape':<16}{'cell':<12}{'1st ep':>8}{'epoch':>8}"
              f"{'train/s':>10}{'infer/s':>10}")
    print(header)
    print("-" * len(header))
    for entry in result["cells"]:
        shape = f"{entry['shape_name']} {tuple(entry['input_shape'])}"
        print(f"{entry['device']:<7}{shape:<16}{entry['cell'] + str(UNITS):<12}"
              f"{entry['first_epoch_s']:>8.3f}{entry['epoch_s_median']:>8.4f}"
              f"{entry['train_samples_per_s']:>10.0f}{entry['inference_samples_per_s']:>10.0f}")
    print(f"(seconds; epoch = median after the first; samples/s; {result['samples']} samples, "
          f"batch {BATCH_SIZE})")
    run = result["full_run"]
    if run is None:
        print("full run: skipped")
        return
    stages = "  ".join(f"{name} {seconds:.1f}" for name, seconds in run["stage_s"].items())
    print(f"full run: {stages}")
    verdict = "met" if result["met"] else "NOT met"
    if not run["completed"]:
        verdict += f" (failed at {run['failed']['stage']})"
    print(f"full run total {run['total_s']:.1f} s; target < {TARGET_SECONDS} s on "
          f"{TARGET_CORES} CPU cores: {verdict} on {result['machine']['cpus_usable']} usable "
          f"core(s)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    script_start = time.perf_counter()
    device = devices.detect_device()
    device_kinds = ["cpu", "gpu"] if device["kind"] == "gpu" else ["cpu"]
    print(f"cells on {', '.join(device_kinds)} ({device['name']}) ...", flush=True)
    cells = bench_cells(device_kinds, args)

    run = None
    if not args.skip_full_run:
        print(f"default full run in {args.work_dir} ...", flush=True)
        run = full_run(args.work_dir.resolve(), args.params)
    machine = machine_info(device)
    met = None
    if run is not None:
        met = run["completed"] and run["total_s"] < TARGET_SECONDS
        run["cores_match_target"] = machine["cpus_usable"] == TARGET_CORES
    result = {
        "benchmark": "RNN training/inference speed per cell, and the default full run",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "samples": args.samples,
        "epochs": args.epochs,
        "units": UNITS,
        "batch_size": BATCH_SIZE,
        "shapes": {name: list(shape) for name, shape in SHAPES.items()},
        "cells": cells,
        "full_run": run,
        "target": "default full run (sample data, LSTM + GRU, walk-forward) under 10 minutes "
                  f"on {TARGET_CORES} CPU cores",
        "target_seconds": TARGET_SECONDS,
        "target_cores": TARGET_CORES,
        "met": met,
        "peak_rss_mib": common.peak_rss_mib(),
        "notes": NOTES,
    }
    result["script_runtime_s"] = round(time.perf_counter() - script_start, 1)
    write_json(args.out, result)
    print_table(result)
    print(f"wrote {args.out} in {result['script_runtime_s']} s")
    return 0 if run is None or run["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())
