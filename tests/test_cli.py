"""The command line: help texts, one-line errors, exit codes, no tracebacks."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

COMMANDS = ["sample-data", "ingest", "validate", "merge", "evaluate", "train", "predict",
            "sweep", "run"]


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output and "--help" in result.output


@pytest.mark.parametrize("command", ["ingest", "validate", "merge"])
def test_missing_params_file_is_one_clear_line(tmp_path, command):
    result = CliRunner().invoke(app, [command, "--params", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 3
    assert "error: " in result.output and "nope.yaml: parameters file not found" in result.output
    assert "Traceback" not in result.output


def test_run_outside_a_project_is_one_clear_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    tsepipe = Path(sys.executable).parent / "tsepipe"
    done = subprocess.run([str(tsepipe), "run"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 3
    assert "error: " in done.stderr and "not a tsepipe project" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_ingest_of_a_missing_folder_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from pathlib import Path

    Path("params.yaml").write_text(
        (Path(__file__).parents[1] / "params.yaml").read_text(encoding="utf-8"))
    result = CliRunner().invoke(app, ["ingest", "--raw-dir", "nowhere"])
    assert result.exit_code == 3
    assert "error: nowhere: the raw folder does not exist" in result.output
