"""One run at a time per project, and what a run's final state says went wrong.

Two runs in one checkout would fight over ``data/``, ``models/`` and ``dvc.lock`` (and DVC
would refuse the second half-way). Every flow takes the project's run lock first
(``exclusive``): an advisory ``flock`` on ``.dvc/tmp/tsepipe-run.lock``, released by the
operating system when the process ends, so a killed run never leaves a stale lock. A
second run waits up to ``lock_wait_seconds`` (0: not at all) and then ends ``Busy``
("another run is in progress", naming the one that holds it). The lock is re-entrant
within a process: the whole-pipeline flow holds it for its subflows.

A failure has a kind, which ``raise_for_state`` turns into the CLI's exit status:
``BadData`` (exit 3), ``Busy`` (4), ``FetchFailed`` (5), ``WriteFailed`` (6), ``Killed``
(a stage's process killed by a signal: 128 + its number); any other failure is a crash
(1), reported with its last lines. A task's Failed state is named by the kind; a flow run's
final state is named ``Failed`` with the kind leading its message ("FetchFailed: ..."),
because the Prefect UI's deployment page lists runs by Prefect's own state names
(``as_final``, ``kind_of``).

Such a state (``failed``) carries a ``ToldFailure`` as its data: a failure the run found
and told, not a crash. A worker's flow-run process raises the final state's exception once
the run has ended and Prefect logs it ("Engine execution exited with unexpected
exception") with a traceback; that record is dropped (``_QuietToldFailures``) for a told
failure, whose state's name and message say everything. A task that finds such a failure
returns its state too (called with ``return_state=True``; ``is_told``), so that it is
Failed in the UI and not a green task beside an ERROR line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import inspect
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prefect.settings import PREFECT_API_URL
from prefect.states import Failed, State

from flows.dvc_commands import LOCK_FILE
from pipelines.core.errors import (
    BUSY_EXIT,
    FETCH_ERROR_EXIT,
    WRITE_ERROR_EXIT,
    BusyError,
    DataError,
    FetchError,
    PipelineError,
    StageCrash,
    WriteError,
)
from pipelines.core.processes import (
    exit_code,
    exit_interrupted,
    received_signal,
    signal_name,
    watch_descendants,
)

BAD_DATA, BUSY, FETCH_FAILED = "BadData", "Busy", "FetchFailed"
WRITE_FAILED, KILLED = "WriteFailed", "Killed"
CRASH_LINES = 12  # lines of a crashed stage's output shown
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Crash|Exit): ")


class ToldFailure(Exception):
    """The data of a Failed state of ours: a failure the run found and said (its state's
    name and message), never raised by our code."""

    def __init__(self, name: str, message: str):
        super().__init__(name, message)  # both in args: it pickles as a result
        self.name, self.message = name, message

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


class _QuietToldFailures(logging.Filter):
    """Drop Prefect's log record of a told failure raised by its engine after the run
    ended (with a traceback that says nothing the state does not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ToldFailure))


for _logger in ("prefect.flow_runs", "prefect.engine"):  # run_flow's, then the engine's
    logging.getLogger(_logger).addFilter(_QuietToldFailures())


# A flow run's final state is named ``Failed``, its kind leading its message ("FetchFailed:
# ..."): the Prefect UI's deployment page lists a deployment's runs by Prefect's own state
# names, so a run whose state is named FetchFailed would be missing from it (and from its
# failed count). Tasks keep the kind as their state's name (the run graph shows it).
FINAL_NAME = "Failed"
_KIND = re.compile(r"^(BadData|Busy|FetchFailed|WriteFailed|Killed): ")


def failed(name: str, lines: list[str] | str) -> State:
    """The Failed state ``name`` (``BadData``, ``FetchFailed``...) of a failure the run
    told, one problem per line of its message."""
    message = lines if isinstance(lines, str) else "\n".join(lines)
    return Failed(name=name, message=message, data=ToldFailure(name, message))


def as_final(state: State) -> State:
    """A flow's returned state as its run's final one: a told failure named by its kind is
    renamed ``Failed`` with the kind leading its message (``FINAL_NAME``); anything else
    as it is."""
    if not state.is_failed() or state.name == FINAL_NAME or not is_told(state):
        return state
    message = f"{state.name}: {state.message or ''}"
    return Failed(name=FINAL_NAME, message=message, data=ToldFailure(FINAL_NAME, message))


def kind_of(state: State) -> tuple[str, str]:
    """(the failure's kind, its message without the kind): the state's own name, or for a
    flow run's final state (``as_final``) the kind leading its message."""
    message = state.message or ""
    found = _KIND.match(message) if state.name == FINAL_NAME else None
    if found:
        return found.group(1), message[found.end():]
    return state.name or FINAL_NAME, message


def is_told(state: State) -> bool:
    """Whether ``state`` (a task's or subflow's, ``return_state=True``) is a failure it
    told (``failed``); a crash is not: its ``result()`` raises it."""
    return state.is_failed() and isinstance(state.result(raise_on_failure=False), ToldFailure)


def untold(task: Any, task_run: Any, state: State) -> bool:
    """Prefect's retry condition: retry anything but a failure the task told."""
    return not isinstance(getattr(state, "data", None), ToldFailure)


class StageKilled(PipelineError):
    """A stage's process was killed by a signal (the OOM killer, a ``kill`` from outside):
    exit status 128 + the signal's number, as for a command stopped by it."""

    def __init__(self, lines: list[str] | str, signum: int):
        super().__init__(lines)
        self.exit_code = exit_code(signum)


_held: dict[Path, tuple[int, int]] = {}  # lock file -> (file descriptor, depth)
_guard = threading.Lock()


def _holder(lock_file: Path) -> str:
    try:
        text = lock_file.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""


@contextlib.contextmanager
def project_lock(project: Path | str, what: str, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the project's run lock while the block runs; ``BusyError`` if another holds it."""
    lock_file = Path(project).resolve() / LOCK_FILE
    with _guard:
        if lock_file in _held:  # this process holds it already: a subflow
            fd, depth = _held[lock_file]
            _held[lock_file] = (fd, depth + 1)
            acquired_here = False
        else:
            acquired_here = True
    if acquired_here:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    waited = f" after waiting {wait_seconds:g} s" if wait_seconds > 0 else ""
                    raise BusyError(f"{Path(project).resolve()}: another run is in progress"
                                    f"{_holder(lock_file)}{waited}; try again when it has "
                                    "finished") from None
                time.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"{what}, pid {os.getpid()}, since {started}\n".encode())
        with _guard:
            _held[lock_file] = (fd, 1)
    try:
        yield
    finally:
        with _guard:
            fd, depth = _held[lock_file]
            if depth > 1:
                _held[lock_file] = (fd, depth - 1)
            else:
                del _held[lock_file]
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


INTERRUPTED = ("the run stopped, and with it the temporary Prefect server (the signal "
               "reached both); the stages that had finished are kept, the one that was "
               "running left the last good outputs in place; tsepipe run again to go on")


@contextlib.contextmanager
def ending_with_the_server(poll_seconds: float = 0.5) -> Iterator[None]:
    """Exit at once (status 130 for Ctrl-C) when the ephemeral Prefect server stops under
    a run; whatever way the run ends, nothing it started runs on.

    Ctrl-C in a terminal signals the whole process group: the flow's process, its
    stages' processes and the temporary server Prefect started for this process. Left
    alone, the flow would retry its API calls against the dead server for minutes while
    holding the project's run lock, so the next ``tsepipe run`` would be told another run
    is in progress. There is nothing left to record: every output is written atomically.
    A server seen stopped twice in a row (Prefect restarts one that could not take its
    port at start-up) is told in one line (``error: interrupted (SIGINT): ...``; the
    signal this process got when one came to every process of the run at once, SIGTERM
    to them all gives 143); the process exits once what it started has ended
    (``exit_interrupted``: the stage's process group, which runs in a session of its own,
    within ``STOP_GRACE_S``): DVC's locks are free for a run started right after. With a
    Prefect server of its own (``PREFECT_API_URL``) the run is left to Prefect.

    The process killed outright (SIGKILL, the OOM killer), its watchdog
    (``pipelines.core.processes.watch_descendants``) stops the server, the stages and
    their workers.
    """
    watch_descendants()
    if PREFECT_API_URL.value():
        yield
        return
    done = threading.Event()

    def watch() -> None:
        # the server's module (2.5 s to import) only where an ephemeral server runs
        from prefect.server.api.server import SubprocessASGIServer

        dead = None
        while not done.wait(poll_seconds):
            server = SubprocessASGIServer._instances.get(None)
            process = getattr(server, "server_process", None)
            stopped = process is not None and process.poll() is not None
            if stopped and process is dead and not done.is_set():
                exit_interrupted(received_signal() or _signal_of(process.returncode),
                                 INTERRUPTED)
            dead = process if stopped else None

    watcher = threading.Thread(target=watch, name="tsepipe: the server's watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


def _signal_of(returncode: int) -> int:
    """The signal that ended the server (its return code -N); SIGINT, Ctrl-C's, when it
    ended by itself (uvicorn exits 0 on SIGINT and SIGTERM alike)."""
    return -returncode if returncode < 0 else signal.SIGINT


def exclusive(flow_function: Callable[..., State]) -> Callable[..., State]:
    """Run a flow function under the project's run lock (its ``project_dir`` parameter).

    ``lock_wait_seconds`` (a parameter of the flow, default 0) bounds the wait. Busy:
    the flow ends ``Failed`` with the name ``Busy`` and says who holds the lock.
    """
    signature = inspect.signature(flow_function)

    @functools.wraps(flow_function)
    def wrapper(*args: Any, **kwargs: Any) -> State:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        project = bound.arguments.get("project_dir", ".")
        wait = float(bound.arguments.get("lock_wait_seconds", 0) or 0)
        try:
            with project_lock(project, flow_function.__name__, wait):
                return as_final(flow_function(*args, **kwargs))
        except BusyError as exc:
            return as_final(failed(BUSY, str(exc)))

    return wrapper


def bad_data(lines: list[str]) -> State:
    """The state of a run stopped by its input data (one problem per line)."""
    return failed(BAD_DATA, lines)


def stage_failed(result: Any) -> State:
    """The state of a run whose stage failed in a way it told (``CommandResult.told``):
    named by the stage's exit status (3 ``BadData``, 4 ``Busy``, 5 ``FetchFailed``, 6
    ``WriteFailed``), ``Killed`` for a signal, ``WriteFailed`` for DVC's own failed write,
    ``BadData`` for a damaged DVC file; the message is the stage's own ``error:`` lines."""
    if result.write_problem():
        return failed(WRITE_FAILED, result.write_problem())
    lines = result.damaged_state() or result.error_lines() or [result.output.strip()]
    signum = result.stopped_by
    if signum:
        stage = result.args[-1]
        return failed(KILLED, (
            f"the {stage} stage was killed ({signal_name(signum)}: out of memory, or "
            f"stopped from outside); its last good outputs stay; run again"))
    name = {BUSY_EXIT: BUSY, FETCH_ERROR_EXIT: FETCH_FAILED,
            WRITE_ERROR_EXIT: WRITE_FAILED}.get(result.stage_exit, BAD_DATA)
    return failed(name, lines)


def passed_on(state: State) -> State:
    """A subflow's failed state as the parent's own (Prefect would otherwise report the
    returned subflow state as "1/1 states failed", losing its name and message)."""
    if not is_told(state):  # a crash: its own Failed state, and the engine's traceback
        return Failed(name=state.name, message=state.message)
    return failed(state.name or "Failed", state.message or "")


def raise_for_state(state: State) -> None:
    """Raise the ``PipelineError`` that says why a flow run did not complete."""
    if state.is_completed():
        return
    kind, message = kind_of(state)
    lines = (message or f"the run ended {kind}").strip().splitlines()
    if kind == BAD_DATA:
        raise DataError(lines)
    if kind == BUSY:
        raise BusyError(lines)
    if kind == FETCH_FAILED:
        raise FetchError(lines)
    if kind == WRITE_FAILED:
        raise WriteError(lines)
    if kind == KILLED:
        found = re.search(r"\((SIG[A-Z0-9]+)", lines[0])
        raise StageKilled(lines, signal.Signals[found.group(1)] if found else signal.SIGKILL)
    tail = [line for line in lines[1:] if line.strip()][-CRASH_LINES:]
    # the exception a stage's traceback ended with, if any, is what a reader wants first
    raised = [line.strip() for line in lines[1:] if _EXCEPTION_LINE.match(line.strip())]
    cause = f" ({raised[-1]})" if raised else ""
    raise StageCrash([f"the run crashed (not a problem with the input data): {lines[0]}"
                      f"{cause}"] + [f"  | {line}" for line in tail])
