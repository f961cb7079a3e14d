"""DVC commands for the flows, run as subprocesses of this Python's own DVC.

Not named ``dvc.py``: Prefect puts a deployment's flow file's folder (``flows/``) on
``sys.path``, where a ``dvc`` module would hide the ``dvc`` package from the flow.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines.core.errors import DATA_ERROR_EXIT
from pipelines.core.processes import signal_of, stop_group, undisturbed

# the project's run lock (flows.runs.project_lock): one run at a time per checkout
LOCK_FILE = Path(".dvc") / "tmp" / "tsepipe-run.lock"


@dataclass
class CommandResult:
    args: list[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def data_error(self) -> bool:
        """The stage's own command reported bad input (retrying will not help)."""
        return f"exited with {DATA_ERROR_EXIT}" in self.output

    @property
    def stage_exit(self) -> int | None:
        """The exit status of the stage's own command when DVC ran it and it failed."""
        found = re.search(r"failed to run: .*, exited with (-?\d+)", self.output)
        return int(found.group(1)) if found else None

    def error_lines(self) -> list[str]:
        """The ``error: ...`` lines that ``tsepipe`` printed, without the prefix."""
        return [line.removeprefix("error: ") for line in self.output.splitlines()
                if line.startswith("error: ")]


def dvc(project: Path, *args: str,
        on_line: Callable[[str], None] | None = None) -> CommandResult:
    """Run ``dvc ARGS`` in ``project`` with this environment's ``tsepipe`` on the PATH.

    Output (stdout and stderr, interleaved) is collected and, line by line as it comes,
    passed to ``on_line``, so that a long stage shows its progress while it runs; DVC's
    "git add dvc.lock / autostage" advice is left out (the flows commit each version).

    DVC and the stage run in a process group of their own: stopped (Ctrl-C, SIGTERM, a
    Prefect cancellation: any exception while it runs), this process passes the signal to
    that group, waits for it (``pipelines.core.processes.STOP_GRACE_S`` at most, then
    SIGKILL) and raises on, so that nothing of the stage outlives the run and DVC's locks
    are free for the next one.
    """
    bin_dir = str(Path(sys.executable).parent)
    # the stages run this checkout's own code (a worker's clone may be newer than its install)
    python_path = os.pathsep.join(filter(None, [str(Path(project).resolve()),
                                                os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                        "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path}
    command = [sys.executable, "-m", "dvc", *args]
    lines = []
    with subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1,
                          start_new_session=True) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if _git_hint(line):
                    continue
                lines.append(line)
                if on_line and line.strip():
                    on_line(line.rstrip())
        except BaseException as exc:
            with undisturbed():
                stop_group(process, signal_of(exc) or signal.SIGTERM)
            raise
    return CommandResult(command, process.returncode, "".join(lines))


# DVC's advice after a stage that changed dvc.lock; tsepipe commits each version itself
GIT_HINT = ("To track the changes with git, run:", "git add ", "To enable auto staging, run:",
            "dvc config core.autostage true")


def _git_hint(line: str) -> bool:
    return line.strip().startswith(GIT_HINT)


def locked_hash(project: Path, stage: str, path: Path | str) -> str | None:
    """The MD5 that ``dvc.lock`` records for ``stage``'s dependency or output ``path``."""
    lock_file = project / "dvc.lock"
    if not lock_file.exists():
        return None
    lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    entry = lock.get("stages", {}).get(stage, {})
    for item in entry.get("deps", []) + entry.get("outs", []):
        if Path(item["path"]) == Path(path):
            return item.get("md5")
    return None
