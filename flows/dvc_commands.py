"""DVC commands for the flows, run as subprocesses of this Python's own DVC.

Not named ``dvc.py``: Prefect puts a deployment's flow file's folder (``flows/``) on
``sys.path``, where a ``dvc`` module would hide the ``dvc`` package from the flow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines.core.errors import (
    BUSY_EXIT,
    DATA_ERROR_EXIT,
    FETCH_ERROR_EXIT,
    WRITE_ERROR_EXIT,
    printable,
)
from pipelines.core.processes import signal_to_pass_on, stop_group, undisturbed, watch_descendants

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

    @property
    def stopped_by(self) -> int | None:
        """The signal that ended the stage's own command: DVC says ``exited with -9`` when
        its shell ran the command in its own place (bash), ``exited with 137`` when a shell
        that waits for it (dash, ``/bin/sh`` where ``SHELL`` is unset) reported the signal
        as 128 + N. tsepipe exits above 128 only when a signal stopped it."""
        code = self.stage_exit
        if code is None:
            return None
        if code < 0:
            return -code
        return code - 128 if code - 128 in _SIGNAL_NUMBERS else None

    @property
    def told(self) -> bool:
        """The failure is told in one line and a retry would meet it again: the stage
        exited with one of tsepipe's own codes (``TOLD_EXITS``) or was killed by a signal,
        DVC could not read its own files (``damaged_state``) or write (``write_error``)."""
        code = self.stage_exit
        return (code is not None and (code in TOLD_EXITS or bool(self.stopped_by))) or bool(
            self.damaged_state() or self.write_problem())

    @property
    def write_error(self) -> tuple[str, str] | None:
        """(why, the folder) when DVC itself could not write a file (into its cache, the
        remote, the workspace): a full disk, no permission, a read-only file system. None
        when the stage's own command failed: its exit 6 says it in its own words."""
        found = DVC_WRITE_ERROR.search(self.output)
        if not found or self.stage_exit is not None:
            return None
        target = found.group(4) or found.group(3)
        folder = Path(target).parent if target else Path()
        cache = next((p for p in folder.parents if p.name == "cache" and p.parent.name == ".dvc"),
                     None)  # the cache's own folders (files/md5/8a) mean nothing to a reader
        return WRITE_PROBLEMS[int(found.group(1))], printable(
            Path(".dvc", "cache") if cache else folder)

    def write_problem(self) -> list[str]:
        """``write_error`` in one line (empty when there is none)."""
        if self.write_error is None:
            return []
        why, folder = self.write_error
        return [f"{why}: DVC could not write {folder or 'a file'}; dvc.lock still records "
                "the last good outputs; make room (or make it writable) and run again"]

    def damaged_state(self) -> list[str]:
        """DVC's complaint about ``dvc.lock`` or its rwlock, as ``damaged_dvc_files`` words
        it (empty when DVC said no such thing)."""
        if RWLOCK_CORRUPT.search(self.output):
            return [rwlock_problem("not JSON")]
        if DVC_LOCK_CORRUPT.search(self.output):
            return [dvc_lock_problem("not YAML")]
        return []

    def error_lines(self) -> list[str]:
        """The ``error: ...`` lines that ``tsepipe`` printed, without the prefix."""
        return [line.removeprefix("error: ") for line in self.output.splitlines()
                if line.startswith("error: ")]


# DVC's message for an OSError while it writes: [Errno N] reason: 'path' (-> 'target')
DVC_WRITE_ERROR = re.compile(r"\[Errno (28|13|30)\] ([^:'\n]+)(?:: '([^']+)')?(?: -> '([^']+)')?")
WRITE_PROBLEMS = {28: "disk full", 13: "permission denied", 30: "read-only file system"}
# DVC's temporary files (``.<22 characters>.tmp``) in its cache, left where a write failed
DVC_TEMPORARY = re.compile(r"^\.[\w-]{22}\.tmp$")
# a stage's own exit status that already says what went wrong (pipelines.core.errors)
TOLD_EXITS = (DATA_ERROR_EXIT, BUSY_EXIT, FETCH_ERROR_EXIT, WRITE_ERROR_EXIT)
_SIGNAL_NUMBERS = frozenset(int(number) for number in signal.Signals)
RWLOCK = Path(".dvc") / "tmp" / "rwlock"  # DVC's record of which stage reads/writes what
RWLOCK_CORRUPT = re.compile(r"Unable to read RWLock-file|RWLock-file .* format error")
DVC_LOCK_CORRUPT = re.compile(r"unable to read: '?dvc\.lock'?")


def dvc_lock_problem(why: str) -> str:
    return (f"dvc.lock: {why}: DVC cannot read the versions' record; `git checkout "
            "dvc.lock` brings back the last committed one")


def rwlock_problem(why: str) -> str:
    return (f"{RWLOCK}: DVC's lock file is {why}; delete it when no dvc command runs "
            f"(rm {RWLOCK}), then run again")


def dvc_cache_dir(project: Path) -> Path:
    """The project's DVC cache (``cache.dir`` of DVC's configuration, else ``.dvc/cache``)."""
    from dvc.config import Config, ConfigError

    try:
        configured = Config(dvc_dir=str(project / ".dvc"))["cache"].get("dir")
    except ConfigError:
        configured = None
    return (project / ".dvc" / configured).resolve() if configured else project / ".dvc" / "cache"


def default_remote(project: Path) -> tuple[str, str] | None:
    """(name, URL) of the project's default DVC remote, credentials left out; None if none."""
    from dvc.config import Config, ConfigError

    from pipelines.ops.remote import redact

    try:
        config = Config(dvc_dir=str(project / ".dvc"))
    except ConfigError:
        return None
    name = config["core"].get("remote")
    url = config["remote"].get(name, {}).get("url") if name else None
    return (printable(name), printable(redact(url))) if url else None


def remove_dvc_leftovers(project: Path) -> list[Path]:
    """Remove the temporary files a failed DVC command left in the cache (a write that
    met a full disk leaves an empty ``.<random>.tmp``); the files removed. Called under
    the project's run lock, after DVC ended: no DVC of this project writes them then."""
    files = dvc_cache_dir(project) / "files" / "md5"
    removed = [path for path in [*files.glob(".*.tmp"), *files.glob("*/.*.tmp")]
               if DVC_TEMPORARY.match(path.name) and path.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def damaged_dvc_files(project: Path) -> list[str]:
    """One line per file of DVC's own that DVC could not read, checked before a run so
    that it is not met (and retried) half-way: ``dvc.lock`` that is not a YAML mapping,
    DVC's rwlock that is not a JSON object. A missing file is fine."""
    problems = []
    try:
        lock = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))
    except FileNotFoundError:
        lock = {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problems.append(dvc_lock_problem(f"not YAML{where}"))
        lock = {}
    if not isinstance(lock, dict | None):
        problems.append(dvc_lock_problem("not a YAML mapping"))
    try:
        rwlock = json.loads((project / RWLOCK).read_text(encoding="utf-8"))
    except FileNotFoundError:
        rwlock = {}
    except (ValueError, UnicodeDecodeError):
        problems.append(rwlock_problem("not JSON"))
        rwlock = {}
    if not isinstance(rwlock, dict):
        problems.append(rwlock_problem("not a JSON object"))
    return problems


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
    are free for the next one. Its stage killed outright, what the stage started is
    stopped when DVC ends; this process killed outright, its watchdog stops the group.
    """
    bin_dir = str(Path(sys.executable).parent)
    # the stages run this checkout's own code (a worker's clone may be newer than its install)
    python_path = os.pathsep.join(filter(None, [str(Path(project).resolve()),
                                                os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                        "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path}
    command = [sys.executable, "-m", "dvc", *args]
    lines = []
    watch_descendants()  # this process killed outright: the group is stopped all the same
    with subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1,
                          start_new_session=True) as process:
        assert process.stdout is not None
        threading.Thread(target=_leaving_nothing, args=(process,), daemon=True,
                         name=f"tsepipe: dvc {process.pid}'s leftovers").start()
        try:
            for line in process.stdout:
                if _git_hint(line):
                    continue
                lines.append(line)
                if on_line and line.strip():
                    on_line(line.rstrip())
        except BaseException as exc:
            with undisturbed():
                stop_group(process, signal_to_pass_on(exc))
            raise
    return CommandResult(command, process.returncode, "".join(lines))


def _leaving_nothing(process: subprocess.Popen) -> None:
    """Once DVC has ended, stop what is left of its group: the workers of a stage killed
    outright (SIGKILL, the OOM killer), which would run on and hold DVC's output open."""
    process.wait()
    stop_group(process, signal.SIGTERM)


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
