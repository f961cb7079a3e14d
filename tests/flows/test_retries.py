"""Retries are for what may pass: a stage whose own command crashes runs once.

Real Prefect (ephemeral) and real DVC, on a DVC project of one stage in a temporary git
repository: each run of the stage's command appends a line to a file, so the file counts
the attempts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prefect import flow

from flows.stages import StageCrashed, TransientStageError, repro_stage
from tests.conftest import run


@pytest.fixture
def one_stage(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    run(["git", "init", "-q"], project)
    run([sys.executable, "-m", "dvc", "init", "-q"], project)
    (project / "dvc.yaml").write_text(
        "stages:\n"
        "  crashes:\n"  # a bug in the stage: exit 1 (a traceback, in tsepipe)
        "    cmd: sh -c 'echo run >> attempts.txt; exit 1'\n"
        "  dvc_fails:\n"  # DVC fails before it runs anything: a missing dependency
        "    cmd: sh -c 'echo run >> attempts.txt'\n"
        "    deps: [missing.txt]\n")
    return project


def attempts(project: str, stage: str) -> BaseException:
    @flow
    def one(project: str, stage: str) -> BaseException:
        state = repro_stage.with_options(retry_delay_seconds=0)(project, stage,
                                                                return_state=True)
        return state.result(raise_on_failure=False)

    return one(project, stage)


def test_a_stage_that_crashes_is_not_retried(one_stage):
    error = attempts(str(one_stage), "crashes")
    assert isinstance(error, StageCrashed), error
    assert (one_stage / "attempts.txt").read_text().splitlines() == ["run"]


def test_a_failure_of_dvc_itself_is_retried(one_stage):
    error = attempts(str(one_stage), "dvc_fails")
    assert isinstance(error, TransientStageError), error
    assert not (one_stage / "attempts.txt").exists()  # the command never ran
