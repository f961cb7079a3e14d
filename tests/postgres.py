"""A throw-away PostgreSQL cluster for the tests: Debian's ``postgresql``, on 127.0.0.1.

``postgres_database()`` runs ``initdb`` in a fresh folder, starts the server on a free
port (TCP on 127.0.0.1 only, its socket in that folder, fsync off), creates a database
and yields its SQLAlchemy URL for Prefect (``postgresql+asyncpg://...``). The server is
always stopped and the folder removed. PostgreSQL refuses to run as root: as root the
cluster belongs to the ``postgres`` user (Debian's package creates it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .prefect_server import free_port

START_TIMEOUT = 60


def pg_bin() -> Path:
    """The folder of ``initdb`` and ``pg_ctl`` (Debian keeps them out of the PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise AssertionError("PostgreSQL is not installed (Debian: apt-get install postgresql); "
                         ".ci/run installs it")


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@contextmanager
def postgres_database(name: str = "prefect") -> Iterator[str]:
    """Start a cluster, create database ``name``; yield its ``postgresql+asyncpg`` URL."""
    owner = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="tsepipe-pg-"))
    folder.chmod(0o755)
    if owner:
        user = pwd.getpwnam(owner)
        os.chown(folder, user.pw_uid, user.pw_gid)
    bin_dir, data, port = pg_bin(), folder / "data", free_port()
    log = folder / "server.log"

    def run(command: list[str]) -> None:
        done = subprocess.run(_as_owner(command, owner), capture_output=True, text=True,
                              timeout=START_TIMEOUT, check=False)
        if done.returncode:
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}\n{server_log}")

    run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
         "-E", "UTF8", "--no-sync"])
    try:
        run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
             "-t", str(START_TIMEOUT), "-o",
             f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
             "-c max_connections=200", "start"])
        run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
             name])
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{name}"
    finally:
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "-w", "stop"], owner),
                       capture_output=True, timeout=START_TIMEOUT, check=False)
        shutil.rmtree(folder, ignore_errors=True)
