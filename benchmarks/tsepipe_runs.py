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


def clone_at(revision: str, folder: Path) -> str:
    """A clone of this repository at ``revision`` in ``folder``; returns the full commit."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True)
    _git(folder, "checkout", "--quiet", revision)
    params = folder / "params.yaml"
    text, count = re.subn(r"(?m)^(\s*min_usable_files:\s*)\d+", r"\g<1>1",
                          params.read_text(encoding="utf-8"))
    if count != 1:
        raise SystemExit(f"{params}: no validate.min_usable_files to set")
    params.write_text(text, encoding="utf-8")
    _git(folder, "-c", "user.name=benchmark", "-c", "user.email=benchmark@localhost",
         "commit", "--quiet", "-am", "benchmark: TEDPIX alone (validate.min_usable_files 1)")
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
        "days": board["days"],
        "walk_forward": blocks,
        "refits": refits,
        "test_mcc": {name: row["test"].get("mcc") for name, row in models.items()},
        "test_mcc_ci": {name: row["test"].get("mcc_ci") for name, row in models.items()},
        "validation_mcc": {name: (row.get("validation") or {}).get("mcc")
                           for name, row in models.items()},
        "validation_days": (board.get("validation") or {}).get("days"),
    }


def tsepipe_run(revision: str, days: int, work_dir: Path) -> dict[str, Any]:
    """One full default ``tsepipe run`` of ``revision`` on the last ``days`` days."""
    project = work_dir / f"{revision[:12]}-{days}"
    commit = clone_at(revision, project)
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
    (project / "benchmark-run.log").write_text(
        "\n".join(f"{t:8.2f}  {line}" for t, line in lines) + "\n", encoding="utf-8")
    result: dict[str, Any] = {
        "revision": revision, "commit": commit, "days": days, "total_s": round(total, 2),
        "exit_status": process.returncode, "stage_s": stage_spans(lines, total),
    }
    if process.returncode != 0:
        result["log_tail"] = [line for _, line in lines[-20:]]
        return result
    result |= outcome(project)
    evaluate_s = result["stage_s"].get("evaluate")
    if evaluate_s and result["refits"]:
        result["evaluate_s_per_refit"] = round(evaluate_s / result["refits"], 3)
    return result
