"""The command line: help texts, one-line errors, exit codes, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tsepipe.cli import app

COMMANDS = ["sample-data", "fetch", "ingest", "validate", "merge", "evaluate", "train",
            "accuracy", "predict", "drift", "report", "sweep", "run", "remote", "notify", "history",
            "checkout", "doctor"]


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

    tsepipe = Path(sys.executable).parent / "tsepipe"
    done = subprocess.run([str(tsepipe), "run"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 3
    assert "error: " in done.stderr and "not a tsepipe project" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_ingest_of_a_missing_folder_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(
        (Path(__file__).parents[2] / "params.yaml").read_text(encoding="utf-8"))
    result = CliRunner().invoke(app, ["ingest", "--raw-dir", "nowhere"])
    assert result.exit_code == 3
    assert "error: nowhere: the raw folder does not exist" in result.output


def test_params_are_checked_once_with_one_line_per_wrong_key(tmp_path):
    import yaml

    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    params["validate"]["max_bad_row_share"] = 2.0  # a share above 1
    params["merge"]["max_fill_days"] = "five"  # not a number
    params["merge"]["max_fill_dayz"] = 5  # a typo
    params["train"]["models"]["lstm"]["cell"] = "transformer"
    params["feeds"] = {}  # an unknown section
    del params["drift"]["threshold"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")

    result = CliRunner().invoke(app, ["merge", "--params", str(path)])

    assert result.exit_code == 3
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"error: {path}: validate.max_bad_row_share: Input should be less than or equal to 1 "
        "(got 2.0)",
        f"error: {path}: merge.max_fill_days: Input should be a valid integer (got 'five')",
        f"error: {path}: merge.max_fill_dayz: unknown key",
        f"error: {path}: train.models.lstm: cell: expected one of lstm, gru, simple_rnn, got "
        "'transformer'",
        f"error: {path}: feeds: unknown section",
    ]


def test_a_key_left_out_takes_the_schema_default(tmp_path):
    import yaml

    from pipelines.core.params.drift import DriftSection
    from pipelines.core.params.load import load_params

    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    del params["drift"]["threshold"]
    del params["sample"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    loaded = load_params(path)
    assert loaded.drift.threshold == DriftSection.model_fields["threshold"].default == 0.5
    assert loaded.sample.days == 1200


def test_params_lists_each_setting_with_its_default_and_help(tmp_path):
    import yaml

    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    params["evaluate"]["gap"] = 2
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    result = CliRunner().invoke(app, ["params", "evaluate", "--params", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(line.startswith("evaluate.") and "  # " in line for line in lines)
    gap = next(line for line in lines if line.startswith("evaluate.gap:"))
    assert gap.startswith("evaluate.gap: 2  (default 1)  # labelled days left out")
    refit = next(line for line in lines if line.startswith("evaluate.refit_every:"))
    assert "(default" not in refit  # as the schema has it
    every = CliRunner().invoke(app, ["params", "--params", str(path)]).stdout.splitlines()
    assert {line.split(".")[0] for line in every} >= {"paths", "validate", "train", "sweep"}


def test_a_yaml_syntax_error_is_one_line_with_its_place(tmp_path):
    text = (Path(__file__).parents[2] / "params.yaml").read_text(encoding="utf-8")
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("  min_rows: 100", "  min_rows: 100: 5", 1), encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "min_rows" in row)
    result = CliRunner().invoke(app, ["validate", "--params", str(path)])
    assert result.exit_code == 3
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {path}: line ")
    assert errors[0] == (f"error: {path}: line {line}, column 16: not valid YAML: mapping "
                         "values are not allowed here")


def test_a_split_that_leaves_no_training_days_is_refused_by_the_schema(tmp_path):
    import yaml

    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    params["split"]["test_fraction"] = 0.99
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", "--params", str(path)])
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"error: {path}: split.test_fraction: with validation_fraction 0.3 it leaves -29% "
        "of the labelled days for training; the two together may take at most 90%"]


@pytest.mark.parametrize("dataset", ["/tmp/elsewhere.parquet", "../merged.parquet",
                                     "data/../../merged.parquet"])
def test_a_path_outside_the_project_is_refused_by_the_schema(tmp_path, dataset):
    import yaml

    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    params["paths"]["dataset"] = dataset
    path = tmp_path / "project" / "params.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    result = CliRunner().invoke(app, ["merge", "--params", str(path)])
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"error: {path}: paths.dataset: is outside the project: give a path relative to the "
        f"project root, without climbing out of it with .. (got {dataset!r})"]
    assert not (tmp_path / "merged.parquet").exists()
    # an absolute path inside the project's folder is the same place, and accepted
    from pipelines.core.params.load import load_params
    params["paths"]["dataset"] = str(path.parent / "data" / "merged.parquet")
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    assert load_params(path).paths.dataset == path.parent / "data" / "merged.parquet"


def test_run_outside_a_git_work_tree_is_one_line_with_the_way_out(tmp_path):
    """A project copied without its .git (a downloaded archive): DVC and the versions need
    git, so the run says so before anything runs."""
    import shutil
    import subprocess

    from tests.conftest import BIN, ROOT, tracked_files

    project = tmp_path / "copy"
    for name in tracked_files():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, project / name)
    done = subprocess.run([str(BIN / "tsepipe"), "run", "--no-push"], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"error: {project}: not in a git work tree: DVC and the versions need one (git init "
        "&& git add -A && git commit -m start, or run tsepipe from the project's checkout)"]
    assert not (project / "data" / "interim").exists()


def test_version_names_the_package():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith(f"tsepipe {version('tsepipe')}")


@pytest.mark.parametrize("stage, first", [
    ("validate", "no ingest report; run tsepipe ingest first"),
    ("merge", "no validation summary; run tsepipe validate first"),
    ("evaluate", "no merged dataset; run tsepipe merge first"),
    ("select", "missing; run tsepipe evaluate first"),
    ("accuracy", "missing; run tsepipe select first"),
    ("predict", "no merged dataset; run tsepipe merge first"),
])
def test_a_stage_run_before_its_inputs_exist_is_one_line(tmp_path, monkeypatch, stage, first):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(
        (Path(__file__).parents[2] / "params.yaml").read_text(encoding="utf-8"))
    result = CliRunner().invoke(app, [stage])
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert errors and first in errors[0], result.output


def test_run_with_a_wrong_params_file_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    original = (Path(__file__).parents[2] / "params.yaml").read_text(encoding="utf-8")
    Path("params.yaml").write_text(original)
    Path("other.yaml").write_text(original.replace("test_fraction: 0.3", "test_fraction: 2"))
    result = CliRunner().invoke(app, ["run", "--params", "other.yaml"])
    assert result.exit_code == 3, result.output
    assert "other.yaml: split.test_fraction" in result.output
    assert Path("params.yaml").read_text() == original
