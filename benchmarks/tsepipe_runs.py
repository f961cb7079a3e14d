"""The full default ``tsepipe run`` on TEDPIX's real history, as a user runs it, timed.

Each run is a fresh clone of this repository at a revision (so that one session can time
the code before and after a change on the same machine), in a scratch folder outside the
checkout, with ``params.yaml`` as that revision has it except ``validate.min_usable_files:
1`` (TEDPIX alone). Its raw input is the last ``days`` days of
``data/examples/tedpix-2008-2019`` (2,679 in all). ``tsepipe run --raw-dir`` runs every
stage through Prefect and DVC (ingest .. report, and the version commit), with the
clone's own code (``PYTHONPATH``). Each output line is time-stamped as it comes, and the
stages' spans are read from DVC's "Running stage" lines. From the leaderboard: the
champion, every model's test and validation MCC, and the walk-forward refits: one per
(network, seed) and block, whatever the code does to fit them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HISTORY = ROOT / "data" / "examples" / "tedpix-2008-2019" / "IRX6XTPI0009.json"
STAGE_LINE = re.compile(r"Running stage '([\w-]+)'")
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DVC_NO_ANALYTICS": "1"}


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                          text=True).stdout.strip()


def history_tail(days: int, folder: Path) -> Path:
    """The last ``days`` records of TEDPIX's history, as TSETMC's JSON, in ``folder``."""
    records = json.loads(HISTORY.read_text(encoding="utf-8"))["indexB2"]
    records = sorted(records, key=lambda r: r["dEven"])[-days:]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / HISTORY.name).write_text(json.dumps({"indexB2": records}), encoding="utf-8")
    return folder


def clone_at(revision: str, folder: Path, settings: dict[str, str] | None = None) -> str:
    """A clone of this repository at ``revision`` in ``folder``, with
    ``validate.min_usable_files: 1`` and each ``settings`` key (a key of params.yaml, its
    last name: ``validation_fraction``) set to its value; returns the full commit."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True)
    _git(folder, "checkout", "--quiet", revision)
    params = folder / "params.yaml"
    text = params.read_text(encoding="utf-8")
    for key, value in ({"min_usable_files": "1"} | (settings or {})).items():
        text, count = re.subn(rf"(?m)^(\s*{key}:\s*)[^\s#]+", rf"\g<1>{value}", text)
        if count != 1:
            raise SystemExit(f"{params}: no single {key} to set")
    params.write_text(text, encoding="utf-8")
    _git(folder, "-c", "user.name=benchmark", "-c", "user.email=benchmark@localhost",
         "commit", "--quiet", "-am", f"benchmark: TEDPIX alone; {settings or 'defaults'}")
    return _git(folder, "rev-parse", revision)


def stage_spans(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds from each DVC "Running stage" line to the next one (the last: to the end)."""
    starts = [(t, m.group(1)) for t, line in lines if (m := STAGE_LINE.search(line))]
    ends = [t for t, _ in starts[1:]] + [total]
    return {stage: round(end - start, 2) for (start, stage), end in zip(starts, ends,
                                                                           strict=True)}


def outcome(project: Path) -> dict[str, Any]:
    board = json.loads((project / "reports" / "evaluation" / "leaderboard.json")
                       .read_text(encoding="utf-8"))
    models = board["models"]
    refits = sum(row.get("training", {}).get("fits", 0) for row in models.values())
    blocks = (board.get("walk_forward") or {})
    return {
        "champion": board["champion"],
        "champion_reason": board["champion_reason"],
        "spans": board["days"],
        "walk_forward": blocks,
        "refits": refits,
        "test_mcc": {name: row["test"].get("mcc") for name, row in models.items()},
        "test_mcc_ci": {name: row["test"].get("mcc_ci") for name, row in models.items()},
        "validation_mcc": {name: (row.get("validation") or {}).get("mcc")
                           for name, row in models.items()},
    }


def tsepipe_run(revision: str, days: int, work_dir: Path,
                settings: dict[str, str] | None = None) -> dict[str, Any]:
    """One full ``tsepipe run`` of ``revision`` on the last ``days`` days (the defaults,
    but ``settings``)."""
    project = project_of(work_dir, revision, days, settings)
    commit = clone_at(revision, project, settings)
    raw = history_tail(days, work_dir / f"raw-{days}")
    env = os.environ | ENV | {"PYTHONPATH": str(project)}
    command = [str(Path(sys.executable).parent / "tsepipe"), "run", "--raw-dir", str(raw)]
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()
    with subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.perf_counter() - started, line.rstrip("\n")))
    total = time.perf_counter() - started
    (project / LOG).write_text(
        "\n".join(f"{t:8.2f}  {line}" for t, line in lines) + "\n", encoding="utf-8")
    return summary(project, revision, commit, days, settings, lines, total,
                   process.returncode)


LOG = "benchmark-run.log"  # in each run's folder: every output line, time-stamped


def summary(project: Path, revision: str, commit: str, days: int,
            settings: dict[str, str] | None, lines: list[tuple[float, str]], total: float,
            status: int) -> dict[str, Any]:
    """What a run measured and produced (from its output lines and its leaderboard)."""
    result: dict[str, Any] = {
        "revision": revision, "commit": commit, "days": days, "settings": settings or {},
        "total_s": round(total, 2), "exit_status": status,
        "stage_s": stage_spans(lines, total),
    }
    if status != 0:
        result["log_tail"] = [line for _, line in lines[-20:]]
        return result
    result |= outcome(project)
    evaluate_s = result["stage_s"].get("evaluate")
    if evaluate_s and result["refits"]:
        result["evaluate_s_per_refit"] = round(evaluate_s / result["refits"], 3)
    return result


def from_log(project: Path, revision: str, days: int,
             settings: dict[str, str] | None = None) -> dict[str, Any]:
    """A finished run read back from its folder (its log's last time as the total)."""
    lines = [(float(line[:8]), line[10:]) for line in
             (project / LOG).read_text(encoding="utf-8").splitlines() if line[:8].strip()]
    commit = _git(project, "log", "-1", "--format=%P",  # below the settings' commit
                  "--grep=^benchmark: TEDPIX alone")
    return summary(project, revision, commit, days, settings, lines, lines[-1][0], 0)


def parse_run(spec: str) -> tuple[str, int, dict[str, str]]:
    """``REV@DAYS[:key=value,...]`` -> (revision, days, settings)."""
    head, _, extra = spec.partition(":")
    revision, _, days = head.partition("@")
    settings = dict(item.split("=", 1) for item in extra.split(",") if item)
    return revision, int(days or 2679), settings


def project_of(work_dir: Path, revision: str, days: int,
               settings: dict[str, str] | None) -> Path:
    label = "-".join(f"{k}{v}" for k, v in (settings or {}).items())
    return work_dir / f"{revision[:12]}-{days}{'-' + label if label else ''}"


def section(specs: list[str], work_dir: Path, after: str, from_logs: bool = False,
            rounds: int = 1) -> dict[str, Any]:
    """Every run of ``specs`` (``from_logs``: read back from the folders of an earlier
    call, not run again), ``rounds`` times over, one spec after the other in each round
    (in ``work_dir/round-N`` when more than one), each spec's median run kept with every
    round's total; the budget (the ``after`` revision's default run on the whole history
    against each other revision's, as a ratio of medians) and the growth (the ``after``
    revision's default runs by history length)."""
    done: dict[str, list[dict[str, Any]]] = {spec: [] for spec in specs}
    for number in range(1, rounds + 1):
        folder = work_dir / f"round-{number}" if rounds > 1 else work_dir
        for spec in specs:
            done[spec].append(_one(spec, folder, from_logs))
    runs = [_median(tried) for tried in done.values()]
    target = _git(ROOT, "rev-parse", after)
    mine = [r for r in runs if r["commit"] == target and r["exit_status"] == 0]
    whole = max((r["days"] for r in runs), default=0)
    budget = []
    for now in (r for r in mine if r["days"] == whole):
        for run in runs:
            if run["commit"] == target or run["days"] != whole or run["settings"]:
                continue
            champion = run.get("champion")
            budget.append({
                "after_settings": now["settings"], "before": run["revision"],
                "before_s": run["total_s"], "after_s": now["total_s"],
                "ratio": round(now["total_s"] / run["total_s"], 3),
                "met": now["total_s"] <= run["total_s"] / 2,
                "champion_test_mcc": {"before": (run.get("test_mcc") or {}).get(champion),
                                      "after": now["test_mcc"][now["champion"]]}})
    growth = [{"days": r["days"], "total_s": r["total_s"],
               "evaluate_s": r["stage_s"].get("evaluate"), "refits": r.get("refits"),
               "evaluate_s_per_refit": r.get("evaluate_s_per_refit")}
              for r in sorted(mine, key=lambda r: r["days"]) if not r["settings"]]
    return {"after": after, "after_commit": target, "rounds": rounds, "budget": budget,
            "growth": growth, "runs": runs}


def _one(spec: str, work_dir: Path, from_logs: bool) -> dict[str, Any]:
    revision, days, settings = parse_run(spec)
    if from_logs:
        return from_log(project_of(work_dir, revision, days, settings), revision, days,
                        settings)
    print(f"tsepipe run: {revision} on {days} days {settings or ''} ...", flush=True)
    run = tsepipe_run(revision, days, work_dir, settings)
    print(f"  {run['total_s']:.1f} s (evaluate {run['stage_s'].get('evaluate')} s, "
          f"{run.get('refits')} refits), champion {run.get('champion')}", flush=True)
    return run


def _median(tried: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median total time (of the finished ones; a failed one if none finished),
    with every round's total and evaluate time."""
    finished = sorted((r for r in tried if r["exit_status"] == 0), key=lambda r: r["total_s"])
    run = dict(finished[(len(finished) - 1) // 2] if finished else tried[0])
    if len(tried) > 1:
        run["rounds_total_s"] = [r["total_s"] for r in tried]
        run["rounds_evaluate_s"] = [r["stage_s"].get("evaluate") for r in tried]
    return run
