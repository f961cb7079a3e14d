"""A stopped run stops everything it started, as an operator or a supervisor stops it.

- SIGINT to the main process of ``tsepipe run``, or SIGTERM to every process of the run
  at once, while evaluate trains: the run passes the signal to the stage's process
  group, prints one ``error: interrupted (SIG...)`` line, exits 130 / 143, and no process
  it started is left; the next ``tsepipe run --no-retrain`` goes through (no DVC lock
  held);
- SIGHUP (a closed terminal, a dropped SSH session) to the run's main process, during
  merge and during evaluate: as SIGTERM, exit 129; SIGKILL to it (the OOM killer):
  its watchdog stops the Prefect server, DVC, the stage and its workers; SIGKILL to the
  evaluate stage's process: one line; each time the next run goes through;
- SIGTERM or SIGINT to ``tsepipe evaluate`` itself: its walk-forward workers end with it,
  and their temporary files go, with no resource tracker's traceback after the line;
- a Prefect cancellation of a running flow run (a real server, a process worker): no
  stage process is left, and the next run goes through.

Only that the processes end is asserted (with generous bounds, on a loaded machine), not
how fast: the bound the code keeps is ``pipelines.core.processes.STOP_GRACE_S``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from pipelines.core.errors import LINE_LIMIT
from pipelines.core.processes import WATCH_POLL_S
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


@contextlib.contextmanager
def a_run(project: Path, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """``tsepipe run --no-push`` in a session of its own (as a terminal's job), killed
    if the test fails first (its watchdog stops the rest)."""
    started = subprocess.Popen([str(BIN / "tsepipe"), "run", "--no-push"], cwd=project,
                               env=isolated(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=as_a_terminal_would)
    try:
        yield started
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)


def ended(started: subprocess.Popen, processes: list[psutil.Process]) -> str:
    """The rest of the run's output, once it and every process it started have ended."""
    started.wait(timeout=GONE_WITHIN_S + 60)
    assert left_over(processes) == []
    rest, _ = started.communicate(timeout=30)
    return rest


def the_run_with(started: subprocess.Popen, stage: str) -> list[psutil.Process]:
    """The run's processes once its ``stage`` runs: asserted to hold the temporary Prefect
    server (uvicorn), DVC and the stage's own process, the ones that outlived the run."""
    deadline = time.monotonic() + 60
    while not has_stage(processes := tree(started.pid), stage):
        assert time.monotonic() < deadline and started.poll() is None, stage
        time.sleep(0.2)
    commands = [" ".join(p.cmdline()) for p in processes if _running(p)]
    assert any("uvicorn" in c for c in commands), commands
    assert any("dvc" in c and "repro" in c for c in commands), commands
    return processes


def one_error_line(output: str, start: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(start), output[-3000:]
    assert len(errors[0]) <= LINE_LIMIT, errors[0]
    assert "Traceback" not in output, output[-3000:]


def the_next_run_goes_through(project: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "tsepipe"), "run", "--no-retrain", "--no-push"],
                          cwd=project, env=isolated(tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "forecast for" in done.stdout


def set_param(project: Path, section: str, **values: object) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT-to-the-main-process", "SIGTERM-to-its-group-and-all"])
def test_a_signal_to_the_run_stops_its_stages_and_the_next_run_goes_through(
        trained_project, tmp_path, signum):
    project = trained_project  # trained: the models a daily run uses
    slow_evaluate(project)  # the weekly retraining, stopped while it trains
    output: list[str] = []
    with a_run(project, tmp_path) as started:
        wait_for_line(started, r"refits done", output)
        processes = tree(started.pid)
        assert has_stage(processes, "evaluate"), [p.cmdline() for p in processes]
        if signum == signal.SIGINT:
            os.kill(started.pid, signum)  # the main process only, as kill, systemd, Docker do
        else:  # its group, then the stage's group, the Prefect server, the workers, ...
            os.killpg(started.pid, signum)
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    process.send_signal(signum)
        rest = ended(started, processes)
    assert started.returncode == 128 + signum, "".join(output[-20:]) + rest[-3000:]
    one_error_line(rest, f"error: interrupted ({signal.Signals(signum).name})")
    the_next_run_goes_through(project, tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_evaluate_ends_its_workers(project, small_sample_dir, tmp_path, signum):
    copy_exports(small_sample_dir, project / "data/raw")
    run(["dvc", "repro", "merge"], project)
    slow_evaluate(project, workers=2)
    temporary = tmp_path / "tmp"  # the stage's TMPDIR: what its workers leave would be here
    temporary.mkdir()
    started = subprocess.Popen([str(BIN / "tsepipe"), "evaluate"], cwd=project,
                               env=env() | {"TMPDIR": str(temporary)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, preexec_fn=as_a_terminal_would)
    output: list[str] = []
    try:
        wait_for_line(started, r"refits done", output)
        processes = tree(started.pid)
        assert len(processes) >= 3, [p.cmdline() for p in processes]  # 2 workers (+ manager)
        started.send_signal(signum)
        rest, _ = started.communicate(timeout=GONE_WITHIN_S + 60)
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
    assert started.returncode == 128 + signum, rest[-3000:]
    assert [line for line in rest.splitlines() if line.startswith("error: ")] == [
        next(line for line in rest.splitlines()
             if line.startswith(f"error: interrupted ({signal.Signals(signum).name})"))], \
        rest[-3000:]
    assert left_over(processes) == []
    assert "Traceback" not in rest, rest[-3000:]  # a resource tracker's, once
    assert not (project / "reports/leaderboard.json").exists()  # nothing half-written
    assert sorted(path.name for path in temporary.iterdir()) == []  # the workers' files too


def test_a_closed_terminal_or_a_kill_stops_everything_the_run_started(trained_project,
                                                                     tmp_path):
    """SIGHUP during merge, then during evaluate; SIGKILL to the main process, then to the
    evaluate stage's: each time every process of the run ends (the killed one's by its
    watchdog), and the run after it goes through."""
    project = trained_project
    set_param(project, "merge", max_fill_days=6)  # the data flow runs merge again
    with a_run(project, tmp_path) as started:
        wait_for_line(started, r"> tsepipe merge", [])
        processes = the_run_with(started, "merge")
        os.kill(started.pid, signal.SIGHUP)
        rest = ended(started, processes)
    assert started.returncode == 129, rest[-3000:]
    one_error_line(rest, "error: interrupted (SIGHUP)")
    the_next_run_goes_through(project, tmp_path)

    slow_evaluate(project)
    for kill in ("SIGHUP", "SIGKILL", "SIGKILL to the stage"):
        with a_run(project, tmp_path) as started:
            wait_for_line(started, r"refits done", [])
            time.sleep(2 * WATCH_POLL_S)  # the watchdog has seen the workers
            processes = the_run_with(started, "evaluate")
            stage = next(p for p in processes if "tsepipe evaluate" in " ".join(p.cmdline()))
            if kill == "SIGHUP":
                os.kill(started.pid, signal.SIGHUP)
            elif kill == "SIGKILL":
                os.kill(started.pid, signal.SIGKILL)
            else:  # the stage's process: a stage killed, not a crash
                stage.kill()
            rest = ended(started, processes)
        if kill == "SIGHUP":
            assert started.returncode == 129, rest[-3000:]
            one_error_line(rest, "error: interrupted (SIGHUP)")
        elif kill == "SIGKILL to the stage":
            assert started.returncode == 128 + signal.SIGKILL, rest[-3000:]
            one_error_line(rest, "error: the evaluate stage was killed (SIGKILL")
            break
        the_next_run_goes_through(project, tmp_path)
