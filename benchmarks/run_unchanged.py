"""Benchmark: ``tsepipe run`` with nothing changed, against the run through the flow.

In a project where the pipeline has run (``make demo`` leaves one in ``demo/tedpix``, the
default ``--project``), nothing changed since:

- ``tsepipe run`` as a user types it (a fresh process): ``dvc status`` finds every stage
  up to date, ``dvc push`` has nothing to send, no Prefect server is started
  (``flows/unchanged.py``); wall clock, best and median of ``--repeats`` runs;
- the same run through the flow (``flows.pipeline.run_pipeline``, what ``tsepipe run`` did
  before: a temporary Prefect server, ``dvc repro`` of each stage, artifacts), for the
  ratio on this machine.

Budget: 3 s on 2 cores (the issue measured 13 s before the shortcut). Run from the
project root::

    .venv/bin/python benchmarks/run_unchanged.py [--project demo/tedpix] [--repeats 5]
        [--out benchmarks/results/run.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common  # benchmarks/common.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 3.0
BEFORE_S = 13.0  # tsepipe run, nothing changed, before the shortcut (issue measurement)
FLOW = "from flows.pipeline import run_pipeline; print(run_pipeline())"


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT / "demo" / "tedpix")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--flow-repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/run.json")
    args = parser.parse_args(argv)
    tsepipe = str(Path(sys.executable).parent / "tsepipe")
    first, output = timed([tsepipe, "run"], args.project)
    if "nothing changed since the last run" not in output:
        raise SystemExit("the project has changes (or no run yet): run `make demo` first; "
                         f"tsepipe run said:\n{output}")
    shortcut = [first] + [timed([tsepipe, "run"], args.project)[0]
                          for _ in range(args.repeats - 1)]
    flow = [timed([sys.executable, "-c", FLOW], args.project)[0]
            for _ in range(args.flow_repeats)]
    median = statistics.median(shortcut)
    result = {
        "benchmark": "tsepipe run with nothing changed",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": common.machine_info(("dvc", "prefect")),
        "shortcut_s": {"median": round(median, 3), "best": round(min(shortcut), 3),
                       "all": [round(s, 3) for s in shortcut]},
        "through_the_flow_s": {"median": round(statistics.median(flow), 3),
                               "all": [round(s, 3) for s in flow]},
        "ratio_flow_to_shortcut": round(statistics.median(flow) / median, 1),
        "budget_s": BUDGET_S,
        "before_s": BEFORE_S,
        "met": median <= BUDGET_S,
        "notes": ["Wall clock of a fresh process each, imports included.",
                  "shortcut: dvc status --json (up to date) + dvc push (nothing to send); "
                  "no Prefect server (flows/unchanged.py).",
                  "through_the_flow: flows.pipeline.run_pipeline, the path every run took "
                  "before: temporary Prefect server, dvc repro per stage, artifacts.",
                  f"before_s: {BEFORE_S} s, measured by the issue on this kind of machine "
                  "before the shortcut."],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"tsepipe run, nothing changed: {median:.2f} s (budget {BUDGET_S} s, before "
          f"{BEFORE_S} s); through the flow {statistics.median(flow):.1f} s; wrote {args.out}")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
