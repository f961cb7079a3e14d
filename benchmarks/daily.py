"""Benchmark: the daily path on one new trading day, with the ephemeral Prefect server.

The daily path is what the deployments of ``prefect.yaml`` run each trading day: the data
flow (ingest, validate, merge; ``dvc push``; the version committed), then the report flow
(predict, drift, accuracy (up to date: skipped by DVC), report with the current champion;
push; commit). Not ``tsepipe run``:
a new day changes the dataset, so it would evaluate and train again (the weekly
``train`` deployment's job). Locally there is no server, so each flow process starts an
ephemeral one, as a user running the flows by hand gets.

In a copy of a project where the whole demo has run (made once in ``--base`` from the
code of ``--code``, ``tsepipe sample-data`` + ``tsepipe run``, about 3 minutes; reused
afterwards), each repeat:

1. restores the project: a fresh copy of the base with the code under test laid over it
   (``--code``'s tracked and untracked, not ignored files) and committed;
2. appends one new trading day to each of the 16 exports (``append_trading_day``: the
   next Saturday-Wednesday day after the target's last, prices moved as the demo data
   moves them, so the rows pass validation);
3. times, wall clock, fresh processes: ``--mode together`` one process running
   ``flows.daily.daily_flow`` (both flows as subflows, one server), or ``--mode
   separate`` the data flow's process, then the report flow's (one server each).

One more, untimed, repeat runs the same processes with the flow's DVC calls, the server
start and the git commit timed from inside (``PROFILE``), then each stage's command alone
under ``python -X importtime`` for the import time of a stage process. Run from the
project root::

    .venv/bin/python benchmarks/daily.py [--repeats 3] [--mode together|separate]
        [--base benchmarks/work/daily-base] [--code .] [--out benchmarks/results/daily.json]
        [--before RESULT.json]  # an earlier result (the code before a change), kept beside
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py (this script's folder is on sys.path)
import numpy as np

from pipelines.core.calendar import TRADING_WEEKDAYS
from pipelines.data.sample import LAYOUT_A_HEADER, SAMPLE_INDICES, TARGET_ISIN

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 15.0
OLD_S = 34.0  # the daily path on the demo data before this benchmark (issue measurement)
# the stages whose commands run on the daily path (accuracy is up to date: DVC skips it)
DAILY_STAGES = ("ingest", "validate", "merge", "predict", "drift", "report")
BIN = Path(sys.executable).parent

DATA_FLOW = ("from flows.data import data_flow\n"
             "state = data_flow(return_state=True)\n"
             "assert state.is_completed(), state.message\n")
REPORT_FLOW = ("from flows.operations import report_flow\n"
               "state = report_flow(return_state=True)\n"
               "assert state.is_completed(), state.message\n")
DAILY_FLOW = ("from flows.daily import daily_flow\n"
              "state = daily_flow(return_state=True)\n"
              "assert state.is_completed(), state.message\n")
MODES = {"together": [DAILY_FLOW], "separate": [DATA_FLOW, REPORT_FLOW]}

# Run before a flow's code in the profiling repeat: times each DVC command the flows run,
# the ephemeral server's start and the version commit, and writes them to $DAILY_PROFILE.
PROFILE = """
import atexit, json, os, sys, time
spawned = float(os.environ["DAILY_SPAWNED"])
parts = {"process start and flow imports": 0.0}
calls = []
import flows.dvc_commands, pipelines.ops.versions
from prefect.server.api.server import SubprocessASGIServer

def timed(name, function):
    def wrapper(*args, **kwargs):
        start = time.time()
        try:
            return function(*args, **kwargs)
        finally:
            calls.append([name(args), start - spawned, time.time() - start])
    return wrapper

flows.dvc_commands.dvc = timed(
    lambda a: "dvc " + " ".join(x for x in a[1:] if not x.startswith("-")),
    flows.dvc_commands.dvc)
pipelines.ops.versions.record_version = timed(lambda a: "git commit",
                                          pipelines.ops.versions.record_version)
SubprocessASGIServer.start = timed(lambda a: "server start", SubprocessASGIServer.start)
SubprocessASGIServer.stop = timed(lambda a: "server stop", SubprocessASGIServer.stop)
import flows.data, flows.operations
parts["process start and flow imports"] = time.time() - spawned
atexit.register(lambda: open(os.environ["DAILY_PROFILE"], "w").write(json.dumps(
    {"parts": parts, "calls": calls, "exit": time.time() - spawned})))
"""


def code_files(source: Path) -> list[str]:
    """The project's code under ``source`` (tracked and untracked, not ignored files),
    without its data versions (``dvc.lock``, ``*.dvc``)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=source, capture_output=True,
                            text=True, check=True).stdout.split("\0")
    return sorted(name for name in listed if name and (source / name).is_file()
                  and name != "dvc.lock" and not name.endswith(".dvc"))


def code_version(source: Path) -> str:
    """``source``'s commit, with ``+changes`` when its working tree differs from it."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=source,
                            capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=source, capture_output=True,
                           text=True, check=True).stdout.strip()
    return commit + ("+changes" if dirty else "")


def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=bench@localhost", "-c",
                           "user.name=bench", *args], cwd=project, capture_output=True,
                          text=True, check=True).stdout


def environment() -> dict[str, str]:
    return os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def lay_code(source: Path, project: Path) -> None:
    """Replace the code in ``project`` with ``source``'s and commit it (not the data)."""
    if (project / ".git").is_dir():
        for name in git(project, "ls-files", "-z").split("\0"):
            if name and name != "dvc.lock" and not name.endswith(".dvc"):
                (project / name).unlink(missing_ok=True)
    else:
        git(project, "init", "-q")
    for name in code_files(source):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, project / name)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "the code under test", "--allow-empty")


def make_base(base: Path, source: Path) -> None:
    """A project where the whole demo has run (``make demo``'s two commands)."""
    if (base / "dvc.lock").exists() and (base / "forecasts" / "latest.json").exists():
        return
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    lay_code(source, base)
    print(f"making the base project in {base} (tsepipe sample-data, tsepipe run: ~3 min)")
    for command in (["tsepipe", "sample-data", "--out", "data/raw"], ["tsepipe", "run"]):
        subprocess.run(command, cwd=base, env=environment(), capture_output=True, check=True)


def _next_trading_day(day: dt.date) -> dt.date:
    day += dt.timedelta(days=1)
    while day.weekday() not in TRADING_WEEKDAYS:
        day += dt.timedelta(days=1)
    return day


def append_trading_day(raw_dir: Path, seed: int = 1404) -> dt.date:
    """Append the next trading day to each sample export in ``raw_dir``; return the day.

    The day after the target's last; the market moves as in ``pipelines.data.sample`` (drift
    0.18 %, deviation 0.8 %, each index by its beta plus its own noise), open near the
    previous close, high and low around them, volume as the demo's.
    """
    rng = np.random.default_rng(seed)
    exports = {spec.isin: raw_dir / f"{spec.isin}.csv" for spec in SAMPLE_INDICES}
    texts = {isin: path.read_bytes().decode("utf-16") for isin, path in exports.items()}
    last_rows = {isin: text.rstrip("\r\n").rsplit("\r\n", 1)[-1].split(",")
                 for isin, text in texts.items()}
    day = _next_trading_day(dt.datetime.strptime(last_rows[TARGET_ISIN][1], "%Y%m%d").date())
    market = rng.normal(0.0018, 0.008)
    for spec in SAMPLE_INDICES:
        text, last = texts[spec.isin], last_rows[spec.isin]
        assert text.startswith(LAYOUT_A_HEADER), spec.isin
        log_return = market if spec.isin == TARGET_ISIN else (
            spec.beta * market + rng.normal(0, 0.006))
        previous = float(last[5])
        close = round(previous * np.exp(log_return), 1)
        open_ = round(previous * np.exp(rng.normal(0, 0.002)), 1)
        high = round(max(open_, close) * np.exp(abs(rng.normal(0, 0.004))), 1)
        low = round(min(open_, close) * np.exp(-abs(rng.normal(0, 0.004))), 1)
        high, low = max(high, open_, close), min(low, open_, close)
        volume = np.rint(spec.volume_scale * np.exp(rng.normal(0, 0.35) + 25 * abs(log_return)))
        value = volume * rng.uniform(3_500, 5_000)
        trades = np.rint(volume / rng.uniform(15_000, 20_000))
        openint = value / rng.uniform(300, 400)
        row = (f"{spec.ticker},{day:%Y%m%d},{open_:.1f},{high:.1f},{low:.1f},{close:.1f},"
               f"{volume:.0f},{value:.6g},{trades:.0f},{openint:.4g},D,{spec.name_fa},"
               f"{close:.1f}")
        exports[spec.isin].write_bytes(b"\xff\xfe" + (text + row + "\r\n").encode("utf-16-le"))
    return day


def restore(base: Path, source: Path, project: Path) -> dt.date:
    """A fresh copy of ``base`` with the code under test and one new trading day."""
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(base, project, symlinks=True)
    lay_code(source, project)
    return append_trading_day(project / "data" / "raw")


def run_processes(snippets: list[str], project: Path,
                  profile: Path | None = None) -> list[float]:
    """Run each snippet in a fresh Python process in ``project``; their wall clocks."""
    seconds = []
    for number, snippet in enumerate(snippets):
        env = environment()
        if profile:
            snippet = PROFILE + snippet
            env |= {"DAILY_SPAWNED": repr(time.time()),
                    "DAILY_PROFILE": str(profile.with_suffix(f".{number}.json"))}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", snippet], cwd=project, env=env,
                              capture_output=True, text=True, check=False)
        seconds.append(time.perf_counter() - start)
        if done.returncode:
            raise SystemExit(f"the daily path failed in {project}:\n{done.stderr[-3000:]}")
    return seconds


def breakdown(profiles: list[Path], seconds: list[float]) -> list[dict[str, Any]]:
    """Each process's parts: imports, server start, each DVC command, the git commit."""
    processes = []
    for path, wall in zip(profiles, seconds, strict=True):
        found = json.loads(path.read_text(encoding="utf-8"))
        parts: dict[str, float] = dict(found["parts"])
        counts: dict[str, int] = {}
        for name, _, duration in found["calls"]:  # in the order they ran
            parts[name] = parts.get(name, 0.0) + duration
            counts[name] = counts.get(name, 0) + 1
        parts = {(f"{name} (x{counts[name]})" if counts.get(name, 1) > 1 else name): seconds
                 for name, seconds in parts.items()}
        parts["interpreter exit (server stop, atexit)"] = wall - found["exit"]
        parts["Prefect orchestration, artifacts, logging (the rest)"] = wall - sum(
            parts.values())
        processes.append({"wall_s": round(wall, 2),
                          "parts_s": {k: round(v, 2) for k, v in parts.items()}})
    return processes


IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def stage_imports(project: Path) -> dict[str, dict[str, Any]]:
    """Each daily stage's command alone, under ``-X importtime``: its import seconds (all
    imports, lazy ones too), the heaviest top-level packages and the whole process."""
    found = {}
    env = environment() | {"PYTHONPATH": str(project)}
    for stage in DAILY_STAGES:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "tsepipe", stage],
                              cwd=project, env=env, capture_output=True, text=True,
                              check=False)
        wall = time.perf_counter() - start
        top = {}
        for line in done.stderr.splitlines():
            matched = IMPORT_LINE.match(line)
            if matched and not matched.group(3):  # indentation: imported by another
                top[matched.group(4)] = top.get(matched.group(4), 0) + int(matched.group(2))
        heaviest = sorted(top.items(), key=lambda item: -item[1])[:5]
        found[stage] = {"imports_s": round(sum(top.values()) / 1e6, 2),
                        "process_s": round(wall, 2), "exit": done.returncode,
                        "heaviest": {name: round(us / 1e6, 2) for name, us in heaviest}}
    return found


# A skeleton of the daily flow: its two subflows with their stage, push and commit task runs,
# each doing nothing; what Prefect alone costs (imports, the ephemeral server, the runs).
SKELETON = """
from prefect import flow, task
@task
def step(name):
    return name
@flow(name="data")
def data():
    for name in ("ingest", "validate", "merge", "dvc push", "git commit"):
        step.with_options(task_run_name=name)(name)
@flow(name="report")
def report():
    for name in ("predict", "drift", "accuracy", "report", "dvc push", "git commit"):
        step.with_options(task_run_name=name)(name)
@flow(name="daily")
def daily():
    data()
    report()
daily()
"""
DVC_CALLS = 10  # dvc add, seven dvc repro (accuracy's finds nothing to do), two dvc push


def floor(project: Path, stages: dict[str, dict[str, Any]], repeats: int = 3
          ) -> dict[str, Any]:
    """What the daily path costs before any of its work, each part measured alone in the
    up-to-date ``project``: the budget cannot be met below the sum."""
    env = environment() | {"PYTHONPATH": str(project)}

    def seconds(command: list[str]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(command, cwd=project, env=env, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    python = [sys.executable, "-c"]
    stage_process = seconds(python + ["import pandas, pyarrow.parquet, tsepipe.cli"])
    parts = {
        "Prefect: the flow's skeleton, no work (imports, ephemeral server, task runs)":
            seconds(python + [SKELETON]),
        f"DVC: {DVC_CALLS} calls, each as an up-to-date dvc repro":
            DVC_CALLS * seconds([sys.executable, "-m", "dvc", "repro", "--single-item",
                                 "ingest"]),
        f"{len(DAILY_STAGES)} stage processes, no work (python, pandas, pyarrow, the CLI)":
            len(DAILY_STAGES) * stage_process,
        "validate: importing Great Expectations": seconds(
            python + ["import pandas, pyarrow.parquet, tsepipe.cli, great_expectations"])
            - stage_process,
        "drift: importing Evidently": seconds(
            python + ["import pandas, pyarrow.parquet, tsepipe.cli, evidently"])
            - stage_process,
        "drift: Evidently's drift report (the stage's process less its imports)":
            stages["drift"]["process_s"] - stages["drift"]["imports_s"],
    }
    return {"parts_s": {name: round(value, 2) for name, value in parts.items()},
            "floor_s": round(sum(parts.values()), 2)}


def before(path: Path | None) -> dict[str, Any] | None:
    """The figures of an earlier result file (``--before``), to keep beside these."""
    if path is None:
        return None
    earlier = json.loads(path.read_text(encoding="utf-8"))
    keys = ("timestamp", "code", "mode", "timed", "median_s", "best_s", "runs_s",
            "runs_per_process_s", "load_average_after", "breakdown")
    return {key: earlier.get(key) for key in keys}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=ROOT / "benchmarks/work/daily-base")
    parser.add_argument("--code", type=Path, default=ROOT, help="the code under test")
    parser.add_argument("--mode", choices=sorted(MODES), default=None,
                        help="default: together when flows/daily.py exists, else separate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/daily.json")
    parser.add_argument("--before", type=Path, default=None,
                        help="an earlier result (the code before a change) to keep beside")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    source = args.code.resolve()
    mode = args.mode or ("together" if (source / "flows" / "daily.py").exists()
                         else "separate")
    make_base(args.base.resolve(), source)
    work = Path(tempfile.mkdtemp(prefix="tsepipe-daily-"))
    project = work / "project"
    runs = []
    try:
        for _ in range(args.repeats):
            day = restore(args.base, source, project)
            runs.append(run_processes(MODES[mode], project))
        restore(args.base, source, project)
        profile = work / "profile"
        profiled = run_processes(MODES[mode], project, profile)
        processes = breakdown([profile.with_suffix(f".{n}.json")
                               for n in range(len(profiled))], profiled)
        imports = stage_imports(project)
        below = floor(project, imports)
        load = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    totals = [sum(run) for run in runs]
    median = statistics.median(totals)
    result = {
        "benchmark": "the daily path on one new trading day, ephemeral Prefect server",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": common.machine_info(("dvc", "prefect", "tensorflow-cpu", "evidently")),
        "load_average_after": [round(x, 2) for x in load],
        "code": code_version(source),
        "mode": mode,
        "timed": [snippet.splitlines()[0] + " ..." for snippet in MODES[mode]],
        "new_day": day.isoformat(),
        "median_s": round(median, 2),
        "best_s": round(min(totals), 2),
        "runs_s": [round(t, 2) for t in totals],
        "runs_per_process_s": [[round(s, 2) for s in run] for run in runs],
        "breakdown": {"processes": processes, "stage_processes": imports},
        "budget_s": BUDGET_S,
        "old_s": OLD_S,
        "floor": below,
        "measured_before": before(args.before),
        "met": median <= BUDGET_S,
        "notes": [
            "Wall clock of fresh processes, imports included, the project restored "
            "(fresh copy of the base, one new day appended) before each run.",
            "breakdown: one more run, untimed, with timers around each DVC command, the "
            "server start and the git commit; stage_processes: each stage's command run "
            "alone afterwards under python -X importtime (imports_s: all its imports, "
            "process_s: the whole process, its work included).",
            f"old_s: {OLD_S} s, the issue's measurement of the daily path before.",
            "floor: each part the daily path cannot skip (Prefect with its ephemeral server, "
            "one dvc call per stage and push, a process per stage, importing GX and "
            "Evidently, Evidently's drift report) measured alone, medians; floor_s is "
            "their sum, before any other work.",
        ],
    }
    common.finish(result, args.out, started, lambda r: print(
        f"daily path ({mode}): {median:.1f} s median of {r['runs_s']} (budget {BUDGET_S} s, "
        f"old {OLD_S} s; the parts it cannot skip, alone: {below['floor_s']} s)"))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
