"""Benchmark: read, validate and merge 16 index exports, ours against the study's approach.

What it measures, on two generated input sets (the 16 default sample files of 1,200
trading days each, and 16 files of 6,000 trading days each), wall clock with
``time.perf_counter``, best and median of ``--repeats`` runs after one warm-up run:

- ours: ``pipelines.ingest.ingest`` (read every export into a typed Parquet table),
  ``pipelines.validate.validate`` (Great Expectations, one suite per file, HTML report,
  quarantine) and ``pipelines.merge.merge`` (the target's calendar, bounded forward fill,
  coverage rule, Parquet out), each on its own and in total, with the values of
  ``params.yaml`` (``validate:``, ``merge:``, ``data:``);
- the study's approach on the same files: ``pd.read_csv(encoding="utf-16_le")`` per
  file, the text columns dropped by position (0, 10, 11), the rest renamed with a
  per-file prefix, then a chain of inner ``pd.merge`` on ``<DTYYYYMMDD>``. It does no
  validation, no type checking and has no calendar policy: the inner join keeps only
  the days every file has, and the rows it keeps are compared with our dataset's rows.

Also measured: the time to import Great Expectations (once per process, so kept out of
the validate times), and the process's peak resident memory (``ru_maxrss``).

Run from the project root::

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
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py (this script's folder is on sys.path)
import pandas as pd

from pipelines.config import load_params
from pipelines.fileio import write_json
from pipelines.ingest import ingest
from pipelines.merge import MergePolicy, column_name, merge
from pipelines.sample import DEFAULT_DAYS, DEFAULT_SEED, generate
from pipelines.validate import RowQuality, validate

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("benchmarks/results/ingest.json")  # relative to the project root
DEFAULT_WORK = Path("benchmarks/work/ingest")
LONG_SET_DAYS = 6000
STUDY_DATE_COLUMN = "<DTYYYYMMDD>"
STUDY_TEXT_POSITIONS = [0, 10, 11]  # ticker, period, index name in the 13-column layout A
STUDY_CLOSE_COLUMN = "<CLOSE>"

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


def run_ours(raw_dir: Path, stage_dir: Path, params: dict[str, Any]) -> tuple[Timings, dict]:
    """Ingest, validate and merge ``raw_dir`` into ``stage_dir``; return (timings, summary)."""
    validate_params = params["validate"]
    target = params["data"]["target_index"]
    tables, ingest_report = stage_dir / "tables", stage_dir / "ingest.json"
    validation_summary = stage_dir / "validation.json"

    start = time.perf_counter()
    ingest(raw_dir, tables, ingest_report, params["ingest"]["file_patterns"])
    read_done = time.perf_counter()
    validate(tables, ingest_report, validation_summary, stage_dir / "validation_report",
             stage_dir / "quarantine", target,
             min_usable_files=validate_params["min_usable_files"],
             min_rows=validate_params["min_rows"],
             price_tolerance=validate_params["price_tolerance"],
             quality=RowQuality.from_params(params))
    validate_done = time.perf_counter()
    summary = merge(tables, validation_summary, stage_dir / "merged.parquet",
                    stage_dir / "merge_summary.json", target,
                    MergePolicy.from_params(params))
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
    stats = {
        name: {
            "best": round(min(r[name] for r in runs), 4),
            "median": round(statistics.median(r[name] for r in runs), 4),
            "runs": [round(r[name], 4) for r in runs],
        }
        for name in runs[0]
    }
    return stats, {name: round(value, 4) for name, value in warmup.items()}, result


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


def benchmark_set(
    name: str, days: int, seed: int, work_dir: Path, params: dict[str, Any], repeats: int
) -> dict[str, Any]:
    """Generate one input set and time both approaches on it; return its JSON entry."""
    set_dir = work_dir / name
    raw_dir = set_dir / "raw"
    start = time.perf_counter()
    files = sorted(generate(raw_dir, n_days=days, seed=seed), key=lambda p: p.name)
    generate_s = time.perf_counter() - start
    target = params["data"]["target_index"]

    ours, ours_warmup, summary = repeat(lambda: run_ours(raw_dir, set_dir / "ours", params),
                                        repeats)
    study, study_warmup, study_frame = repeat(lambda: study_read_and_merge(files), repeats)
    # The header exactly as the study's read_csv call sees it (is the BOM left in?).
    first_columns = [str(c) for c in pd.read_csv(files[0], encoding="utf-16_le", nrows=0)]

    ours_rows, study_rows = summary["rows"], len(study_frame)
    ours_median = ours["total_s"]["median"]
    ours_read_merge = ours["read_s"]["median"] + ours["merge_s"]["median"]
    study_median = study["read_and_merge_s"]["median"]
    return {
        "files": len(files),
        "days_per_file": days,
        "bytes_total": sum(p.stat().st_size for p in files),
        "generate_s": round(generate_s, 3),
        "ours": ours | {
            "rows": ours_rows,
            "columns": summary["columns"],
            "warmup_run": ours_warmup,
            "target_trading_days": summary["target_trading_days"],
            "indices_included": summary["indices_included"],
            "indices_excluded": [s["index_id"] for s in summary["indices"] if not s["included"]],
            "leading_rows_dropped": summary["leading_rows_dropped"],
            "rows_dropped_stale": summary["rows_dropped_stale"],
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
            "ours_total_over_study": round(ours_median / study_median, 2),
            "ours_read_plus_merge_over_study": round(ours_read_merge / study_median, 2),
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


def machine_info() -> dict[str, Any]:
    return common.machine_info(("pandas", "pyarrow", "numpy", "great-expectations"))


NOTES = [
    "Times are wall clock (time.perf_counter) in seconds: best and median of the timed runs, "
    "each after one untimed warm-up run per set and approach (its times are in warmup_run).",
    "gx_import_s is the one-off import of Great Expectations; validate_s excludes it.",
    "ours = ingest (header-mapped typed read, Parquet per file) + validate (Great "
    "Expectations suite per file, HTML report, quarantine records) + merge (target "
    "calendar, forward fill of at most merge.max_fill_days, coverage rule, Parquet out); "
    "every stage also writes its JSON report.",
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
    header = (f"{'set':<12}{'MB':>6}{'read':>8}{'valid.':>8}{'merge':>8}{'total':>8}"
              f"{'rows':>7} |{'study':>8}{'rows':>7}{'ratio':>7}{'RSS MiB':>9}")
    print(header)
    print("-" * len(header))
    for name, entry in result["sets"].items():
        ours, study = entry["ours"], entry["study"]
        print(f"{name:<12}{entry['bytes_total'] / 1e6:>6.1f}"
              f"{ours['read_s']['median']:>8.3f}{ours['validate_s']['median']:>8.3f}"
              f"{ours['merge_s']['median']:>8.3f}{ours['total_s']['median']:>8.3f}"
              f"{ours['rows']:>7} |{study['read_and_merge_s']['median']:>8.3f}"
              f"{study['rows']:>7}{entry['speed_ratio']['ours_total_over_study']:>7.1f}"
              f"{entry['peak_rss_mib_after_set']:>9.1f}")
    print("(seconds, medians; ratio = ours total / study; the study validates nothing and "
          "its inner join drops days)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    script_start = time.perf_counter()
    gx_import_s = time_gx_import()
    params = load_params(args.params)
    sample = params.get("sample", {})
    input_sets = {
        f"sample_{sample.get('days', DEFAULT_DAYS)}d": sample.get("days", DEFAULT_DAYS),
        f"long_{LONG_SET_DAYS}d": LONG_SET_DAYS,
    }
    seed = sample.get("seed", DEFAULT_SEED)
    sets = {}
    for name, days in input_sets.items():
        print(f"{name}: 16 files of {days} trading days, {args.repeats} timed runs ...",
              flush=True)
        sets[name] = benchmark_set(name, days, seed, args.work_dir, params, args.repeats)
    result = {
        "benchmark": "ingest + validate + merge vs the study's read_csv + inner join",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "repeats": args.repeats,
        "params": {key: params[key] for key in ("data", "validate", "merge")},
        "gx_import_s": round(gx_import_s, 4) if gx_import_s is not None else None,
        "sets": sets,
        "peak_rss_mib": common.peak_rss_mib(),
        "notes": NOTES,
    }
    result["script_runtime_s"] = round(time.perf_counter() - script_start, 1)
    write_json(args.out, result)
    print_table(result)
    print(f"wrote {args.out} in {result['script_runtime_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
