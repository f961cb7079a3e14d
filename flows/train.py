"""The training flow: walk-forward evaluation, final models, forecast, drift and reports.

Runs ``dvc repro`` for evaluate -> train -> accuracy -> predict -> drift -> report (so
``dvc.lock`` stays true), then publishes the artifacts (forecast, leaderboard, drift, report link)
and pushes to the DVC remote. In ``prefect.yaml`` it is its own deployment on the
``gpu`` work pool; the code finds a GPU by itself and falls back to the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow
from prefect.states import Completed, State

from flows.artifacts import publish_all
from flows.runs import exclusive, stage_failed
from flows.stages import publish_version, run_stages
from pipelines.config import load_params, paths

MODEL_STAGES = ("evaluate", "train", "accuracy", "predict", "drift", "report")


@flow(name="tsepipe-train",
      description="Walk-forward evaluation, final models, forecast, drift and reports.")
@exclusive
def training_flow(project_dir: str = ".", push_remote: bool = True,
                  lock_wait_seconds: float = 0, commit: bool = True,
                  push_git: bool = False) -> State:
    """Run evaluate -> train -> accuracy -> predict -> drift -> report through DVC; push;
    commit.

    The new models and ``dvc.lock`` go to the DVC remote, then the version is committed
    (and pushed to git with ``push_git``), so the next report on any worker pulls them.
    """
    project = Path(project_dir).resolve()
    where = paths(load_params(project / "params.yaml"))
    failed = run_stages(str(project), MODEL_STAGES)
    if failed:
        return stage_failed(failed)
    forecast = json.loads((project / where.forecast).read_text(
        encoding="utf-8"))
    forecast["commit"] = publish_version(str(project), "tsepipe-train", push_remote, commit,
                                         push_git)
    publish_all(str(project))
    return Completed(message=json.dumps(forecast), data=forecast)
