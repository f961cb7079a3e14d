"""Atomic writes: a temporary file (or folder) beside the target, then a rename.

A reader never sees a half-written file, and a failure leaves the previous version. A
folder of outputs is built in a staging folder beside it and swapped in whole
(``atomic_folder``), so its files always belong to one run; what a killed run left
behind is removed by the next one.

Also the two files that grow in place, the run logs (``append_jsonl``, ``read_jsonl``: a
line a killed writer cut short is skipped with a warning), and ``load_yaml``, YAML without
aliases.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pipelines.core.errors import printable

log = logging.getLogger("pipelines.fileio")
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
def atomic_folder(target: Path | str, keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces the folder ``target``.

    The swap is two renames (the old folder aside, the new one in place); on any error the
    staging folder goes and ``target`` stays as it was. Leftovers of a killed run go first.
    ``keep``: names in ``target`` that the staging folder does not write, carried over as
    they are (another call writes them: each further target's ``per_target/``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for folder in leftover_staging(target):
        shutil.rmtree(folder, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(staging, 0o777 & ~_UMASK)
    try:
        yield staging
        carried = [name for name in keep
                   if (target / name).exists() and not (staging / name).exists()]
        for name in carried:
            (target / name).rename(staging / name)
        previous = target.with_name(f".{target.name}.previous")
        try:
            if target.exists():
                target.rename(previous)
            staging.rename(target)
        except BaseException:
            if not target.exists() and previous.exists():
                previous.rename(target)
            for name in carried:
                if (staging / name).exists():
                    (staging / name).rename(target / name)
            raise
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
    """Headline numbers for ``dvc metrics``: nested keys, numbers rounded to 4 decimals so
    that a diff shows what moved, and names (a model's) as they are; a missing or
    non-finite value is left out (DVC would print NaN as a string)."""
    def numbers(node: Any) -> Any:
        if isinstance(node, dict):
            kept = {str(k): numbers(v) for k, v in node.items()}
            return {k: v for k, v in kept.items() if v is not None and v != {}}
        if isinstance(node, str):
            return node or None
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
    """Append one JSON line to a log (a run history): the one file that grows in place. A
    last line that a killed writer left unfinished is ended first, so that this record
    starts a line of its own (``read_jsonl`` skips the unfinished one)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a+b") as handle:
        handle.seek(0, os.SEEK_END)
        unfinished = False
        if handle.tell():
            handle.seek(-1, os.SEEK_END)
            unfinished = handle.read(1) != b"\n"
        handle.write(("\n" if unfinished else "").encode() +
                     (json.dumps(record) + "\n").encode("utf-8"))
    return target


def read_jsonl(source: Path | str) -> list[dict[str, Any]]:
    """The records ``append_jsonl`` wrote, oldest first; [] when there is no log yet. A
    line that is not a JSON object (a run killed while appending it, an edit) is skipped,
    with one warning naming the file and the lines."""
    source = Path(source)
    if not source.exists():
        return []
    records, damaged = [], []
    text = source.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            damaged.append(number)
    if damaged:
        shown = ", ".join(map(str, damaged[:5])) + (" ..." if len(damaged) > 5 else "")
        what = (f"line {shown}: not a JSON record" if len(damaged) == 1 else
                f"lines {shown}: not JSON records")
        log.warning("warning: %s: %s (a run stopped while appending, or an edit); skipped",
                    printable(source), what)
    return records


class AliasRefused(yaml.MarkedYAMLError):
    """A YAML alias (``*name``) where ``load_yaml`` reads."""


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses aliases: ``*name`` repeats a node, and nested
    repeats (a "billion laughs" of 1 KB) expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise AliasRefused(None, None, f"an alias (*{event.anchor}) is not allowed "
                               "(aliases can expand to gigabytes); write the value out",
                               event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """YAML ``text`` as plain values (``yaml.safe_load``), aliases refused with a
    ``yaml.YAMLError``: none of the project's YAML files needs them, and they are how a
    small file takes the machine's memory."""
    return yaml.load(text, Loader=_NoAliasLoader)
