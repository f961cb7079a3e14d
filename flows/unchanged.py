"""``tsepipe run`` with nothing to do: answered without starting Prefect.

When the raw folder is the one ``data/raw.dvc`` snapshots and ``dvc status`` finds every
stage up to date, a run would only start a temporary Prefect server to find that out
(13 s on 2 cores). ``unchanged_run`` answers in about a second instead: the same summary
lines as a run, from the files the last run wrote, after a ``dvc push`` (a no-op when the
last run pushed) so that ``--no-push`` followed by a plain run still publishes, and a
commit of the version files when they differ from git's (the outputs of ``dvc exp run``
then ``dvc exp apply``, say, or of a run made with ``--no-commit``). Imports nothing
heavy (no Prefect, no TensorFlow).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flows.dvc_commands import LOCK_FILE, dvc
from pipelines.core.errors import printable
from pipelines.core.fileio import read_jsonl
from pipelines.core.params.load import DEFAULT_PARAMS, load_params
from pipelines.core.params.paths import Paths
from pipelines.core.provenance import snapshot_md5
from pipelines.ops.versions import VersionError, record_version
from pipelines.reporting.call_text import staleness_today, summary_lines

log = logging.getLogger("pipelines.run")


def nothing_to_do(project: Path, where: Paths) -> bool:
    """The last run's outputs exist and ``dvc status`` says every stage is up to date."""
    raw_dvc = project / f"{where.raw_dir}.dvc"
    needed = [project / "dvc.lock", raw_dvc, project / where.merge_summary,
              project / where.forecast]
    if not all(path.exists() for path in needed):
        return False
    runs = read_jsonl(project / where.run_log)
    if runs and runs[-1].get("failed"):  # its page says so until a run goes through
        return False
    status = dvc(project, "status", "--json")
    if not status.ok:
        return False
    try:
        return json.loads(status.output.strip().splitlines()[-1] or "{}") == {}
    except (ValueError, IndexError):
        return False


@contextlib.contextmanager
def _free_lock(project: Path) -> Iterator[bool]:
    """Hold the project's run lock if no run holds it (True), else yield False at once."""
    lock_file = project / LOCK_FILE
    if not lock_file.parent.is_dir():
        yield True
        return
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False  # a run is going: the flow path says so (exit 4)
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def unchanged_run(project: Path, where: Paths, push: bool, train: bool,
                  commit: bool = True) -> str | None:
    """The run's summary when there is nothing to do (after ``dvc push`` and the version's
    commit when the version files are not committed yet), else None."""
    with _free_lock(project) as free:
        if not free or not nothing_to_do(project, where):
            return None
        if push and not dvc(project, "push", "--quiet").ok:
            return None  # let the flow push, retry and report it
        committed = _commit(project) if commit else None
    summary: dict[str, Any] = json.loads((project / where.merge_summary).read_text(
        encoding="utf-8"))
    raw_md5 = snapshot_md5(project / f"{where.raw_dir}.dvc")
    lines = [f"nothing changed since the last run (dvc status: up to date); "
             f"{'pushed; ' if push else ''}no flow started"]
    if committed:
        lines.append(committed)
    for warning in summary.get("warnings", []):
        log.warning("warning: %s", printable(warning))
    lines.append(f"dataset {summary['dataset']} ({summary['rows']} trading days x "
                 f"{summary['columns']} columns, {summary['first_date']} .. "
                 f"{summary['last_date']}) DVC md5 {summary['md5']}; raw md5 {raw_md5}")
    if train:
        forecast = json.loads((project / where.forecast).read_text(encoding="utf-8"))
        lines += summary_lines(forecast)
        calendar = load_params(project / DEFAULT_PARAMS).calendar
        stale = staleness_today(forecast, calendar.closures, calendar.public_holidays)
        if stale:
            log.warning("warning: %s", stale)
        lines.append(f"reports: {where.front_page} (open it in a browser)")
    return "\n".join(lines)


def _commit(project: Path) -> str | None:
    """Commit the version files if they differ from git's: the line saying so, or None."""
    try:
        version = record_version(project, "tsepipe run", push=False)
    except VersionError as exc:
        for line in exc.lines:
            log.warning("warning: the version is not committed to git: %s", line)
        return None
    return f"version: committed {version.commit[:10]} ({version.subject})" if version else None
