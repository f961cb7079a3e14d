"""Benchmark: the memory and time a long export costs, at ``ingest.max_rows`` and far above it.

Each stage of a case runs in a fresh Python process (this script with ``--child``), as DVC
runs them, which reports its own peak resident memory (``VmHWM``; ``ru_maxrss`` off Linux)
after its imports (validation's include Great Expectations) and after the stage, and the
wall clock (``time.perf_counter``) of each:

- ``sample_16``: ingest + validate of the 16 sample exports (``params.yaml``'s
  ``sample.days`` each): what the cases below add to;
- ``at_bound``: the same 16 files but the target's, which holds ``ingest.max_rows - 1``
  rows (the sample target's rows repeated, layout A, UTF-16 LE with BOM, CRLF):
  ``ingest.max_rows`` line breaks, the longest file ingest reads;
- ``long_10m``: ingest of one export of 10,000,000 rows (the at-bound file's rows
  repeated, about 100 times its size) with ``ingest.max_file_mb`` raised so that only
  ``max_rows`` stops it: it is refused with its size. ``read_export`` (the refusal alone)
  is timed first, then ``ingest`` of the folder (which also hashes the whole file). The
  file is written to a temporary folder and removed afterwards.

Run from the project root, on a quiet machine, with about 3 GB of free disk under the
temporary folder (``TMPDIR``)::

    .venv/bin/python benchmarks/large_export.py [--out benchmarks/results/large_export.json]

The inputs of the first two cases go to ``benchmarks/work/`` (ignored by git); the results
are written atomically as JSON and summarised on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py (this script's folder is on sys.path)

from pipelines.core.params.load import load_params
from pipelines.data.sample import TARGET_ISIN, generate

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("benchmarks/results/large_export.json")  # relative to the project root
DEFAULT_WORK = Path("benchmarks/work/large_export")
LONG_ROWS = 10_000_000
LONG_MAX_FILE_MB = 3000  # ingest.max_file_mb of the long case (2.5 GB): max_rows refuses it


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Peak memory and time of ingest + validate with one export at "
        "ingest.max_rows, and of refusing a 10 M row export, each in a fresh process.")
    parser.add_argument("--out", type=Path, default=ROOT / DEFAULT_OUT,
                        help=f"JSON results file (default: {DEFAULT_OUT})")
    parser.add_argument("--work-dir", type=Path, default=ROOT / DEFAULT_WORK,
                        help=f"scratch folder for the inputs (default: {DEFAULT_WORK})")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                        help="parameters file (default: params.yaml of the project)")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "RAW_DIR", "STAGE_DIR"),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(case: str, raw_dir: Path, stage_dir: Path, params_path: Path) -> dict[str, Any]:
    """In this fresh process: import what ``case`` needs, run it; what it cost."""
    start = time.perf_counter()
    if case == "validate":
        import great_expectations  # noqa: F401  (here, so that its cost is not validate's)
    from pipelines.core.params.paths import Paths
    from pipelines.data.formats import TooManyRowsError, read_export
    from pipelines.data.ingest import ingest
    from pipelines.data.validate import validate

    params = load_params(params_path)
    figures: dict[str, Any] = {"import_s": time.perf_counter() - start,
                               "peak_rss_mib_after_imports": common.peak_rss_mib()}
    paths = Paths(tables_dir=stage_dir / "tables", ingest_report=stage_dir / "ingest.json",
                  validation_summary=stage_dir / "validation.json",
                  validation_report_dir=stage_dir / "validation_report",
                  quarantine_dir=stage_dir / "quarantine")
    start = time.perf_counter()
    if case == "validate":
        outcome = validate(paths, params.validation, params.data)
        return rounded(figures | {
            "validate_s": time.perf_counter() - start,
            "peak_rss_mib_after_validate": common.peak_rss_mib(),
            "validation_passed": outcome.passed, "usable_files": len(outcome.usable_ids),
            "target_usable": TARGET_ISIN in outcome.usable_ids})
    settings = params.ingest
    if case == "long_10m":
        settings = settings.model_copy(update={"max_file_mb": LONG_MAX_FILE_MB})
        try:
            read_export(next(raw_dir.iterdir()), max_rows=settings.max_rows)
        except TooManyRowsError as exc:
            figures["refusal"] = str(exc)
        figures |= {"read_export_s": time.perf_counter() - start,
                    "peak_rss_mib_after_read_export": common.peak_rss_mib()}
        start = time.perf_counter()
    report = ingest(raw_dir, paths.tables_dir, paths.ingest_report, settings)
    return rounded(figures | {
        "ingest_s": time.perf_counter() - start,
        "peak_rss_mib_after_ingest": common.peak_rss_mib(),
        "ingested": {entry["file"]: {key: entry[key] for key in ("status", "rows", "bytes")}
                     for entry in report["files"] if entry["index_id"] == TARGET_ISIN}})


def rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {name: round(value, 3) if isinstance(value, float) else value
            for name, value in figures.items()}


def run_child(case: str, raw_dir: Path, stage_dir: Path, params_path: Path) -> dict[str, Any]:
    """``child`` in a fresh process; its figures, and the wall clock of the whole process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", case, str(raw_dir), str(stage_dir),
         "--params", str(params_path)],
        capture_output=True, text=True, check=False,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    if done.returncode:
        raise SystemExit(f"{case} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.splitlines()[-1])
    return figures | {"process_s": round(time.perf_counter() - start, 3)}


def stages(raw_dir: Path, stage_dir: Path, params_path: Path) -> dict[str, Any]:
    """Ingest, then validate, each in its own fresh process (as DVC runs the stages)."""
    shutil.rmtree(stage_dir, ignore_errors=True)
    stage_dir.mkdir(parents=True)
    return {stage: run_child(stage, raw_dir, stage_dir, params_path)
            for stage in ("ingest", "validate")}


def sample_inputs(work_dir: Path, days: int, seed: int, max_rows: int) -> dict[str, Any]:
    """The 16 sample files, and a copy whose target file holds ``max_rows - 1`` rows."""
    start = time.perf_counter()
    sample = work_dir / "sample_16" / "raw"
    generate(sample, n_days=days, seed=seed)
    at_bound = work_dir / "at_bound" / "raw"
    shutil.rmtree(at_bound, ignore_errors=True)
    shutil.copytree(sample, at_bound)
    bound_file = at_bound / f"{TARGET_ISIN}.csv"
    write_bound_export(sample / bound_file.name, bound_file, max_rows - 1)
    data = bound_file.read_bytes()
    return {"sample_16_dir": sample, "at_bound_dir": at_bound, "bound_file": bound_file,
            "bound_file_bytes": len(data),
            "bound_file_line_breaks": data.decode("utf-16").count("\n"),
            "generate_s": round(time.perf_counter() - start, 3)}


def write_bound_export(sample_file: Path, target: Path, rows: int) -> None:
    """``sample_file`` made ``rows`` rows long: its rows forwards, backwards, forwards ...
    (levels without a jump: they pass validation), dated a calendar day apart up to its
    last day. ``generate`` with that many days is no such file: 400 years of drift make
    levels hundreds of digits long (65 MB), and trading days that many start before 1677,
    the first day pandas holds."""
    header, *body = sample_file.read_bytes().decode("utf-16").rstrip("\r\n").split("\r\n")
    cycle = [row.split(",") for row in body + body[::-1]]
    last = dt.datetime.strptime(cycle[len(body) - 1][1], "%Y%m%d").date()
    lines = [header]
    for number in range(rows):
        fields = cycle[number % len(cycle)]
        day = last - dt.timedelta(days=rows - 1 - number)
        lines.append(",".join([fields[0], f"{day:%Y%m%d}", *fields[2:]]))
    target.write_bytes(b"\xff\xfe" + ("\r\n".join(lines) + "\r\n").encode("utf-16-le"))


def write_long_export(bound_file: Path, target: Path, rows: int) -> int:
    """A layout A export of ``rows`` rows: ``bound_file``'s rows repeated; its size."""
    data = bound_file.read_bytes()
    header_end = data.index("\r\n".encode("utf-16-le")) + 4
    body = data[header_end:]
    body_rows = body.decode("utf-16-le").count("\n")
    with open(target, "wb") as out:
        out.write(data[:header_end])
        for _ in range(rows // body_rows):
            out.write(body)
        rest = body.decode("utf-16-le").split("\r\n")[: rows % body_rows]
        out.write("".join(row + "\r\n" for row in rest).encode("utf-16-le"))
    return target.stat().st_size


def long_case(inputs: dict[str, Any], work_dir: Path, params_path: Path) -> dict[str, Any]:
    """The 10 M row export in a temporary folder: written, ingested (refused), removed."""
    with tempfile.TemporaryDirectory(prefix="tsepipe-long-export-") as folder:
        raw_dir = Path(folder) / "raw"
        raw_dir.mkdir()
        start = time.perf_counter()
        size = write_long_export(inputs["bound_file"], raw_dir / f"{TARGET_ISIN}.csv",
                                 LONG_ROWS)
        write_s = time.perf_counter() - start
        stage_dir = work_dir / "long_10m" / "out"
        shutil.rmtree(stage_dir, ignore_errors=True)
        figures = run_child("long_10m", raw_dir, stage_dir, params_path)
    return {"rows": LONG_ROWS, "bytes": size, "write_s": round(write_s, 3)} | figures


NOTES = [
    "Each stage (ingest, validate) of a case runs in a fresh Python process, as DVC runs "
    "them; peak_rss_mib_* is its VmHWM (its own peak resident memory so far) at that point: "
    "after_imports (validate's include Great Expectations), then after the stage. A "
    "stage's own cost is the growth of the peak.",
    "at_bound: the 16 sample files with the target's replaced by one of ingest.max_rows - 1 "
    "rows (its line breaks, the header's included, are exactly ingest.max_rows, the most a "
    "file may have to be read): the sample target's rows forwards, backwards, forwards ..., "
    "a calendar day apart up to its last day (trading days that many would start before "
    "1677, the earliest date pandas holds). sample_16: the 16 sample files as they are.",
    "long_10m: ingest.max_file_mb raised to 3000 so that ingest.max_rows alone refuses the "
    "file; read_export_s and peak_rss_mib_after_read_export are the refusal on its own "
    "(rows counted in 1 MB chunks, stopping at the bound); ingest_s also hashes the whole "
    "file (MD5, for the ingest report).",
    "Seconds are wall clock (time.perf_counter) of one run each.",
]


def print_summary(result: dict[str, Any]) -> None:
    for name in ("sample_16", "at_bound"):
        for stage, figures in result["cases"][name].items():
            base = figures["peak_rss_mib_after_imports"]
            peak = figures[f"peak_rss_mib_after_{stage}"]
            print(f"{name:<10}{stage:<9} peak {peak:7.1f} MiB ({peak - base:+7.1f} over its "
                  f"imports), {figures[f'{stage}_s']:6.2f} s")
    long = result["cases"]["long_10m"]
    grown = long["peak_rss_mib_after_ingest"] - long["peak_rss_mib_after_imports"]
    print(f"long_10m  {long['bytes'] / 1e6:.0f} MB: refused by read_export in "
          f"{long['read_export_s']} s, ingest {long['ingest_s']} s, peak "
          f"{long['peak_rss_mib_after_ingest']} MiB ({grown:+.1f} over its imports)")
    print(f"  {long.get('refusal')}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        case, raw_dir, stage_dir = args.child
        print(json.dumps(child(case, Path(raw_dir), Path(stage_dir), args.params)))
        return 0
    script_start = time.perf_counter()
    load_at_start = [round(load, 2) for load in os.getloadavg()]
    params = load_params(args.params)
    inputs = sample_inputs(args.work_dir, params.sample.days, params.sample.seed,
                           params.ingest.max_rows)
    cases: dict[str, Any] = {
        name: stages(inputs[f"{name}_dir"], args.work_dir / name / "out", args.params)
        for name in ("sample_16", "at_bound")}
    cases["long_10m"] = long_case(inputs, args.work_dir, args.params)
    result = {
        "benchmark": "peak memory and time: one export at ingest.max_rows, one of 10 M rows",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": common.machine_info(("pandas", "pyarrow", "numpy", "great-expectations")),
        "load_average_at_start": load_at_start,
        "params": params.model_dump(mode="json", by_alias=True, include={"ingest"}),
        "inputs": {name: os.path.relpath(value, ROOT) if isinstance(value, Path) else value
                   for name, value in inputs.items()},
        "cases": cases,
        "notes": NOTES,
    }
    common.finish(result, args.out, script_start, print_summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
