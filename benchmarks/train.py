"""Benchmark: training and inference speed of the networks, and the default full run.

Two parts:

- per cell (``lstm``, ``gru``, ``simple_rnn``; one recurrent layer of 64 units, L1 0.001
  as in ``params.yaml``, Adam, batch 32, the direction head of ``pipelines.modelling.models``), on
  synthetic data of ``--samples`` samples (default 800) shaped like ours, (10, 45), and
  like the study's, (4, 145): the seconds of every epoch of one ``model.fit`` of
  ``--epochs`` epochs (the first separately, since it includes tracing, and the median
  of the others), training samples per second (samples / median epoch), and inference
  samples per second (``model.predict`` on all samples, median of ``--repeats`` calls
  after one warm-up call; at batch 32 as the pipeline predicts, and in one batch). On the
  CPU always (pinned with ``tf.device("/CPU:0")``, cuDNN off, as on a CPU-only machine).
  When ``pipelines.core.devices.detect_device`` finds a GPU, the networks of ``GPU_CONFIGS``
  (LSTM(64), GRU(32), LSTM(128)) are timed on the GPU (``tf.device("/GPU:0")``) and on the
  CPU, compared in the result's ``gpu`` entry; without one, ``gpu`` says that no GPU
  timing was measured (``present: false``). The fits here have no validation data and no
  early stopping; the pipeline's fits have both, so their epochs cost a little more.
- the default full runs: for each dataset, the 1,200-day sample data (``demo``) and
  TEDPIX's real 2008-2019 history alone (``tedpix``, TSETMC's JSON in ``data/examples``,
  ``validate.min_usable_files: 1``), a throw-away project in
  ``benchmarks/work/train-full/<dataset>-<warm|cold>/`` (ignored by git): a copy of
  ``params.yaml`` whose ``paths:`` point into that folder, then ``sample-data`` (demo
  only), ``ingest``, ``validate``, ``merge``, ``evaluate`` (walk-forward validation and
  test, LSTM + GRU, every seed, in parallel processes), ``select``, ``train`` and
  ``predict``, each a
  subprocess of this venv's ``tsepipe``, timed stage by stage. Each runs with warm refits
  (the default, ``evaluate.warm_start``) and again with cold ones, to show what warm
  starts cost in walk-forward MCC (``warm_vs_cold``). Budgets, warm, on 2 CPU cores:
  demo <= 180 s, TEDPIX <= 360 s; the result records whether this machine met them and
  how many cores it has.

- ``--tsepipe-runs``: the full ``tsepipe run`` as a user runs it (Prefect, DVC, every
  stage to the report and the version commit), each in a fresh clone of a revision outside
  the checkout, on the last N days of the TEDPIX history (``benchmarks/tsepipe_runs.py``).
  The ``--after`` revision's run on the whole history is set against each other revision's
  (``budget``: at most half the time), and its runs by history length show the growth
  (``growth``: time, evaluate time, refits, evaluate seconds per refit). ``--rounds N``
  runs them all N times, in turn, and keeps each one's median run (with every round's
  time). Only this entry (``tsepipe_run``) of the results is rewritten.

Run from the project root::

    .venv/bin/python benchmarks/train.py [--out benchmarks/results/train.json]
        [--skip-full-run] [--datasets demo,tedpix] [--skip-cold] [--epochs N]
    .venv/bin/python benchmarks/train.py --tsepipe-runs HEAD@2679 HEAD@2000 HEAD@1000 \
        32d08d6@2679 [--rounds 3]

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

from pipelines.core import devices  # before Keras: quiets TensorFlow's C++ start-up logs
from pipelines.core.fileio import write_json, write_text
from pipelines.core.params.train import CELLS, ModelConfig
from pipelines.core.provenance import package_versions
from pipelines.modelling.models import build_model, cudnn_eligible

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("benchmarks/results/train.json")  # relative to the project root
DEFAULT_WORK = Path("benchmarks/work/train-full")
SHAPES = {"ours": (10, 45), "study": (4, 145)}  # (window, features) per sample
UNITS = 64
# The networks timed on the GPU and on the CPU when a GPU is present: (cell, units).
GPU_CONFIGS = (("lstm", 64), ("gru", 32), ("lstm", 128))
NO_GPU_NOTE = "no GPU on this machine: GPU timings not measured"
L1 = 0.001  # params.yaml's train.models.*.l1 (the study's L1 kernel regulariser)
BATCH_SIZE = 32  # params.yaml's batch_size, and Keras's default predict batch
# Budgets of the default full run (warm refits) on 2 CPU cores, in seconds.
BUDGETS = {"demo": 180, "tedpix": 360}
DATASETS = tuple(BUDGETS)
TARGET_CORES = 2
FULL_RUN_STAGES = ("sample-data", "ingest", "validate", "merge", "evaluate", "select",
                   "train", "predict")
# No telemetry from the stages' libraries, and TensorFlow's C++ logs quiet.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
             "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DVC_NO_ANALYTICS": "1"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time LSTM/GRU/SimpleRNN training and inference on synthetic data "
        "(CPU, and GPU when present), and the default full tsepipe run on the demo data "
        "(budget 3 min) and on TEDPIX 2008-2019 (6 min), warm against cold refits.",
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
                        help="measure the cells only, not the default full runs")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help="full runs on: demo (1,200 sample days), tedpix (TEDPIX "
                        "2008-2019 alone); comma-separated (default: both)")
    parser.add_argument("--skip-cold", action="store_true",
                        help="only the warm-start runs (no cold-refit comparison)")
    parser.add_argument("--work-dir", type=Path, default=ROOT / DEFAULT_WORK,
                        help=f"scratch project of the full run, emptied first "
                        f"(default: {DEFAULT_WORK})")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                        help="parameters file the full run copies (default: params.yaml)")
    parser.add_argument("--tsepipe-runs", nargs="+", metavar="REV@DAYS[:KEY=VALUE,...]",
                        help="time only these full tsepipe runs (a clone of REV on the last "
                        "DAYS days of TEDPIX 2008-2019, params.yaml's KEYs set), and write "
                        "them into the results' tsepipe_run entry, keeping the rest; e.g. "
                        "HEAD@2679 HEAD@2000 HEAD@1000 b449510@2679")
    parser.add_argument("--after", default="HEAD",
                        help="with --tsepipe-runs: the revision whose default run is set "
                        "against the others (budget: at most half) and timed by history "
                        "length (growth) (default: HEAD)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --tsepipe-runs: run them all this many times, one after "
                        "the other in each round, and keep each one's median run "
                        "(default: %(default)s)")
    parser.add_argument("--from-logs", action="store_true",
                        help="with --tsepipe-runs: read the runs back from their folders "
                        "(an earlier call's, in --work-dir) instead of running them again")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is reported apart)")
    if args.samples < BATCH_SIZE:
        parser.error(f"--samples must be at least {BATCH_SIZE}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        parser.error(f"--datasets: unknown {unknown[0]!r} (expected {', '.join(DATASETS)})")
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


def bench_cell(cell: str, shape: tuple[int, int], device: str, args: argparse.Namespace,
               units: int = UNITS) -> dict[str, Any]:
    """Fit and predict one fresh network on ``device`` ("cpu" or "gpu"); its JSON entry."""
    import tensorflow as tf

    config = ModelConfig(cell=cell, units=(units,), l1=L1, epochs=args.epochs,
                         batch_size=BATCH_SIZE)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.samples, *shape)).astype("float32")
    y = rng.integers(0, 2, args.samples).astype("float32")
    devices.configure(args.seed, deterministic=False, mixed_precision=False)
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
        "units": units,
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
    """Every cell at ``UNITS`` on the CPU; with a GPU, each of ``GPU_CONFIGS`` on both."""
    runs = [("cpu", cell, UNITS) for cell in CELLS]
    if "gpu" in device_kinds:
        runs += [("cpu", cell, units) for cell, units in GPU_CONFIGS
                 if ("cpu", cell, units) not in runs]
        runs += [("gpu", cell, units) for cell, units in GPU_CONFIGS]
    results = []
    for device in ("cpu", "gpu"):
        for shape_name, shape in SHAPES.items():
            for run_device, cell, units in runs:
                if run_device != device:
                    continue
                print(f"  {device} {cell}{units} on {shape_name} {shape} ...", flush=True)
                entry = bench_cell(cell, shape, device, args, units)
                results.append({"shape_name": shape_name} | entry)
    return results


def gpu_summary(device: dict[str, Any], cells: list[dict[str, Any]]) -> dict[str, Any]:
    """GPU against CPU per ``GPU_CONFIGS`` network and shape; without a GPU, says so."""
    configs = [f"{cell}{units}" for cell, units in GPU_CONFIGS]
    if device["kind"] != "gpu":
        return {"present": False, "note": NO_GPU_NOTE, "configs": configs}
    timed = {(e["device"], e["cell"], e["units"], e["shape_name"]): e for e in cells}
    comparison = []
    for cell, units in GPU_CONFIGS:
        for shape_name in SHAPES:
            cpu = timed[("cpu", cell, units, shape_name)]
            gpu = timed[("gpu", cell, units, shape_name)]
            comparison.append({
                "config": f"{cell}{units}", "shape_name": shape_name, "cudnn": gpu["cudnn"],
                "cpu_epoch_s_median": cpu["epoch_s_median"],
                "gpu_epoch_s_median": gpu["epoch_s_median"],
                "gpu_speedup": round(cpu["epoch_s_median"] / gpu["epoch_s_median"], 2),
                "cpu_inference_samples_per_s": cpu["inference_samples_per_s"],
                "gpu_inference_samples_per_s": gpu["inference_samples_per_s"]})
    return {"present": True, "name": device["name"], "count": device["count"],
            "configs": configs, "comparison": comparison}


# --- the default full run ---------------------------------------------------------------


def scratch_params(params_path: Path, work_dir: Path,
                   changes: dict[str, dict[str, Any]] | None = None
                   ) -> tuple[Path, dict[str, Any]]:
    """Copy params.yaml into ``work_dir`` with every ``paths:`` entry absolute there."""
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["paths"] = {name: str((work_dir / value).resolve())
                       for name, value in params["paths"].items()}
    for section, values in (changes or {}).items():
        params[section] |= values
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
    """What the full run produced: champion, every model's test MCC, training effort."""
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
            "validation_mcc": row.get("validation", {}).get("mcc"),
            "input_shape": card.get("input_shape"),
            "final_fit": card.get("training"),
        }
    forecast = _read_json(Path(where["forecasts_dir"]) / "latest.json") or {}
    backtest = board.get("backtest") or {}
    return {
        "champion": board.get("champion"),
        "champion_reason": board.get("champion_reason"),
        "days": board.get("days"),
        "test_mcc": {name: row.get("test", {}).get("mcc")
                     for name, row in board.get("models", {}).items()},
        "test_mcc_ci": {name: row.get("test", {}).get("mcc_ci")
                        for name, row in board.get("models", {}).items()},
        "validation_mcc": {name: row.get("validation", {}).get("mcc")
                           for name, row in board.get("models", {}).items()},
        "networks": networks,
        "backtest": {name: {k: s.get(k) for k in ("cumulative_return", "sharpe",
                                                   "max_drawdown", "trades")}
                     for name, s in backtest.get("strategies", {}).items()},
        "forecast": {k: forecast.get(k) for k in ("as_of", "next_trading_day", "direction",
                                                  "probability_up", "champion")},
    }


def tedpix_history() -> Path:
    """TEDPIX's recorded 2008-2019 history, as the repository carries it (data/examples)."""
    return ROOT / "data" / "examples" / "tedpix-2008-2019" / "IRX6XTPI0009.json"


def full_run(work_dir: Path, params_path: Path, dataset: str = "demo", warm: bool = True
             ) -> dict[str, Any]:
    """Every stage of the default run in a fresh scratch project, each timed.

    ``dataset``: ``demo`` (the 1,200-day sample data) or ``tedpix`` (TEDPIX's real
    2008-2019 history alone, as TSETMC serves it; ``validate.min_usable_files: 1``).
    ``warm``: ``evaluate.warm_start`` (False: every walk-forward refit from scratch).
    """
    if work_dir.exists():
        shutil.rmtree(work_dir)
    (work_dir / "logs").mkdir(parents=True)
    params_copy, params = scratch_params(params_path, work_dir, {
        "evaluate": {"warm_start": warm},
        "validate": {"min_usable_files": 1} if dataset == "tedpix" else {}})
    tsepipe = str(Path(sys.executable).parent / "tsepipe")
    sample = params.get("sample", {})
    raw_dir = Path(params["paths"]["raw_dir"])
    if dataset == "tedpix":
        raw_dir.mkdir(parents=True)
        shutil.copy(tedpix_history(), raw_dir / f"{params['data']['target_index']}.json")
        first = [sys.executable, "-c", "pass"]  # the history is the input: nothing to make
    else:
        first = [tsepipe, "sample-data", "--out", str(raw_dir), "--days",
                 str(sample.get("days", 1200)), "--seed", str(sample.get("seed", 1397))]
    commands = {"sample-data": first} | {stage: [tsepipe, stage, "--params", str(params_copy)]
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
        "dataset": dataset,
        "warm_start": warm,
        "work_dir": str(work_dir.relative_to(ROOT) if work_dir.is_relative_to(ROOT)
                        else work_dir),
        "stage_s": stages,
        "total_s": total,
        "completed": failed is None,
        "failed": failed,
        "setup": {"sample_days": sample.get("days") if dataset == "demo" else None,
                  "models": models, "seeds": params["train"]["seeds"],
                  "refit_every": params["evaluate"]["refit_every"],
                  "warm_epochs": params["evaluate"]["warm_epochs"] if warm else None,
                  "feature_set": params["features"]["set"],
                  "baselines": params["evaluate"]["baselines"]},
        "outcome": full_run_outcome(params) if failed is None else None,
    }


def warm_against_cold(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per model, the walk-forward test MCC with warm and with cold refits, and the times."""
    warm, cold = runs.get("warm"), runs.get("cold")
    if not (warm and cold and warm["outcome"] and cold["outcome"]):
        return {}
    return {
        "test_mcc": {name: {"warm": warm["outcome"]["test_mcc"].get(name),
                            "cold": cold["outcome"]["test_mcc"].get(name)}
                     for name in warm["outcome"]["networks"]},
        "evaluate_s": {"warm": warm["stage_s"].get("evaluate"),
                       "cold": cold["stage_s"].get("evaluate")},
        "total_s": {"warm": warm["total_s"], "cold": cold["total_s"]},
    }


# --- report -----------------------------------------------------------------------------


def machine_info(device: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    tf_package = "tensorflow-cpu" if package_versions(("tensorflow-cpu",)) else "tensorflow"
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
    "0.001 and a sigmoid Dense(1) head (pipelines.modelling.models.build_model), Adam 1e-3, "
    "batch 32, "
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
    "gpu: with a GPU, LSTM(64), GRU(32) and LSTM(128) are timed on the GPU and on the CPU "
    "(each shape; gpu_speedup = CPU epoch_s_median / GPU epoch_s_median); without one, "
    "present is false and no GPU figure is given (none is estimated).",
    "full_runs: per dataset (demo: the 1,200-day sample data; tedpix: TEDPIX 2008-2019 "
    "alone, read from TSETMC's JSON) and per refit mode (warm: evaluate.warm_start, the "
    "default; cold: every walk-forward refit from scratch), a fresh scratch project, each "
    "stage a subprocess of this venv's tsepipe (so every stage pays its own Python + "
    "TensorFlow import); total_s is the sum of the stages, sample-data included. The "
    "budgets apply to the warm runs on 2 CPU cores: see machine.cpus_usable and "
    "cores_match_target. warm_vs_cold compares the walk-forward test MCC of each network.",
]


def print_table(result: dict[str, Any]) -> None:
    """A short human-readable summary on stdout."""
    header = (f"{'device':<7}{'shape':<16}{'cell':<12}{'1st ep':>8}{'epoch':>8}"
              f"{'train/s':>10}{'infer/s':>10}")
    print(header)
    print("-" * len(header))
    for entry in result["cells"]:
        shape = f"{entry['shape_name']} {tuple(entry['input_shape'])}"
        print(f"{entry['device']:<7}{shape:<16}{entry['cell'] + str(entry['units']):<12}"
              f"{entry['first_epoch_s']:>8.3f}{entry['epoch_s_median']:>8.4f}"
              f"{entry['train_samples_per_s']:>10.0f}{entry['inference_samples_per_s']:>10.0f}")
    print(f"(seconds; epoch = median after the first; samples/s; {result['samples']} samples, "
          f"batch {BATCH_SIZE})")
    gpu = result["gpu"]
    if not gpu["present"]:
        print(f"gpu: {gpu['note']} ({', '.join(gpu['configs'])})")
    for row in gpu.get("comparison", []):
        print(f"gpu: {row['config']} on {row['shape_name']}: epoch {row['cpu_epoch_s_median']} s "
              f"CPU, {row['gpu_epoch_s_median']} s GPU ({row['gpu_speedup']}x)")
    runs = result["full_runs"]
    if not runs:
        print("full runs: skipped")
        return
    for dataset, modes in runs.items():
        for mode, run in modes.items():
            stages = "  ".join(f"{name} {seconds:.1f}" for name, seconds in run["stage_s"].items())
            print(f"{dataset} ({mode} refits): {stages}; total {run['total_s']:.1f} s")
            if run["outcome"]:
                mccs = ", ".join(f"{name} {value:+.3f}" for name, value in
                                 run["outcome"]["test_mcc"].items() if value is not None)
                print(f"  test MCC: {mccs}; champion {run['outcome']['champion']}")
        verdict = result["met"].get(dataset)
        print(f"{dataset}: budget {BUDGETS[dataset]} s with warm refits on {TARGET_CORES} "
              f"cores: {'met' if verdict else 'NOT met'} "
              f"({result['machine']['cpus_usable']} usable core(s))")


def only_tsepipe_runs(args: argparse.Namespace) -> int:
    """``--tsepipe-runs``: those runs into the results' ``tsepipe_run``, the rest kept."""
    import tsepipe_runs  # benchmarks/tsepipe_runs.py

    started = time.perf_counter()
    result = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    entry = tsepipe_runs.section(args.tsepipe_runs, args.work_dir.resolve() / "tsepipe-runs",
                                 args.after, from_logs=args.from_logs,
                                 rounds=args.rounds)
    entry["read_from_logs"] = args.from_logs  # total_s: each log's last line then
    entry["timestamp"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    entry["machine"] = common.machine_info()
    entry["seconds"] = round(time.perf_counter() - started, 1)
    result["tsepipe_run"] = entry
    write_json(args.out, result)
    for row in entry["budget"]:
        print(f"{args.after} {row['after_settings'] or ''} against {row['before']}: "
              f"{row['after_s']:.1f} s / "
              f"{row['before_s']:.1f} s = {row['ratio']:.2f} (at most 0.5: "
              f"{'met' if row['met'] else 'NOT met'})")
    for row in entry["growth"]:
        print(f"{row['days']} days: {row['total_s']:.1f} s, evaluate {row['evaluate_s']} s, "
              f"{row['refits']} refits, {row['evaluate_s_per_refit']} s per refit")
    print(f"wrote {args.out}")
    return 0 if all(run["exit_status"] == 0 for run in entry["runs"]) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tsepipe_runs:
        return only_tsepipe_runs(args)
    script_start = time.perf_counter()
    device = devices.detect_device()
    device_kinds = ["cpu", "gpu"] if device["kind"] == "gpu" else ["cpu"]
    print(f"cells on {', '.join(device_kinds)} ({device['name']}) ...", flush=True)
    cells = bench_cells(device_kinds, args)

    runs: dict[str, dict[str, Any]] = {}
    if not args.skip_full_run:
        for dataset in args.datasets:
            for warm in (True, False) if not args.skip_cold else (True,):
                mode = "warm" if warm else "cold"
                print(f"{dataset} full run, {mode} refits, in {args.work_dir} ...", flush=True)
                runs.setdefault(dataset, {})[mode] = full_run(
                    args.work_dir.resolve() / f"{dataset}-{mode}", args.params, dataset, warm)
    machine = machine_info(device)
    met = {dataset: bool(modes["warm"]["completed"]
                         and modes["warm"]["total_s"] <= BUDGETS[dataset])
           for dataset, modes in runs.items() if "warm" in modes}
    result = {
        "benchmark": "RNN training/inference speed per cell, and the default full runs",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "samples": args.samples,
        "epochs": args.epochs,
        "units": UNITS,
        "batch_size": BATCH_SIZE,
        "shapes": {name: list(shape) for name, shape in SHAPES.items()},
        "cells": cells,
        "gpu": gpu_summary(device, cells),
        "full_runs": runs,
        "warm_vs_cold": {dataset: warm_against_cold(modes) for dataset, modes in runs.items()},
        "budgets_s": BUDGETS,
        "target": "the default full run (sample-data or the TEDPIX history, ingest .. "
                  "predict) with warm refits: demo <= 180 s, TEDPIX 2008-2019 <= 360 s on "
                  f"{TARGET_CORES} CPU cores",
        "target_cores": TARGET_CORES,
        "cores_match_target": machine["cpus_usable"] == TARGET_CORES,
        "met": met,
        "peak_rss_mib": common.peak_rss_mib(),
        "notes": NOTES,
    }
    common.finish(result, args.out, script_start, print_table)
    return 0 if all(run["completed"] for modes in runs.values() for run in modes.values()) \
        else 1


if __name__ == "__main__":
    sys.exit(main())
