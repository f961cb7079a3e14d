"""The training flow: walk-forward evaluation, final models, forecast, drift and reports.

Runs ``dvc repro`` for evaluate -> select -> train -> accuracy -> predict -> drift -> report
(so ``dvc.lock`` stays true), then publishes the artifacts (forecast, leaderboard, drift,
report link) and pushes to the DVC remote. In ``prefect.yaml`` it is its own deployment on the
``gpu`` work pool; the code finds a GPU by itself and falls back to the CPU.
"""

from __future__ import annotations

from prefect import flow
from prefect.states import State

from flows.artifacts import run_name
from flows.runs import exclusive
from flows.stages import stages_to_forecast

MODEL_STAGES = ("evaluate", "select", "train", "accuracy", "predict", "drift", "report")


@flow(name="tsepipe-train", flow_run_name=run_name,
      description="Walk-forward evaluation, final models, forecast, drift and reports.")
@exclusive
def training_flow(project_dir: str = ".", push_remote: bool = True,
                  lock_wait_seconds: float = 0, commit: bool = True,
                  push_git: bool = False) -> State:
    """Run evaluate -> select -> train -> accuracy -> predict -> drift -> report through DVC; push;
    commit.

    The new models and ``dvc.lock`` go to the DVC remote, then the version is committed
    (and pushed to git with ``push_git``), so the next report on any worker pulls them.

    Args:
        project_dir: the project's folder (its params.yaml, dvc.yaml and git checkout); the
            worker's working directory by default.
        push_remote: push the new data and models to the DVC remote (dvc push) before the
            version is committed.
        lock_wait_seconds: how long to wait for another run in this project to finish before
            ending as Busy (0: do not wait).
        commit: commit the version to git when dvc.lock or data/raw.dvc changed (with
            params.yaml, dvc.yaml and metrics/).
        push_git: also push the version's commit (and a new models tag) to the git remote.
    """
    return stages_to_forecast(project_dir, MODEL_STAGES, "tsepipe-train", push_remote, commit,
                              push_git)
