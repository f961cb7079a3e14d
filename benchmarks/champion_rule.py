"""Benchmark: a change of the champion rule reruns the selection, not the walk-forward.

In a project where the pipeline has run (``make demo`` leaves one in ``demo/tedpix``, the
default ``--project``), ``dvc exp run -S evaluate.promotion_margin=M`` as a user types it,
``--repeats`` times with M alternating between two values (so that every run has
something to select again), wall clock each, and the stages DVC ran (from its output):
select and what follows it (train, accuracy, predict, drift, report), never evaluate.
Afterwards ``params.yaml``, ``dvc.lock`` and the metrics are restored from git and the
workspace checked out again (``dvc checkout``), so the demo is as it was.

Budget: 30 s on 2 cores (the issue: the whole walk-forward reran, 336 s). Run from the
project root::

    .venv/bin/python benchmarks/champion_rule.py [--project demo/tedpix] [--repeats 3]
        [--out benchmarks/results/champion_rule.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common  # benchmarks/common.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 30.0
BEFORE_S = 336.0  # the whole walk-forward reran (the measurement on the demo)
MARGINS = ("0", "0.03")
RESTORED = ("params.yaml", "dvc.lock", "metrics")
BIN = Path(sys.executable).parent
ENV = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # the stages' tsepipe


def run(command: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n"
                         f"{(done.stdout + done.stderr)[-2000:]}")
    return seconds, done.stdout + done.stderr


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines()
            if line.startswith("Running stage '")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT / "demo" / "tedpix")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/champion_rule.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    dvc = str(BIN / "dvc")
    _, status = run([dvc, "status"], args.project)
    if "up to date" not in status:
        raise SystemExit(f"{args.project}: not up to date (run `make demo` first):\n{status}")
    runs = []
    try:
        for i in range(args.repeats):
            margin = MARGINS[i % len(MARGINS)]
            seconds, output = run([dvc, "exp", "run", "-S",
                                   f"evaluate.promotion_margin={margin}"], args.project)
            runs.append({"promotion_margin": margin, "seconds": round(seconds, 2),
                         "stages": stages_run(output)})
    finally:
        subprocess.run(["git", "checkout", "--", *RESTORED], cwd=args.project, check=False)
        subprocess.run([dvc, "checkout", "--quiet"], cwd=args.project, env=ENV, check=False)
    median = statistics.median(run["seconds"] for run in runs)
    result = {
        "benchmark": "dvc exp run -S evaluate.promotion_margin=M after a full run",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": common.machine_info(("dvc", "tensorflow")),
        "project": args.project.name,
        "runs": runs,
        "median_s": round(median, 2),
        "budget_s": BUDGET_S,
        "before_s": BEFORE_S,
        "met": median <= BUDGET_S and all("evaluate" not in r["stages"] for r in runs),
        "notes": ["Wall clock of `dvc exp run` as typed, each stage a process of its own.",
                  "The walk-forward (evaluate) is not rerun: the champion rule, the "
                  "combinations and the calibration are the select stage's."],
    }
    common.finish(result, args.out, started, lambda r: print(
        f"dvc exp run -S evaluate.promotion_margin: median {r['median_s']} s (budget "
        f"{BUDGET_S} s, before {BEFORE_S} s); stages {runs[0]['stages']}"))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
