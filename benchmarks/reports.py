"""Benchmark: the drift, accuracy and report stages, and how heavy their pages are to open.

What it measures, in a project where the pipeline has run (``make demo-indices`` leaves one
of 16 indices in ``demo/indices``, the default ``--project``):

- ``tsepipe drift``, ``tsepipe accuracy`` and ``tsepipe report``, each as the command DVC
  runs (a fresh process, so imports included), wall clock, best and median of
  ``--repeats`` runs;
- the size of every page (``reports/index.html``, the accuracy page, Evidently's
  classification and drift pages);
- with ``--browser``: how long headless Chromium takes to open each page offline
  (``tests/support/browser.py``, the same check the tests run).

The stages rewrite their outputs atomically with the same content, so running this in
the demo project changes nothing but the pages' time stamps. Run from the project root::

    .venv/bin/python benchmarks/reports.py [--project demo/indices] [--repeats 3] [--browser]
        [--out benchmarks/results/reports.json]
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

PAGES = ("reports/index.html", "reports/accuracy/index.html",
         "reports/accuracy/classification.html", "reports/drift/index.html")


def time_command(args: list[str], project: Path, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(args, cwd=project, check=True, capture_output=True)
        runs.append(time.perf_counter() - started)
    return {"best_s": round(min(runs), 2), "median_s": round(statistics.median(runs), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT / "demo" / "indices")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also time Chromium")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reports.json")
    options = parser.parse_args()
    project = options.project.resolve()
    missing = [page for page in PAGES if not (project / page).exists()]
    if missing:
        sys.exit(f"{project}: no {missing[0]}; run the pipeline first (make demo)")
    tsepipe = str(Path(sys.executable).with_name("tsepipe"))
    results = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": common.machine_info(("evidently", "jinja2")),
        "repeats": options.repeats,
        "stages": {stage: time_command([tsepipe, stage], project, options.repeats)
                   for stage in ("drift", "accuracy", "report")},
        "pages": {page: {"bytes": (project / page).stat().st_size} for page in PAGES},
    }
    if options.browser:
        sys.path.insert(0, str(ROOT))
        from tests import browser

        for page in PAGES:
            shown = browser.render(project / page)
            results["pages"][page]["chromium_s"] = round(shown.seconds, 2)
            results["pages"][page]["requests"] = len(shown.requests)
    from pipelines.core.fileio import write_json

    write_json(options.out, results)
    print(json.dumps(results["stages"] | {"pages": results["pages"]}, indent=1))


if __name__ == "__main__":
    main()
