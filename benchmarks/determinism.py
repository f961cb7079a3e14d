"""Benchmark: what reproducible networks cost (``train.deterministic``), and that they are.

Two parts:

- the fit: one network's walk-forward chain as a chain process of ``tsepipe evaluate``
  runs it (``fitting.network_walk_forward``: the seed stack of ``--seeds``, a cold first
  fit, warm refits every ``--refit-every`` days, the final refit on every labelled day;
  one TensorFlow thread, as a local cluster on 2 cores gives each chain), the network of
  ``train.models.--model`` in ``params.yaml``, on ``--days`` synthetic days of 3 features
  (seeded), window 10. Each run is a fresh process; the runs alternate, deterministic
  off and on, ``--rounds`` of each. Recorded per run: the fit's seconds (the walk-forward
  only, TensorFlow's import left out) and a SHA-256 of its probabilities and final
  weights. ``ratio``: the median seconds with determinism over those without, and
  ``identical``: whether every run of a mode gave the same hash. One more run with
  determinism, oneDNN held to AVX2 (``ONEDNN_MAX_CPU_ISA``), tells whether the figures
  depend on the CPU's instruction set (``another_isa``).
- the walk-forward (``--project``, a project the pipeline has run in, default
  ``demo/tedpix`` of ``make demo``): copied into a temporary folder, then ``tsepipe
  evaluate`` and ``tsepipe select`` twice per mode (alternating), with the project's
  settings (``--short``: ``SHORT``'s), timed (``evaluate_ratio``: the mean evaluate
  seconds with determinism over those without) and their outputs compared byte for byte
  per mode: the walk-forward's probabilities and final networks, the predictions and
  every metrics file (``modes_agree``: whether the two modes give the same bits).
  ``--skip-walk-forward`` leaves it out.

Run from the project root (about 8 minutes on 2 cores; 5 with ``--short``)::

    .venv/bin/python benchmarks/determinism.py [--rounds 3] [--project demo/tedpix]
        [--skip-walk-forward | --short] [--out benchmarks/results/determinism.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py (this script's folder is on sys.path)
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODES = {"off": False, "on": True}
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
# the walk-forward part's settings: the same stages, a fraction of the refits and epochs
SHORT = {"train": {"seeds": [1, 2]}, "evaluate": {"refit_every": 180, "bootstrap_samples": 200},
         "epochs": 20, "patience": 4}
# (the leaderboard, evaluation.json and networks/*.json also record each fit's seconds)
COMPARED = ("reports/walk_forward/walk_forward.parquet", "reports/walk_forward/networks/*.npz",
            "reports/evaluation/predictions.parquet", "metrics/*.json")


def child(args: argparse.Namespace) -> None:
    """One run of the fit (a process of its own): prints a JSON line."""
    import numpy as np
    import pandas as pd

    from pipelines.core import devices
    from pipelines.core.params.load import load_params
    from pipelines.modelling.features import FeatureTable, make_labels
    from pipelines.modelling.fitting import network_walk_forward
    from pipelines.modelling.models import jit_compile
    from pipelines.modelling.walkforward import walk_forward_blocks

    devices.limit_tensorflow_threads()
    rng = np.random.default_rng(0)
    returns = rng.normal(0.0005, 0.01, args.days)
    close = 1000 * np.exp(np.cumsum(returns))
    features = np.column_stack([returns, rng.normal(size=args.days), rng.uniform(size=args.days)])
    table = FeatureTable(pd.bdate_range("2010-01-04", periods=args.days), features,
                         make_labels(close), close, ["logret", "range", "close_place"])
    window = 10
    days = np.arange(window - 1, args.days)
    days = days[~np.isnan(table.labels[days])]
    blocks = walk_forward_blocks(days, days[len(days) // 2:], args.refit_every, 1)
    config = load_params(ROOT / "params.yaml").train.models[args.model]
    started = time.perf_counter()
    probabilities, _, final = network_walk_forward(
        config, table, window, blocks, tuple(args.seeds), deterministic=MODES[args.child],
        mixed_precision=False, warm_start=True, warm_epochs=4, final_days=days)
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(probabilities.tobytes())
    for seed in sorted(final.weights):
        for layer in final.weights[seed]:
            for array in layer:
                digest.update(np.ascontiguousarray(array).tobytes())
    import tensorflow as tf

    print(json.dumps({"seconds": round(seconds, 2), "sha256": digest.hexdigest(),
                      "tensorflow": tf.__version__,
                      "xla": jit_compile(), "refits": len(blocks) + 1,
                      "first_probability": float(probabilities[0, 0])}))


def fit_once(args: argparse.Namespace, mode: str, env: dict[str, str] | None = None
             ) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--model", args.model,
               "--days", str(args.days), "--refit-every", str(args.refit_every),
               "--seeds", *map(str, args.seeds)]
    done = subprocess.run(command, env=os.environ | ONE_THREAD | (env or {}),
                          capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"the fit ({mode}) exited {done.returncode}:\n{done.stderr[-2000:]}")
    return {"mode": mode} | json.loads(done.stdout.strip().splitlines()[-1])


def fits(args: argparse.Namespace) -> dict[str, Any]:
    """The fit part: the modes alternating, ``args.rounds`` runs each, and one on AVX2."""
    runs = []
    for _ in range(args.rounds):
        for mode in MODES:
            runs.append(fit_once(args, mode))
            print(f"  fit, determinism {mode}: {runs[-1]['seconds']} s "
                  f"{runs[-1]['sha256'][:12]}")
    median = {mode: statistics.median(r["seconds"] for r in runs if r["mode"] == mode)
              for mode in MODES}
    hashes = {mode: sorted({r["sha256"] for r in runs if r["mode"] == mode}) for mode in MODES}
    avx2 = fit_once(args, "on", {"ONEDNN_MAX_CPU_ISA": "AVX2"})
    return {"model": args.model, "seeds": args.seeds, "days": args.days,
            "refit_every": args.refit_every, "refits": runs[0]["refits"], "runs": runs,
            "median_s": median, "ratio": round(median["on"] / median["off"], 3),
            "identical": {mode: len(found) == 1 for mode, found in hashes.items()},
            "another_isa": {"ONEDNN_MAX_CPU_ISA": "AVX2", "sha256": avx2["sha256"],
                            "same_as_native": avx2["sha256"] == hashes["on"][0]}}


def _params(source: Path, target: Path, deterministic: bool, short: bool) -> None:
    params = yaml.safe_load(source.read_text(encoding="utf-8"))
    params["train"]["deterministic"] = deterministic
    if short:
        params["train"].update(SHORT["train"])
        params["evaluate"].update(SHORT["evaluate"])
        for spec in params["train"]["models"].values():
            spec.update(epochs=SHORT["epochs"], patience=SHORT["patience"])
    target.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def _digests(project: Path) -> dict[str, str]:
    found = {}
    for pattern in COMPARED:
        for file in sorted(project.glob(pattern)):
            found[str(file.relative_to(project))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return found


def _stage(stage: str, params: Path, project: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "tsepipe"), stage, "--params", str(params)],
                          cwd=project, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"tsepipe {stage} exited {done.returncode}:\n"
                         f"{(done.stdout + done.stderr)[-2000:]}")
    return round(time.perf_counter() - started, 1)


def walk_forwards(project: Path, short: bool) -> dict[str, Any]:
    """The walk-forward part: evaluate and select twice per mode (alternating) in a copy
    of ``project``, with its settings (``short``: ``SHORT``'s)."""
    if not (project / "data/processed/merged.parquet").is_file():
        raise SystemExit(f"{project}: no merged dataset (run `make demo` first, or pass "
                         "--skip-walk-forward)")
    result: dict[str, Any] = {"project": project.name, "settings": SHORT if short else
                              "the project's params.yaml"}
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="tsepipe-determinism-") as folder:
        copy = Path(folder) / project.name
        shutil.copytree(project, copy, symlinks=True,
                        ignore=shutil.ignore_patterns("dvcstore", "cache"))
        for _ in range(2):
            for mode, deterministic in MODES.items():
                params = copy / f"params-{mode}.yaml"
                _params(project / "params.yaml", params, deterministic, short)
                seconds = {stage: _stage(stage, params, copy) for stage in ("evaluate", "select")}
                runs[mode].append({"seconds": seconds, "digests": _digests(copy)})
                print(f"  walk-forward, determinism {mode}: {seconds}")
    for mode, (first, second) in runs.items():
        differing = sorted(name for name in first["digests"] | second["digests"]
                           if first["digests"].get(name) != second["digests"].get(name))
        result[mode] = {"seconds": [run["seconds"] for run in (first, second)],
                        "files": sorted(first["digests"]), "identical": not differing,
                        "differing": differing}
    evaluate = {mode: statistics.mean(run["seconds"]["evaluate"] for run in runs[mode])
                for mode in MODES}
    result["evaluate_ratio"] = round(evaluate["on"] / evaluate["off"], 3)
    result["modes_agree"] = runs["on"][0]["digests"] == runs["off"][0]["digests"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--days", type=int, default=1200)
    parser.add_argument("--refit-every", type=int, default=120)
    parser.add_argument("--project", type=Path, default=ROOT / "demo" / "tedpix")
    parser.add_argument("--skip-walk-forward", action="store_true")
    parser.add_argument("--short", action="store_true",
                        help="the walk-forward part with SHORT's settings (about 1/4 the time)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/determinism.json")
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    started = time.perf_counter()
    load = os.getloadavg()
    result: dict[str, Any] = {
        "benchmark": "train.deterministic: what TensorFlow op determinism costs, and "
                     "whether two runs give identical outputs",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": common.machine_info(("tensorflow-cpu", "tensorflow", "keras"))
        | {"cpu_model": _cpu_model()},
        "fit": fits(args),
    }
    result["machine"]["tensorflow"] = result["fit"]["runs"][0].pop("tensorflow")
    for run in result["fit"]["runs"]:
        run.pop("tensorflow", None)
    if not args.skip_walk_forward:
        result["walk_forward"] = walk_forwards(args.project, args.short)
    result["load_average"] = {"start": [round(x, 2) for x in load],
                              "end": [round(x, 2) for x in os.getloadavg()]}
    result["notes"] = [
        "fit.ratio: median fit seconds with determinism (TF op determinism; no XLA) over "
        "without (XLA for the seed stack on a CPU); each fit a fresh process, one thread; "
        "walk_forward.evaluate_ratio: the same for tsepipe evaluate, every chain (XLA "
        "compiles once per chain, so it gains more the more refits a chain has).",
        "identical: every run of a mode gave the same probabilities and final weights, "
        "bit for bit; walk_forward.*.identical: evaluate + select twice, every output "
        "file the same bytes.",
        "another_isa: oneDNN (which TensorFlow's CPU kernels use) chooses its code by the "
        "CPU's instruction set, so another CPU can give other bits; determinism holds for "
        "the same code, data and machine.",
        "The machine was shared (load_average): the seconds are noisy, the ratio less so "
        "(the modes alternate)."]
    ok = all(result["fit"]["identical"].values()) and all(
        result.get("walk_forward", {}).get(mode, {"identical": True})["identical"]
        for mode in MODES)
    result["met"] = ok
    common.finish(result, args.out, started, _summary)
    return 0 if ok else 1


def _cpu_model() -> str:
    from pipelines.core.devices import cpu_model

    return cpu_model()


def _summary(result: dict[str, Any]) -> None:
    fit = result["fit"]
    print(f"determinism costs x{fit['ratio']} ({fit['median_s']['on']} s against "
          f"{fit['median_s']['off']} s, median of {len(fit['runs']) // 2}); identical "
          f"runs: {fit['identical']}; AVX2 gives the same bits: "
          f"{fit['another_isa']['same_as_native']}")
    if "walk_forward" in result:
        walk = result["walk_forward"]
        print(f"walk-forward: evaluate x{walk['evaluate_ratio']} with determinism; evaluate "
              f"+ select twice identical: off {walk['off']['identical']}, on "
              f"{walk['on']['identical']}")


if __name__ == "__main__":
    raise SystemExit(main())
