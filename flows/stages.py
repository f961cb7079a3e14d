"""The tasks every flow runs: one DVC stage, a list of them, dvc push, the version commit.

Each stage is ``dvc repro --single-item STAGE`` (so ``dvc.lock`` always describes what was
published), a task run named after the stage in the Prefect UI. After the stages a flow
publishes its version: the data to the DVC remote first, then ``dvc.lock`` and
``data/raw.dvc`` committed to git (``pipelines.ops.versions``) and pushed when asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.states import Completed, State

from flows.artifacts import publish_all
from flows.dvc_commands import CommandResult, dvc
from flows.runs import stage_failed
from pipelines.core.params.load import load_params
from pipelines.ops.versions import VersionError, record_version
from pipelines.reporting.call_text import headline


class TransientStageError(RuntimeError):
    """DVC failed around a stage (a busy lock, a lost connection): worth a retry."""


class StageCrashed(RuntimeError):
    """A stage's own command failed on something other than its input data (a bug, a full
    disk): a retry would fail the same way, so there is none."""


def only_transient(task: Any, task_run: Any, state: State) -> bool:
    """Prefect's retry condition: retry a ``TransientStageError``, nothing else."""
    return isinstance(getattr(state, "data", None), TransientStageError)


@task(retries=2, retry_delay_seconds=3, retry_condition_fn=only_transient,
      task_run_name="{stage}")
def repro_stage(project: str, stage: str) -> CommandResult:
    """``dvc repro`` one stage. Bad input is returned (no retry); a crash of the stage's
    command raises ``StageCrashed`` (no retry); DVC's own failures are retried."""
    logger = get_run_logger()
    result = dvc(Path(project), "repro", "--single-item", stage,
                 on_line=lambda line: logger.info("%s | %s", stage, line))
    if not result.ok and not result.data_error:
        error = StageCrashed if result.stage_exit is not None else TransientStageError
        raise error(f"dvc repro {stage} failed:\n{result.output}")
    return result


@task(retries=3, retry_delay_seconds=5, task_run_name="dvc push")
def push(project: str) -> str:
    """Send the new data version (raw, tables, dataset) to the default DVC remote."""
    result = dvc(Path(project), "push")
    if not result.ok:
        raise TransientStageError(f"dvc push failed:\n{result.output}")
    return result.output.strip().splitlines()[-1] if result.output.strip() else "pushed"


@task(retries=1, retry_delay_seconds=5, task_run_name="git commit")
def commit_version(project: str, flow_name: str, push_git: bool) -> dict[str, Any] | None:
    """Commit the version (``dvc.lock``, ``data/raw.dvc``, ``params.yaml``, ``dvc.yaml``,
    the metrics) if this run changed it; register new models (a GTO tag); push to git."""
    version = record_version(Path(project), flow_name, push=push_git)
    if version is None:
        get_run_logger().info("version: dvc.lock and the raw data unchanged, nothing to commit")
        return None
    get_run_logger().info("version: committed %s (%s)%s%s", version.commit[:10],
                          version.subject, "; pushed" if version.pushed else "",
                          f"; models registered as {version.model_version}"
                          if version.model_version else "")
    return version.as_dict()


def publish_version(project: str, flow_name: str, push_remote: bool, commit: bool,
                    push_git: bool) -> dict[str, Any] | None:
    """Data first (``dvc push``), then the version's git commit and its push.

    A commit git refuses (a hook, a broken repository) is a warning, not a failed run: the
    data and models stay, published; the result is then ``{"uncommitted": lines}``.
    """
    if push_remote:
        push(project)
    if not commit:
        return None
    try:
        return commit_version(project, flow_name, push_git and push_remote)
    except VersionError as exc:
        for line in exc.lines:
            get_run_logger().warning("warning: the version is not committed to git: %s; the "
                                     "data and models stay (commit dvc.lock and the raw "
                                     "folder's .dvc file yourself once git accepts them)",
                                     line)
        return {"uncommitted": exc.lines}


def run_stages(project: str, stages: Iterable[str],
               after: Callable[[str], None] | None = None) -> CommandResult | None:
    """Run ``stages`` in order (``after(stage)`` once each has run); the first failure's
    result (bad input data), or None when all succeeded."""
    for stage in stages:
        result = repro_stage(project, stage)
        if after:
            after(stage)
        if not result.ok:
            return result
    return None


def stages_to_forecast(project_dir: str, stages: Iterable[str], flow_name: str,
                       push_remote: bool, commit: bool, push_git: bool) -> State:
    """The body of the flows that end with a forecast (report, training): ``stages``
    through DVC, then the version (``publish_version``) and the artifacts.

    Returns a Completed state carrying the forecast (``forecasts/latest.json``) with the
    version's commit, or a Failed one whose message lists the failed stage's problems.
    """
    project = Path(project_dir).resolve()
    where = load_params(project / "params.yaml").paths
    failed = run_stages(str(project), stages)
    if failed:
        return stage_failed(failed)
    forecast = json.loads((project / where.forecast).read_text(encoding="utf-8"))
    forecast["commit"] = publish_version(str(project), flow_name, push_remote, commit,
                                         push_git)
    publish_all(str(project))
    return Completed(message=headline(forecast, reason=True), data=forecast)
