"""DVC commands for the flows, run as subprocesses of this Python's own DVC."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines.errors import DATA_ERROR_EXIT


@dataclass
class CommandResult:
    args: list[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def data_error(self) -> bool:
        """The stage's own command reported bad input (retrying will not help)."""
        return f"exited with {DATA_ERROR_EXIT}" in self.output

    def error_lines(self) -> list[str]:
        """The ``error: ...`` lines that ``tsepipe`` printed, without the prefix."""
        return [line.removeprefix("error: ") for line in self.output.splitlines()
                if line.startswith("error: ")]


def dvc(project: Path, *args: str) -> CommandResult:
    """Run ``dvc ARGS`` in ``project`` with this environment's ``tsepipe`` on the PATH."""
    bin_dir = str(Path(sys.executable).parent)
    env = os.environ | {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    command = [sys.executable, "-m", "dvc", *args]
    done = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, check=False
    )
    return CommandResult(command, done.returncode, done.stdout + done.stderr)


def locked_hash(project: Path, stage: str, path: Path | str) -> str | None:
    """The MD5 that ``dvc.lock`` records for ``stage``'s dependency or output ``path``."""
    lock_file = project / "dvc.lock"
    if not lock_file.exists():
        return None
    lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    entry = lock.get("stages", {}).get(stage, {})
    for item in entry.get("deps", []) + entry.get("outs", []):
        if Path(item["path"]) == Path(path):
            return item.get("md5")
    return None
