"""Benchmark: read, validate and merge 16 index exports, ours against the study's approach.

What it measures, on two generated input sets (the 16 default sample files of 1,200
trading days each, and 16 files of 6,000 trading days each), wall clock with
``time.perf_counter``:

- ours: ``pipelines.data.ingest.ingest`` (read every export into a typed Parquet table),
  ``pipelines.data.validate.validate`` (Great Expectations, one suite per file, alike files in
  one GX batch; HTML report, quarantine, the verdicts' cache) and
  ``pipelines.data.merge.merge`` (the target's calendar, bounded forward fill, coverage rule,
  Parquet out), each on its own and in total, with the values of ``params.yaml``
  (``validate:``, ``merge:``, ``data:``), in three cases:

  - ``cold``: in this process, after its imports (Great Expectations included) and one
    untimed warm-up run, with no validation cache (the report folder removed before each
    run, as ``dvc repro`` removes a stage's outputs): every file is validated; best and
    median of ``--repeats`` runs;
  - ``warm``: the same, but the files unchanged since the previous run, whose verdicts
    are reused from the cache (a re-run with nothing changed that DVC did not skip, or a
    run in which only some files changed, for those that did not); best and median;
  - ``first_call``: the first run in a fresh Python process (``--repeats`` processes), no
    cache: the import of Great Expectations, timed on its own (``gx_import_s``), then one
    ingest, validate and merge, which include GX's one-off set-up in a process;

- the study's approach on the same files: ``pd.read_csv(encoding="utf-16_le")`` per
  file, the text columns dropped by position (0, 10, 11), the rest renamed with a
  per-file prefix, then a chain of inner ``pd.merge`` on ``<DTYYYYMMDD>``. It does no
  validation, no type checking and has no calendar policy: the inner join keeps only
  the days every file has, and the rows it keeps are compared with our dataset's rows.

Also measured: the time to import Great Expectations (once per process, so kept out of
the validate times), and the process's peak resident memory (``ru_maxrss``). The budget
(``BUDGET_S`` for ingest + validate + merge of the sample set, medians) is judged for
each case; ``before`` holds the figures of the per-file validation it replaced.

Run from the project root, on a quiet machine (``uptime``: load average under 1.5)::

    .venv/bin/python benchmarks/ingest.py [--out benchmarks/results/ingest.json] [--repeats N]

The inputs and the pipeline's outputs go to ``benchmarks/work/`` (ignored by git); the
results are written atomically as JSON and summarised on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py (this script's folder is on sys.path)
import pandas as pd

from pipelines.core.columns import column_name
from pipelines.core.params.load import Params, load_params
from pipelines.core.params.paths import Paths
from pipelines.data.ingest import ingest
from pipelines.data.merge import merge
from pipelines.data.sample import generate
from pipelines.data.validate import validate

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("benchmarks/results/ingest.json")  # relative to the project root
DEFAULT_WORK = Path("benchmarks/work/ingest")
LONG_SET_DAYS = 6000
STUDY_DATE_COLUMN = "<DTYYYYMMDD>"
STUDY_TEXT_POSITIONS = [0, 10, 11]  # ticker, period, index name in the 13-column layout A
STUDY_CLOSE_COLUMN = "<CLOSE>"
BUDGET_S = 1.5  # ingest + validate + merge of the 16 sample files, on 2 cores
BUDGET_SET = "sample_1200d"
# The per-file validation (a GX suite run per file, no cache) that batching and the cache
# replaced, as this script measured it (the sample set's medians; validate was then the
# cold case: every file validated in every run).
BEFORE = {
    "timestamp": "2026-11-23T22:21:04+00:00",
    "what": "in-process, after imports and one warm-up run, every file validated "
            "(one GX suite run per file; there was no cache)",
    "gx_import_s": 3.2572,
    "sets": {
        "sample_1200d": {"read_s": 0.407, "validate_s": 3.9866, "merge_s": 0.1337,
                         "total_s": 4.5957},
        "long_6000d": {"read_s": 1.0135, "validate_s": 4.5269, "merge_s": 0.3359,
                       "total_s": 6.3211},
    },
}

Timings = dict[str, float]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time tsepipe's ingest, validate and merge stages against the study's "
        "read_csv + inner-join approach on 16 generated exports (1,200 and 6,000 days).",
    )
    parser.add_argument("--out", type=Path, default=ROOT / DEFAULT_OUT,
                        help=f"JSON results file (default: {DEFAULT_OUT})")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per set after one warm-up run (default: 3)")
    parser.add_argument("--work-dir", type=Path, default=ROOT / DEFAULT_WORK,
                        help=f"scratch folder for inputs and outputs (default: {DEFAULT_WORK})")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                        help="parameters file (default: params.yaml of the project)")
    parser.add_argument("--first-call", type=Path, metavar="SET_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def time_gx_import() -> float | None:
    """Seconds to import Great Expectations; None when something imported it already."""
    if "great_expectations" in sys.modules:
        return None
    start = time.perf_counter()
    importlib.import_module("great_expectations")
    return time.perf_counter() - start


def run_ours(raw_dir: Path, stage_dir: Path, params: Params,
             cached: bool) -> tuple[Timings, dict]:
    """Ingest, validate and merge ``raw_dir`` into ``stage_dir``; return (timings, summary).

    Without ``cached``, the validation report folder (which holds the cache) is removed
    first, untimed, so every file is validated.
    """
    paths = Paths(tables_dir=stage_dir / "tables", ingest_report=stage_dir / "ingest.json",
                  validation_summary=stage_dir / "validation.json",
                  validation_report_dir=stage_dir / "validation_report",
                  quarantine_dir=stage_dir / "quarantine",
                  dataset=stage_dir / "merged.parquet",
                  merge_summary=stage_dir / "merge_summary.json")
    if not cached:
        shutil.rmtree(paths.validation_report_dir, ignore_errors=True)

    start = time.perf_counter()
    ingest(raw_dir, paths.tables_dir, paths.ingest_report, params.ingest)
    read_done = time.perf_counter()
    validate(paths, params.validation, params.data)
    validate_done = time.perf_counter()
    summary = merge(paths, params.merge, params.data, params.validation)
    merge_done = time.perf_counter()
    timings = {
        "read_s": read_done - start,
        "validate_s": validate_done - read_done,
        "merge_s": merge_done - validate_done,
        "total_s": merge_done - start,
    }
    return timings, summary


def study_read_and_merge(files: Sequence[Path]) -> tuple[Timings, pd.DataFrame]:
    """The study's approach: read, drop text columns by position, prefix, inner-join all."""
    start = time.perf_counter()
    frames = []
    for path in files:
        frame = pd.read_csv(path, encoding="utf-16_le")
        frame = frame.drop(columns=frame.columns[STUDY_TEXT_POSITIONS])
        frame = frame.rename(columns={c: f"{path.stem}_{c}" for c in frame.columns
                                      if c != STUDY_DATE_COLUMN})
        frames.append(frame)
    read_done = time.perf_counter()
    merged = frames[0]
    for frame in frames[1:]:
        merged = pd.merge(merged, frame, on=STUDY_DATE_COLUMN, how="inner")
    merge_done = time.perf_counter()
    timings = {
        "read_s": read_done - start,
        "merge_s": merge_done - read_done,
        "read_and_merge_s": merge_done - start,
    }
    return timings, merged


def summarise(runs: list[Timings]) -> dict[str, dict[str, Any]]:
    """{name: {best, median, runs}} of each figure over ``runs``."""
    return {
        name: {
            "best": round(min(r[name] for r in runs), 4),
            "median": round(statistics.median(r[name] for r in runs), 4),
            "runs": [round(r[name], 4) for r in runs],
        }
        for name in runs[0]
    }


def repeat(run: Callable[[], tuple[Timings, Any]], repeats: int) -> tuple[dict, dict, Any]:
    """One warm-up call, then ``repeats`` timed calls of ``run``.

    Returns ({name: {best, median, runs}}, the warm-up's timings, the last call's result).
    """
    warmup, result = run()
    runs: list[Timings] = []
    for _ in range(repeats):
        gc.collect()
        timings, result = run()
        runs.append(timings)
    return summarise(runs), {name: round(value, 4) for name, value in warmup.items()}, result


def first_call(set_dir: Path, params_path: Path) -> Timings:
    """In this fresh process: import GX, then one ingest, validate and merge, no cache."""
    stage_dir = set_dir / "first_call"
    shutil.rmtree(stage_dir, ignore_errors=True)
    gx_import_s = time_gx_import()
    timings, _ = run_ours(set_dir / "raw", stage_dir, load_params(params_path), cached=False)
    return {"gx_import_s": gx_import_s or 0.0} | timings


def time_first_calls(set_dir: Path, params_path: Path, repeats: int) -> dict[str, Any]:
    """``first_call`` in ``repeats`` fresh processes (this script with ``--first-call``)."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, __file__, "--first-call", str(set_dir), "--params", str(params_path)],
            capture_output=True, text=True, check=True, env=os.environ | {"PYTHONPATH": str(ROOT)},
        )
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    return summarise(runs)


def compare_days(dataset: Path, study: pd.DataFrame, target: str) -> dict[str, Any]:
    """Which trading days each approach keeps, and whether they agree on the target's close."""
    ours = pd.read_parquet(dataset, columns=["date", column_name(target, "close")])
    ours = ours.set_index("date")[column_name(target, "close")]
    study_dates = pd.to_datetime(study[STUDY_DATE_COLUMN].astype(str), format="%Y%m%d")
    study_close = pd.Series(study[f"{target}_{STUDY_CLOSE_COLUMN}"].to_numpy(),
                            index=study_dates)
    common = ours.index.intersection(study_close.index)
    close_gap = None
    if len(common):
        close_gap = float((ours.loc[common] - study_close.loc[common]).abs().max())
    return {
        "days_in_both": len(common),
        "days_only_in_ours": len(ours.index.difference(study_close.index)),
        "days_only_in_study": len(study_close.index.difference(ours.index)),
        "target_close_max_abs_diff_on_common_days": close_gap,
    }


def benchmark_set(name: str, days: int, seed: int, work_dir: Path, params: dict[str, Any],
                  args: argparse.Namespace) -> dict[str, Any]:
    """Generate one input set and time both approaches on it; return its JSON entry."""
    set_dir = work_dir / name
    raw_dir = set_dir / "raw"
    start = time.perf_counter()
    files = sorted(generate(raw_dir, n_days=days, seed=seed), key=lambda p: p.name)
    generate_s = time.perf_counter() - start
    target = params.data.target_index
    repeats = args.repeats

    cold, cold_warmup, summary = repeat(
        lambda: run_ours(raw_dir, set_dir / "ours", params, cached=False), repeats)
    warm, warm_warmup, _ = repeat(
        lambda: run_ours(raw_dir, set_dir / "ours", params, cached=True), repeats)
    first = time_first_calls(set_dir, args.params, repeats)
    study, study_warmup, study_frame = repeat(lambda: study_read_and_merge(files), repeats)
    # The header exactly as the study's read_csv call sees it (is the BOM left in?).
    first_columns = [str(c) for c in pd.read_csv(files[0], encoding="utf-16_le", nrows=0)]

    ours_rows, study_rows = summary["rows"], len(study_frame)
    study_median = study["read_and_merge_s"]["median"]
    return {
        "files": len(files),
        "days_per_file": days,
        "bytes_total": sum(p.stat().st_size for p in files),
        "generate_s": round(generate_s, 3),
        "ours": {
            "cold": cold | {"warmup_run": cold_warmup},
            "warm": warm | {"warmup_run": warm_warmup},
            "first_call": first,
            "before": BEFORE["sets"][name],
            "rows": ours_rows,
            "columns": summary["columns"],
            "target_trading_days": summary["target_trading_days"],
            "indices_included": summary["indices_included"],
            "indices_excluded": [s["index_id"] for s in summary["indices"] if not s["included"]],
            "leading_rows_dropped": summary["leading_rows_dropped"],
            "rows_dropped_gaps": summary["rows_dropped_gaps"],
            "values_filled": summary["values_filled"],
        },
        "study": study | {
            "rows": study_rows,
            "columns": study_frame.shape[1],
            "warmup_run": study_warmup,
            "first_file_columns_as_read": first_columns,
            "bom_in_first_column_name": first_columns[0].startswith("\ufeff"),
        },
        "speed_ratio": {
            "ours_cold_total_over_study": round(cold["total_s"]["median"] / study_median, 2),
            "ours_warm_total_over_study": round(warm["total_s"]["median"] / study_median, 2),
            "ours_read_plus_merge_over_study": round(
                (cold["read_s"]["median"] + cold["merge_s"]["median"]) / study_median, 2),
            "basis": "medians; > 1 means ours takes that many times longer",
        },
        "rows_comparison": {
            "ours_rows": ours_rows,
            "study_rows": study_rows,
            "study_rows_fewer_than_ours": ours_rows - study_rows,
            "study_rows_as_share_of_ours": round(study_rows / ours_rows, 4),
            "target_trading_days_lost_by_inner_join": summary["target_trading_days"] - study_rows,
        } | compare_days(set_dir / "ours" / "merged.parquet", study_frame, target),
        "peak_rss_mib_after_set": common.peak_rss_mib(),
    }


def budget(sets: dict[str, Any]) -> dict[str, Any]:
    """The budget judged on the sample set's medians, for each case (``met``: the cold one)."""
    ours = sets[BUDGET_SET]["ours"]
    cases = {case: {"total_median_s": ours[case]["total_s"]["median"],
                    "met": ours[case]["total_s"]["median"] <= BUDGET_S}
             for case in ("cold", "warm", "first_call")}
    return {
        "budget_s": BUDGET_S,
        "what": f"ingest + validate + merge of {BUDGET_SET} (16 files), median wall clock, "
                "imports excluded; met: the cold in-process case (every file validated)",
        "met": cases["cold"]["met"],
        "cases": cases,
        "before_total_median_s": BEFORE["sets"][BUDGET_SET]["total_s"],
    }


def machine_info() -> dict[str, Any]:
    return common.machine_info(("pandas", "pyarrow", "numpy", "great-expectations"))


NOTES = [
    "Times are wall clock (time.perf_counter) in seconds: best and median of the timed runs. "
    "cold and warm: in this process, after its imports (Great Expectations included) and one "
    "untimed warm-up run per set and case (its times are in warmup_run); first_call: the "
    "first run in each of --repeats fresh processes.",
    "cold: the validation report folder, which holds the verdicts' cache, is removed before "
    "each run (as dvc repro removes a stage's outputs), so every file is validated. warm: "
    "the files are unchanged since the previous run, so every verdict comes from the cache "
    "and Great Expectations does not run. first_call: no cache, and the process's first "
    "use of GX (its import is in gx_import_s, left out of total_s).",
    "gx_import_s is the one-off import of Great Expectations; validate_s excludes it.",
    "ours = ingest (header-mapped typed read, Parquet per file) + validate (a Great "
    "Expectations suite per file, the files whose suites are alike run as one GX batch; "
    "HTML report, quarantine records, the cache) + merge (target calendar, forward fill of "
    "at most merge.max_fill_days, coverage rule, Parquet out); every stage also writes its "
    "JSON report.",
    "before: the same measure (the cold case) when each file's suite ran on its own, as "
    "recorded on the date given; budget: the sample set against BUDGET_S.",
    "study = pd.read_csv(encoding='utf-16_le') per file, columns 0, 10 and 11 dropped by "
    "position, the rest prefixed with the file name, then a chain of inner pd.merge on "
    "<DTYYYYMMDD>, all in memory (nothing written). It does no validation, no type "
    "checking and has no calendar policy: the inner join silently keeps only the days "
    "every file has (see rows_comparison).",
    "pandas 2.3 strips the UTF-16 BOM itself when the encoding is given: see "
    "study.bom_in_first_column_name (the study dropped that column by position anyway).",
    "speed_ratio compares medians; ours_read_plus_merge_over_study leaves validation out.",
    "peak_rss_mib is ru_maxrss of the whole process, so each set's value includes what "
    "earlier sets used.",
]


def print_table(result: dict[str, Any]) -> None:
    """A short human-readable summary of the medians on stdout."""
    print(f"Great Expectations import: {result['gx_import_s']} s")
    header = (f"{'set':<14}{'case':<11}{'read':>8}{'valid.':>8}{'merge':>8}{'total':>8}"
              f"{'before':>8} |{'study':>8}{'rows':>7}{'ours':>7}")
    print(header)
    print("-" * len(header))
    for name, entry in result["sets"].items():
        ours, study = entry["ours"], entry["study"]
        for case in ("cold", "warm", "first_call"):
            timings = ours[case]
            print(f"{name:<14}{case:<11}{timings['read_s']['median']:>8.3f}"
                  f"{timings['validate_s']['median']:>8.3f}{timings['merge_s']['median']:>8.3f}"
                  f"{timings['total_s']['median']:>8.3f}{ours['before']['total_s']:>8.3f} |"
                  f"{study['read_and_merge_s']['median']:>8.3f}{study['rows']:>7}"
                  f"{ours['rows']:>7}")
    verdict = result["budget"]
    print(f"(seconds, medians; the study validates nothing and its inner join drops days) "
          f"budget {verdict['budget_s']} s, cold: {'met' if verdict['met'] else 'NOT met'}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.first_call:
        print(json.dumps(first_call(args.first_call, args.params)))
        return 0
    script_start = time.perf_counter()
    load_at_start = [round(load, 2) for load in os.getloadavg()]  # 1, 5, 15 minutes
    gx_import_s = time_gx_import()
    params = load_params(args.params)
    sample = params.sample
    input_sets = {f"sample_{sample.days}d": sample.days, f"long_{LONG_SET_DAYS}d": LONG_SET_DAYS}
    seed = sample.seed
    sets = {}
    for name, days in input_sets.items():
        print(f"{name}: 16 files of {days} trading days, {args.repeats} timed runs a case ...",
              flush=True)
        sets[name] = benchmark_set(name, days, seed, args.work_dir, params, args)
    result = {
        "benchmark": "ingest + validate + merge vs the study's read_csv + inner join",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_at_start": load_at_start,
        "repeats": args.repeats,
        "params": params.model_dump(mode="json", by_alias=True,
                                    include={"data", "validation", "merge"}),
        "gx_import_s": round(gx_import_s, 4) if gx_import_s is not None else None,
        "budget": budget(sets),
        "before": BEFORE,
        "sets": sets,
        "peak_rss_mib": common.peak_rss_mib(),
        "notes": NOTES,
    }
    common.finish(result, args.out, script_start, print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
