"""Where a result came from: the code's git commit, the stack's versions, the raw data's hash.

The model cards and the front page print these so that a reader can tell which code,
which packages and which raw exports made what they see.
"""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

# The packages the front page lists, those installed (tensorflow-cpu or tensorflow).
STACK_PACKAGES = ("tsepipe", "prefect", "dvc", "tensorflow-cpu", "tensorflow", "keras",
                  "great-expectations", "evidently", "pandas", "pyarrow")


def git_commit(project: Path | str = ".") -> str | None:
    """The full hash of ``project``'s checked-out commit; None outside a git checkout."""
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def package_versions(packages: tuple[str, ...] = STACK_PACKAGES) -> dict[str, str]:
    """Package name -> installed version, for those of ``packages`` that are installed."""
    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def snapshot_md5(dvc_file: Path | str) -> str | None:
    """The MD5 that a ``.dvc`` file (``dvc add``'s record, e.g. ``data/raw.dvc``) holds.

    For a folder DVC records the hash of its listing, ending ``.dir``. None when the
    file does not exist or records no output.
    """
    path = Path(dvc_file)
    if not path.exists():
        return None
    return recorded_md5(yaml.safe_load(path.read_text(encoding="utf-8")))


def recorded_md5(record: Any) -> str | None:
    """The MD5 of the first output of a ``.dvc`` file's parsed YAML (None if it has none)."""
    outs = (record or {}).get("outs") if isinstance(record, dict) else None
    return outs[0].get("md5") if outs and isinstance(outs[0], dict) else None
