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
from flows.dvc_commands import CommandResult, default_remote, dvc, remove_dvc_leftovers
from flows.runs import WRITE_FAILED, failed, is_told, passed_on, stage_failed
from pipelines.core.errors import printable
from pipelines.core.params.load import load_params
from pipelines.ops.versions import VersionError, move_aside, record_version
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
def repro_stage(project: str, stage: str) -> CommandResult | State:
    """``dvc repro`` one stage: its result. A failure the stage told (bad input, a full
    disk, a signal; ``CommandResult.told``) is the task's Failed state, named by its kind
    (``stage_failed``: no retry, no traceback); a crash of the stage's command raises
    ``StageCrashed`` (no retry); DVC's own failures are retried."""
    logger = get_run_logger()
    result = dvc(Path(project), "repro", "--single-item", stage,
                 on_line=lambda line: logger.info("%s | %s", stage, line))
    if not result.ok:
        remove_dvc_leftovers(Path(project))
    if not result.ok and not result.told:
        error = StageCrashed if result.stage_exit is not None else TransientStageError
        raise error(f"dvc repro {stage} failed:\n{result.output}")
    return result if result.ok else stage_failed(result)


@task(retries=3, retry_delay_seconds=5, task_run_name="dvc push")
def push(project: str) -> str | None:
    """Send the new data version (raw, tables, dataset) to the default DVC remote.

    None when it went; the line that says why not when the remote cannot be written (no
    permission, read-only, full: a retry would fail the same way); other failures (a lost
    connection) are retried.
    """
    result = dvc(Path(project), "push")
    if result.ok:
        return None
    if result.write_error is None:
        raise TransientStageError(f"dvc push failed:\n{result.output}")
    why, folder = result.write_error
    name, url = default_remote(Path(project)) or ("(default)", folder)
    where = "" if folder.startswith(url) else f" ({folder})"
    return (f"the DVC remote {name} ({url}) cannot be written: {why}{where}; the data and "
            "the version stay here; dvc push once the remote can be written")


@task(retries=1, retry_delay_seconds=5, task_run_name="git commit")
def commit_version(project: str, flow_name: str, push_git: bool) -> dict[str, Any] | None:
    """Commit the version (``dvc.lock``, ``data/raw.dvc``, ``params.yaml``, ``dvc.yaml``,
    the metrics) if this run changed it; register new models (a GTO tag); push to git.

    A commit git refuses (a hook, a stale ``.git/index.lock``) is ``{"uncommitted":
    lines}``, each line saying why (no retry, no traceback: it would be refused again).
    """
    try:
        version = record_version(Path(project), flow_name, push=push_git)
    except VersionError as exc:
        return {"uncommitted": exc.lines}
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
    data and models stay, published; the result then has ``"uncommitted": lines``. A DVC
    remote that cannot be written is committed all the same (nothing is lost) and the
    result has ``"push_refused": line``: the flow ends ``WriteFailed`` with it
    (``push_refused``).
    """
    refused = push(project) if push_remote else None
    published: dict[str, Any] = {"push_refused": refused} if refused else {}
    if not commit:
        return published or None
    version = commit_version(project, flow_name, push_git and push_remote and not refused)
    for line in (version or {}).get("uncommitted", []):
        get_run_logger().warning("warning: the version is not committed to git: %s; the "
                                 "data and models stay (commit dvc.lock and the raw "
                                 "folder's .dvc file yourself once git accepts them)", line)
    return (version or {}) | published or None


def push_refused(published: dict[str, Any] | None) -> State | None:
    """The ``WriteFailed`` state of a run whose DVC remote refused the data
    (``publish_version``), or None."""
    line = (published or {}).get("push_refused")
    return failed(WRITE_FAILED, line) if line else None


# DVC's refusal to overwrite what it does not know in an output, then one path a line
UNSAVED = "Can't remove the following unsaved files"


def restore_models(project: Path) -> list[str]:
    """The models folder as ``dvc.lock`` records train's output: before the stages that
    read the models without training them (the daily path), a file put into it since
    (a temporary file, a model copied in by hand) or changed in it is moved aside into
    ``ASIDE_DIR/<time>/`` and the folder checked out as trained, so that the forecast is
    made by, and versioned with, the models that were scored. The warnings (empty when
    the folder was as trained). A folder DVC cannot check out (never trained, its cache
    gone) is left as it is: predict says what is missing.
    """
    models = load_params(project / "params.yaml").paths.models_dir
    first = dvc(project, "checkout", str(models))
    lines = first.output.splitlines()
    if first.ok or not any(UNSAVED in line for line in lines):
        return []
    start = next(i for i, line in enumerate(lines) if UNSAVED in line) + 1
    strays = [Path(line.strip()).resolve().relative_to(project.resolve()).as_posix()
              for line in lines[start:] if line.strip().startswith("/")]
    aside = move_aside(project, strays)
    moved = [printable(path) for path in strays]
    again = dvc(project, "checkout", str(models))
    state = ("checked out as train wrote it" if again.ok
             else "could not be checked out again (dvc checkout models)")
    return [f"{models}/ held {len(moved)} file(s) train did not write or that changed since "
            f"({', '.join(moved[:4])}{' and more' if len(moved) > 4 else ''}): moved aside to "
            f"{aside.as_posix()}/; the folder {state}"]


@task(task_run_name="models as trained")
def models_as_trained(project: str) -> None:
    """``restore_models``, its warnings in the run's log."""
    for line in restore_models(Path(project)):
        get_run_logger().warning("warning: %s", line)


def run_stages(project: str, stages: Iterable[str],
               after: Callable[[str], None] | None = None) -> State | None:
    """Run ``stages`` in order (``after(stage)`` once each has run); the Failed state of
    the first that failed in a way it told (bad input data, a full disk, a signal), or
    None when all succeeded. A crash raises."""
    for stage in stages:
        state = repro_stage(project, stage, return_state=True)
        if after:
            after(stage)
        if is_told(state):
            return passed_on(state)
        state.result()  # a crash: raised here, as the task raised it
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
    stopped = run_stages(str(project), stages)
    if stopped:
        return stopped
    forecast = json.loads((project / where.forecast).read_text(encoding="utf-8"))
    forecast["commit"] = publish_version(str(project), flow_name, push_remote, commit,
                                         push_git)
    refused = push_refused(forecast["commit"])
    if refused:
        return refused
    publish_all(str(project))
    return Completed(message=headline(forecast, reason=True), data=forecast)
