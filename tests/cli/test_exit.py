"""How the ``tsepipe`` process ends: at once after a success or a failure (its output
flushed, its exit status kept, the interpreter's teardown skipped: after an error line,
TensorFlow's threads torn down could abort the process with status -6), as Python usually
does when Prefect ran in it (its temporary server stops in an exit hook)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

PROGRAM = """
import atexit, sys
atexit.register(lambda mark=sys.argv[1]: open(mark, "w").write("exit hooks ran"))
{before}
sys.argv = ["tsepipe", *sys.argv[2:]]
from tsepipe.cli import main
main()
"""


def _tsepipe(tmp_path: Path, *args: str, before: str = "") -> tuple[subprocess.CompletedProcess,
                                                                      bool]:
    mark = tmp_path / "hooks-ran"
    done = subprocess.run([sys.executable, "-c", PROGRAM.format(before=before), str(mark),
                           *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    return done, mark.exists()


def test_a_success_exits_at_once_with_its_output_flushed(tmp_path):
    done, hooks_ran = _tsepipe(tmp_path, "--version")  # stdout is a pipe: block-buffered
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tsepipe ")
    assert not hooks_ran


def test_a_failure_exits_at_once_with_its_status(tmp_path):
    done, hooks_ran = _tsepipe(tmp_path, "ingest", "--params", str(tmp_path / "nope.yaml"))
    assert done.returncode == 3
    assert "nope.yaml: parameters file not found" in done.stderr
    assert not hooks_ran


@pytest.mark.slow
def test_after_prefect_ran_python_exits_as_usual(tmp_path):
    done, hooks_ran = _tsepipe(tmp_path, "--version", before="import prefect")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tsepipe ")
    assert hooks_ran


HUNG_UP = """
import signal, sys, time
from pipelines.core.processes import exit_interrupted
time.sleep(2)  # the terminal is closed meanwhile: every write to it now fails with EIO
exit_interrupted(signal.SIGHUP)
"""


def test_a_closed_terminal_does_not_keep_an_interrupted_process_alive(tmp_path):
    """A closed terminal's SIGHUP: the ``error: interrupted`` line has nowhere to go (the
    write fails with EIO); the process still exits at once with 129, not through an
    ``OSError`` and the interpreter's exit hooks (under ``tsepipe run`` those sent the
    run's logs to a Prefect server the same hang-up had stopped, for a minute)."""
    import os
    import pty

    master, terminal = pty.openpty()
    child = subprocess.Popen([sys.executable, "-c", HUNG_UP], stdout=terminal, stderr=terminal,
                             cwd=Path(__file__).resolve().parents[2])
    os.close(terminal)
    time.sleep(0.5)
    os.close(master)  # the terminal hangs up
    assert child.wait(timeout=60) == 129
