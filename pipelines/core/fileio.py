"""Atomic writes: a temporary file (or folder) beside the target, then a rename.

A reader never sees a half-written file, and a failure leaves the previous version. A
folder of outputs is built in a staging folder beside it and swapped in whole
(``atomic_folder``), so its files always belong to one run; what a killed run left
behind is removed by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: mkstemp makes 0600 files, outputs get the usual mode instead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def leftover_temporaries(target: Path | str) -> list[Path]:
    """Temporary files of ``target`` (``.<name>.<pid>.*.tmp`` beside it) whose writer is no
    longer running: what a process killed mid-write left."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    found = []
    for path in target.parent.glob(f".{target.name}.*.tmp"):
        pid = path.name[len(target.name) + 2:].split(".", 1)[0]
        if path.is_file() and not path.is_symlink() and (
                not pid.isdigit() or not _alive(int(pid))):
            found.append(path)
    return sorted(found)


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; rename it onto ``target`` on success.

    The temporary file's name carries this process's id, so that the next writer of
    ``target`` removes what a killed one left (``leftover_temporaries``)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in leftover_temporaries(target):
        leftover.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def leftover_staging(target: Path | str) -> list[Path]:
    """Staging folders of ``target`` that a killed run left (``.<name>.*`` beside it)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.glob(f".{target.name}.*") if p.is_dir())


@contextlib.contextmanager
def atomic_folder(target: Path | str) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces the folder ``target``.

    The swap is two renames (the old folder aside, the new one in place); on any error the
    staging folder goes and ``target`` stays as it was. Leftovers of a killed run go first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for folder in leftover_staging(target):
        shutil.rmtree(folder, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(staging, 0o777 & ~_UMASK)
    try:
        yield staging
        previous = target.with_name(f".{target.name}.previous")
        if target.exists():
            target.rename(previous)
        staging.rename(target)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text(target: Path | str, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: Path | str, payload: Any) -> Path:
    return write_text(target, json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


def write_metrics(target: Path | str, values: dict[str, Any]) -> Path:
    """A stage's headline numbers for ``dvc metrics``: nested keys, numbers only, rounded
    to 4 decimals so that a diff shows what moved; a missing or non-finite value is left
    out (DVC would print it as a string)."""
    def numbers(node: Any) -> Any:
        if isinstance(node, dict):
            kept = {str(k): numbers(v) for k, v in node.items()}
            return {k: v for k, v in kept.items() if v is not None and v != {}}
        if isinstance(node, bool) or not isinstance(node, int | float):
            return None
        if isinstance(node, int):
            return node
        return round(float(node), 4) if math.isfinite(node) else None

    return write_json(target, numbers(values))


def file_md5(path: Path | str) -> str:
    """MD5 of a file's bytes: the hash DVC 3 records for a single-file output."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def append_jsonl(target: Path | str, record: Any) -> Path:
    """Append one JSON line to a log (a run history): the one file that grows in place."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return target


def read_jsonl(source: Path | str) -> list[Any]:
    """The records ``append_jsonl`` wrote, oldest first; [] when there is no log yet."""
    source = Path(source)
    if not source.exists():
        return []
    return [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()
            if line.strip()]
