"""Stopping what a process started: a signal passed on, a process tree ended within a bound.

A run is a tree of processes: ``tsepipe run`` (or a flow run under a Prefect worker)
starts ``dvc repro`` for each stage in a process group of its own, DVC starts the
stage's ``tsepipe`` command, which may start workers (the walk-forward pool, a Dask
cluster). Stopped, the tree is stopped as one:

- the process that got the signal passes it to the groups it started
  (``stop_group``) and waits for them, at most ``STOP_GRACE_S``, then kills what is left;
- a stage command turns SIGTERM into ``Interrupted`` (as Python turns SIGINT into
  ``KeyboardInterrupt``), ends its own descendants (``stop_descendants``) and exits
  128 + the signal's number with one ``error: interrupted (SIGTERM)`` line.

Outputs are written atomically (``pipelines.core.fileio``), so a stage stopped half-way
leaves the last good outputs; DVC drops the lock entries of processes that have ended.
The bound stays well under a Prefect worker's 30 s grace before its SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator

import psutil

STOP_GRACE_S = 10.0  # how long stopped processes get to end before they are killed
_KILL_WAIT_S = 5.0


class Interrupted(BaseException):
    """A termination signal as an exception in the main thread (like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_of(exc: BaseException) -> int | None:
    """The signal behind an exception: SIGINT for KeyboardInterrupt, ``Interrupted``'s,
    or the ``signal`` of Prefect's ``TerminationSignal``; None for any other exception."""
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(exc, Interrupted):
        return exc.signum
    number = getattr(exc, "signal", None)
    return number if isinstance(number, int) and type(exc).__name__ == "TerminationSignal" \
        else None


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal's number (130 SIGINT, 143 SIGTERM)."""
    return 128 + signum


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def raising_on_sigterm() -> Iterator[None]:
    """SIGTERM raises ``Interrupted`` in the main thread while inside (elsewhere: nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def undisturbed() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while a stop is under way (its own wait is bounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def _living(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def _wait_for(processes: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    deadline = time.monotonic() + seconds
    alive = _living(processes)
    while alive and time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error, ChildProcessError):
            psutil.wait_procs(alive, timeout=0.2)  # reaps this process's own children
        alive = _living(alive)
    return alive


def _send(processes: list[psutil.Process], signum: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signum)


def stop_processes(processes: list[psutil.Process], signum: int = signal.SIGTERM,
                   grace: float = STOP_GRACE_S) -> list[int]:
    """Send ``signum``, wait up to ``grace`` s, SIGKILL the rest; the pids killed."""
    _send(processes, signum)
    alive = _wait_for(processes, grace)
    _send(alive, signal.SIGKILL)
    _wait_for(alive, _KILL_WAIT_S)
    return [process.pid for process in alive]


def existing(pids: Iterable[int]) -> list[psutil.Process]:
    """The processes of these pids that still exist."""
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def descendants() -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return psutil.Process().children(recursive=True)
    return []


def stop_descendants(signum: int = signal.SIGTERM, grace: float = STOP_GRACE_S) -> list[int]:
    """End every process this one started (children and theirs); the pids killed."""
    return stop_processes(descendants(), signum, grace)


def _group(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == pgid:
                members.append(process)
    return members


def stop_group(process: subprocess.Popen, signum: int = signal.SIGTERM,
               grace: float = STOP_GRACE_S) -> list[int]:
    """Pass ``signum`` to the process group that ``process`` leads (started with
    ``start_new_session=True``), wait up to ``grace`` s, then SIGKILL what is left of it
    (its members and their descendants, wherever they moved); the pids killed."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        return []
    members = _group(process.pid)
    tree = {p.pid: p for p in members}
    for member in members:
        with contextlib.suppress(psutil.Error):
            tree |= {child.pid: child for child in member.children(recursive=True)}
    deadline = time.monotonic() + grace
    while _living(list(tree.values())) and time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)
    alive = _living(list(tree.values()))
    _send(alive, signal.SIGKILL)
    _wait_for(alive, _KILL_WAIT_S)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=_KILL_WAIT_S)
    return [p.pid for p in alive]


INTERRUPTED = ("the outputs written before are kept, the step that was running left the "
               "last good ones in place; run the command again to go on")


def exit_interrupted(signum: int, message: str = INTERRUPTED) -> None:
    """Stopped by a signal: end what this process started, say so in one line, exit
    128 + ``signum``.

    ``os._exit``: nothing more may run (exit handlers would call a Prefect server that the
    same Ctrl-C may have stopped, or wait for pool workers that were just killed).
    """
    with undisturbed():
        stop_descendants(signal.SIGTERM)
        sys.stdout.flush()
        sys.stderr.write(f"error: interrupted ({signal_name(signum)}): {message}\n")
        sys.stderr.flush()
        os._exit(exit_code(signum))
