"""Stopping what a process started: a signal passed on, a process tree ended within a bound.

A run is a tree of processes: ``tsepipe run`` (or a flow run under a Prefect worker)
starts ``dvc repro`` for each stage in a process group of its own, DVC starts the
stage's ``tsepipe`` command, which may start workers (the walk-forward pool, a Dask
cluster). Stopped, the tree is stopped as one:

- the process that got the signal passes it to the groups it started
  (``stop_group``) and waits for them, at most ``STOP_GRACE_S``, then kills what is left;
- a command turns SIGTERM and SIGHUP (a closed terminal, a dropped SSH session) into
  ``Interrupted`` (as Python turns SIGINT into ``KeyboardInterrupt``), ends its own
  descendants (``stop_descendants``) and exits 128 + the signal's number with one
  ``error: interrupted (SIGTERM)`` line (143; 129 for SIGHUP);
- killed outright (SIGKILL, the OOM killer), a process runs no handler: what it started
  is stopped by its watchdog (``watch_descendants``).

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
from pathlib import Path

import psutil

STOP_GRACE_S = 10.0  # how long stopped processes get to end before they are killed
_KILL_WAIT_S = 5.0
# what ``raising_on_termination`` turns into ``Interrupted``: kill, systemd, Docker; a hang-up
TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []  # the termination signals this process got, in order
_exiting = threading.Lock()  # held by the one thread that says "interrupted" and exits
_watched: dict[int, subprocess.Popen] = {}  # a process's pid -> its watchdog


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
    _received.append(signum)
    raise Interrupted(signum)


def received_signal() -> int | None:
    """The first termination signal this process got inside ``raising_on_termination``
    (or that ``signal_to_pass_on`` noted)."""
    return _received[0] if _received else None


def signal_to_pass_on(exc: BaseException) -> int:
    """The signal to pass on to what this process started, stopped by ``exc``: its own
    (``signal_of``, noted as ``received_signal``: Prefect's handler raises before ours
    hears of it), else SIGTERM."""
    signum = signal_of(exc)
    if signum is not None and signum != signal.SIGINT:
        _received.append(signum)
    return signum or signal.SIGTERM


@contextlib.contextmanager
def raising_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Interrupted`` in the main thread while inside
    (elsewhere: nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in TERMINATION_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def undisturbed() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP ignored while a stop is under way (its own wait is
    bounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, *TERMINATION_SIGNALS)}
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


def resource_tracker(process: psutil.Process) -> bool:
    """Is it a ``multiprocessing`` (or loky) resource tracker? It ignores SIGINT and
    SIGTERM and ends by itself once every process that uses it has ended, after
    unlinking what they left (semaphores, shared memory). Killed, it leaks them, and the
    next unlink starts a tracker that knows none of them (its ``KeyError: '/loky-...'``
    tracebacks)."""
    with contextlib.suppress(psutil.Error):
        return any("resource_tracker import main" in part for part in process.cmdline())
    return False


def descendants() -> list[psutil.Process]:
    """The processes this one started (children and theirs), resource trackers
    (``resource_tracker``) and this process's watchdog left out: they end by themselves
    when the others have."""
    watchdog = _watched.get(os.getpid())
    with contextlib.suppress(psutil.Error):
        return [p for p in psutil.Process().children(recursive=True)
                if not resource_tracker(p) and not (watchdog and p.pid == watchdog.pid)]
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
    same Ctrl-C may have stopped, or wait for pool workers that were just killed). Called
    from two threads at once (the main thread and a watch), the first says it; the other
    waits for the exit.
    """
    with undisturbed():
        _exiting.acquire()
        stop_descendants(signal.SIGTERM)
        line = f"error: interrupted ({signal_name(signum)}): {message}\n"
        for say in (sys.stdout.flush, lambda: sys.stderr.write(line), sys.stderr.flush):
            # a closed terminal (SIGHUP) answers EIO: nobody is there to read the line, and
            # the exit must come all the same (not the interpreter's, whose hooks would send
            # the run's logs to a Prefect server the same hang-up stopped, for a minute)
            with contextlib.suppress(OSError, ValueError):
                say()
        os._exit(exit_code(signum))


# The watchdog. SIGKILL (or the OOM killer) runs no handler: the process cannot stop what
# it started, and its children go on as orphans (a temporary Prefect server, ``dvc repro``
# and its stage, walk-forward workers), holding DVC's locks and the machine.
WATCH_POLL_S = 0.5


def watch_descendants() -> None:
    """Have a watchdog stop this process's descendants if it is killed (once per process).

    ``python -m pipelines.core.processes PID``: a small process in a session of its own
    (a signal to the run's process group does not reach it) that records PID's
    descendants every ``WATCH_POLL_S`` seconds. When PID has ended, it stops those still
    running and theirs (``stop_processes``: as a signal to every process of the run at
    once; resource trackers end by themselves once the others have), and ends. A process
    that ended normally has stopped what it started already: nothing is left to stop
    then. One started in the last ``WATCH_POLL_S`` before the kill is missed, unless a
    process the watch knows started it.

    Stopped by a signal, the process leaves its watchdog alone (``descendants``), which
    then stops what escaped the stop: a Dask worker's children, once its nanny killed it.
    The watchdog ignores SIGINT, SIGTERM and SIGHUP: sent to every process of the run at
    once, they would end it before its work. Where processes have no sessions (not
    POSIX), nothing is watched.
    """
    if os.name != "posix" or os.getpid() in _watched:
        return
    _watched[os.getpid()] = subprocess.Popen(
        [sys.executable, "-m", "pipelines.core.processes", str(os.getpid())],
        cwd=Path(__file__).resolve().parents[2],  # this code, whatever the working folder
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


def _with_descendants(processes: Iterable[psutil.Process]) -> dict[int, psutil.Process]:
    found = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            found[process.pid] = process
            found |= {child.pid: child for child in process.children(recursive=True)}
    found.pop(os.getpid(), None)
    return found


def _watch(parent: int) -> None:
    """Record ``parent``'s descendants until it ends (this process is its child: its
    parent changes then); then stop those still running and theirs."""
    for number in (signal.SIGINT, *TERMINATION_SIGNALS):
        signal.signal(number, signal.SIG_IGN)
    try:
        root = psutil.Process(parent)
    except psutil.Error:
        return
    known: dict[int, psutil.Process] = {}
    while os.getppid() == parent:
        known = {p.pid: p for p in _living(list(known.values()))} | _with_descendants([root])
        time.sleep(WATCH_POLL_S)
    left = _with_descendants(_living(list(known.values()))).values()
    stop_processes([p for p in left if not resource_tracker(p)])


if __name__ == "__main__":
    _watch(int(sys.argv[1]))
