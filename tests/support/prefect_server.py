"""A real ``prefect server`` for the deployment tests: own home, own port, fast scheduler.

``prefect_server(folder)`` starts ``prefect server start`` on a free local port with its
own ``PREFECT_HOME`` (its SQLite database included) and yields the environment every
subprocess of the test must use (``PREFECT_API_URL`` pointing at it). The server is
always stopped afterwards: SIGTERM to its process group, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import BIN, env

STARTUP_TIMEOUT = 150  # a cold server on 2 cores: about 15-30 s (migrations, services)

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(home: Path, port: int, tmp: Path, ui: bool = False) -> dict[str, str]:
    return env() | {
        "PREFECT_HOME": str(home),
        "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # off: nothing to build or serve; on: the UI at http://127.0.0.1:{port}/
        "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "0",  # leave scheduled (future) runs alone
        "PYTHONUNBUFFERED": "1",
        # a worker keeps each run's files in $TMPDIR/runner_storage: in /tmp, whoever made
        # that folder first (another user) would lock everyone else out of it. Short: the
        # stages' multiprocessing sockets live there too (AF_UNIX paths: 107 bytes at most)
        "TMPDIR": str(tmp),
    }


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200 and json.loads(response.read()) is True
    except (OSError, ValueError):
        return False


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def prefect_server(folder: Path, database_url: str | None = None, ui: bool = False
                   ) -> Iterator[dict[str, str]]:
    """Start a server under ``folder``; yield the environment that points at it.

    ``database_url``: the server's database (``postgresql+asyncpg://...``, see
    ``tests/support/postgres.py``); by default SQLite in its ``PREFECT_HOME``. ``ui``:
    serve the Prefect UI too (at the API URL without ``/api``).
    """
    home = folder / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tsepipe-tmp-"))
    port = free_port()
    server = server_env(home, port, tmp, ui)
    server_only = {"PREFECT_API_DATABASE_CONNECTION_URL": database_url} if database_url else {}
    log = (folder / "prefect-server.log").open("w", encoding="utf-8")
    process = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=server | server_only, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not healthy(server["PREFECT_API_URL"]):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError(
                    f"prefect server did not come up (exit {process.poll()}):\n"
                    + (folder / "prefect-server.log").read_text(encoding="utf-8")[-4000:])
            time.sleep(0.5)
        yield server
    finally:
        stop(process)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def run_in(args: list[str], cwd: Path, environment: dict[str, str], timeout: float = 300,
           check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done

