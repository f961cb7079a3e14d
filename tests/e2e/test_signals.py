"""A stopped run stops everything it started, as an operator or a supervisor stops it.

- SIGINT or SIGTERM to the main process of ``tsepipe run`` (``kill PID``, systemd, Docker)
  while evaluate trains: the run passes the signal to the stage's process group, prints
  one ``error: interrupted (SIG...)`` line, exits 130 / 143, and no process it started
  is left; the next ``tsepipe run --no-retrain`` goes through (no DVC lock held);
- SIGTERM to ``tsepipe evaluate`` itself: its walk-forward workers end with it, and their
  temporary files go;
- a Prefect cancellation of a running flow run (a real server, a process worker): no
  stage process is left, and the next run goes through.

Only that the processes end is asserted (with generous bounds, on a loaded machine), not
how fast: the bound the code keeps is ``pipelines.core.processes.STOP_GRACE_S``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.conftest import BIN, as_a_terminal_would, copy_exports, env, isolated, run

pytestmark = pytest.mark.slow

GONE_WITHIN_S = 60  # the acceptance bound: no process of the run left after this


def slow_evaluate(project: Path, workers: int = 2) -> None:
    """Enough refits and epochs that evaluate is still training when the signal comes."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["evaluate"].update(refit_every=10, workers=workers)
    for spec in params["train"]["models"].values():
        spec.update(epochs=30, patience=30)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "slow"], project)


def tree(pid: int) -> list[psutil.Process]:
    """The process and everything it started, wherever the children moved (sessions)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def left_over(processes: list[psutil.Process], within: float = GONE_WITHIN_S) -> list[str]:
    """Those still running ``within`` seconds from now (zombies count as ended)."""
    deadline = time.monotonic() + within
    alive = processes
    while time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        if not alive:
            return []
        time.sleep(0.5)
    return [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in alive if _running(p)]


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for_line(process: subprocess.Popen, pattern: str, output: list[str],
                  timeout: float = 600) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        output.append(line)
        if re.search(pattern, line) or time.monotonic() > deadline:
            break
    assert process.poll() is None, "ended before the signal:\n" + "".join(output[-30:])


def has_stage(processes: list[psutil.Process], stage: str) -> bool:
    return any(f"tsepipe {stage}" in " ".join(p.cmdline()) for p in processes if _running(p))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_run_stops_its_stages_and_the_next_run_goes_through(
        trained_project, tmp_path, signum):
    project = trained_project  # trained: the models a daily run uses
    slow_evaluate(project)  # the weekly retraining, stopped while it trains
    started = subprocess.Popen([str(BIN / "tsepipe"), "run", "--no-push"], cwd=project,
                               env=isolated(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=as_a_terminal_would)
    output: list[str] = []
    try:
        wait_for_line(started, r"refits done", output)
        processes = tree(started.pid)
        assert has_stage(processes, "evaluate"), [p.cmdline() for p in processes]
        os.kill(started.pid, signum)  # the main process only, as kill, systemd or Docker do
        rest, _ = started.communicate(timeout=GONE_WITHIN_S + 60)
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
    assert started.returncode == 128 + signum, "".join(output[-20:]) + rest[-3000:]
    errors = [line for line in rest.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: interrupted ({signal.Signals(signum).name})"), rest[-3000:]
    assert left_over(processes) == []

    done = subprocess.run([str(BIN / "tsepipe"), "run", "--no-retrain", "--no-push"],
                          cwd=project, env=isolated(tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "forecast for" in done.stdout


def test_sigterm_to_evaluate_ends_its_workers(project, small_sample_dir, tmp_path):
    copy_exports(small_sample_dir, project / "data/raw")
    run(["dvc", "repro", "merge"], project)
    slow_evaluate(project, workers=2)
    temporary = tmp_path / "tmp"  # the stage's TMPDIR: what its workers leave would be here
    temporary.mkdir()
    started = subprocess.Popen([str(BIN / "tsepipe"), "evaluate"], cwd=project,
                               env=env() | {"TMPDIR": str(temporary)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    output: list[str] = []
    try:
        wait_for_line(started, r"refits done", output)
        processes = tree(started.pid)
        assert len(processes) >= 3, [p.cmdline() for p in processes]  # 2 workers (+ manager)
        started.send_signal(signal.SIGTERM)
        rest, _ = started.communicate(timeout=GONE_WITHIN_S + 60)
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
    assert started.returncode == 143, rest[-3000:]
    assert [line for line in rest.splitlines() if line.startswith("error: ")] == [
        next(line for line in rest.splitlines()
             if line.startswith("error: interrupted (SIGTERM)"))], rest[-3000:]
    assert left_over(processes) == []
    assert not (project / "reports/leaderboard.json").exists()  # nothing half-written
    assert sorted(path.name for path in temporary.iterdir()) == []  # the workers' files too
