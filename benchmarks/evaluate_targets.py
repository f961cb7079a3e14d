"""Benchmark: the evaluate stage's walk-forward over every target, on 1 and on 2 local workers.

The 16 real exports of 1397-1398 (``data/examples/tse-indices-1397-1398``) are ingested,
validated and merged with the project's own functions into a temporary folder, with the
settings of ``params.yaml``; then, with ``data.targets: all`` (``--targets N``: the
headline and the next N - 1 of the merged dataset's indices), ``evaluate_targets`` walks
every (target, network) chain and every global network's chain forward, as ``tsepipe
evaluate`` does (the final refit included), once per ``--workers`` value
(``evaluate.workers``: 1 runs the chains one after the other in the process, more start
a local Dask cluster of that many worker processes). Each run is a fresh process, so
each pays TensorFlow's import as a stage would.

Recorded per run: the walk-forward's wall seconds (``evaluate_targets``, the data read
and TensorFlow's import left out) and the process's, the 1-minute load average before and
after it (another job on the machine slows it), the chains (targets x networks + global
networks), the refits a chain, the targets, and the distinct Dask workers that ran
chains; with the machine's cores (``benchmarks/results/evaluate_targets.json``).

Run from the project root (about 20 minutes on 2 cores at full size; ``--targets 4``
about 5)::

    .venv/bin/python benchmarks/evaluate_targets.py [--targets N] [--workers 1 2]
        [--out benchmarks/results/evaluate_targets.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data/examples/tse-indices-1397-1398"  # the 16 real exports
DEFAULT_OUT = ROOT / "benchmarks/results/evaluate_targets.json"


def stage_paths(folder: Path) -> Any:
    """The data stages' files, all in ``folder``."""
    from pipelines.core.params.paths import Paths

    return Paths(tables_dir=folder / "tables", ingest_report=folder / "ingest.json",
                 validation_summary=folder / "validation.json",
                 validation_report_dir=folder / "validation_report",
                 quarantine_dir=folder / "quarantine", dataset=folder / "merged.parquet",
                 merge_summary=folder / "merge_summary.json", metrics_dir=folder / "metrics")


def merged_dataset(folder: Path, params: Any) -> dict[str, Any]:
    """Ingest, validate and merge the real exports into ``folder``; the merge's summary."""
    from pipelines.data.ingest import ingest
    from pipelines.data.merge import merge
    from pipelines.data.validate import validate

    paths = stage_paths(folder)
    ingest(RAW, paths.tables_dir, paths.ingest_report, params.ingest)
    validate(paths, params.validation, params.data)
    return merge(paths, params.merge, params.data, params.validation)


def child(args: argparse.Namespace) -> None:
    """One walk-forward over the targets (a process of its own): prints a JSON line."""
    from pipelines.core.params.load import load_params
    from pipelines.modelling.evaluate import evaluate_targets
    from pipelines.modelling.features import target_tables
    from pipelines.modelling.settings import EvaluationSettings

    params = load_params(ROOT / "params.yaml")
    data = params.data.model_copy(update={"targets": "all"})
    settings = EvaluationSettings.of(params).but(evaluate={"workers": args.child})
    tables, _ = target_tables(stage_paths(args.stage_dir), data, settings.features)
    tables = dict(list(tables.items())[: args.targets or None])
    import tensorflow  # noqa: F401  (its import is the stage's, not the walk-forward's)

    said: list[str] = []
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    evaluations = evaluate_targets(tables, settings, progress=said.append, final=True)
    seconds = time.perf_counter() - started
    runs = [run for evaluation in evaluations.values()
            for result in evaluation.results.values() for run in result.runs]
    many = len(tables) > 1
    networks = len(settings.train.models)
    global_networks = len(settings.train.global_networks) if many else 0
    print(json.dumps({
        "workers": args.child, "seconds": round(seconds, 1), "targets": len(tables),
        "networks": networks, "global_networks": global_networks,
        "chains": len(tables) * networks + global_networks,
        "refits_per_chain": int(found[1]) if (found := re.search(
            r"(\d+) refits each", said[0] if said else "")) else None,
        "dask_workers": len({run.worker for run in runs if run.worker}),
        "first_line": said[0] if said else "",
        # another job on the machine slows the run: the 1-minute load before and after it
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}))


def run_once(stage_dir: Path, workers: int, targets: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(workers), "--stage-dir",
               str(stage_dir), "--targets", str(targets)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"the walk-forward on {workers} worker(s) exited {done.returncode}:\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {
        "process_seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=0,
                        help="the first N targets of data.targets: all (0: every one)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="evaluate.workers values, run in this order")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stage-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args)
        return 0

    from pipelines.core.params.load import load_params

    started = time.perf_counter()
    params = load_params(ROOT / "params.yaml")
    result: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": common.machine_info(("tensorflow-cpu", "tensorflow", "dask", "distributed")),
        "data": str(RAW.relative_to(ROOT)),
        "asked_targets": args.targets or "all",
        "settings": {"seeds": params.train.seeds, "networks": list(params.train.models),
                     "global_networks": params.train.global_networks,
                     "refit_every": params.evaluate.refit_every,
                     "warm_epochs": params.evaluate.warm_epochs,
                     "deterministic": params.train.deterministic},
    }
    with tempfile.TemporaryDirectory(prefix="tsepipe-bench-targets-") as folder:
        summary = merged_dataset(Path(folder), params)
        result["merged_days"] = summary.get("rows")
        result["runs"] = []
        for workers in args.workers:
            result["runs"].append(run_once(Path(folder), workers, args.targets))
            run = result["runs"][-1]
            print(f"  {workers} worker(s): {run['seconds']} s, {run['chains']} chains "
                  f"({run['targets']} targets), {run['dask_workers']} Dask workers",
                  flush=True)
    seconds = {run["workers"]: run["seconds"] for run in result["runs"]}
    if 1 in seconds and 2 in seconds:
        result["speedup_2_over_1"] = round(seconds[1] / seconds[2], 2)

    def summary_line(result: dict[str, Any]) -> None:
        print(", ".join(f"{run['workers']} worker(s) {run['seconds']} s"
                        for run in result["runs"])
              + (f"; 2 workers {result['speedup_2_over_1']}x as fast"
                 if "speedup_2_over_1" in result else ""))

    common.finish(result, args.out, started, summary_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
