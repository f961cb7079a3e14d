"""The whole pipeline as one flow (``tsepipe run``): the data flow, then training.

``run_pipeline`` is what the CLI calls: it checks the project, takes the project's run
lock before Prefect starts, runs ``pipeline_flow`` (or, with ``retrain=False``, the daily
path ``flows.daily.daily_flow``: the data flow, then the forecast, drift and reports with
the current models) and turns its final state into the summary lines (or the
``PipelineError`` that says why it failed).
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import flow
from prefect.states import Completed, State

from flows.artifacts import run_name
from flows.daily import daily_flow
from flows.data import data_flow
from flows.dvc_commands import damaged_dvc_files
from flows.runs import (
    ending_with_the_server,
    exclusive,
    passed_on,
    project_lock,
    raise_for_state,
)
from flows.train import training_flow
from pipelines.core.errors import DataError, printable
from pipelines.core.params.load import load_params
from pipelines.data.ingest import export_files
from pipelines.ops.versions import require_repo
from pipelines.reporting.call_text import summary_lines

log = logging.getLogger("pipelines.run")


@flow(name="tsepipe", flow_run_name=run_name,
      description="The whole pipeline: the data flow, then training.")
@exclusive
def pipeline_flow(raw_dir: str | None = None, project_dir: str = ".",
                  push_remote: bool = True, train: bool = True, fetch: bool | None = None,
                  lock_wait_seconds: float = 0, commit: bool = True) -> State:
    """Data flow then (unless ``train`` is false) the training flow, as subflows."""
    data = data_flow(raw_dir=raw_dir, project_dir=project_dir, push_remote=push_remote,
                     fetch=fetch, commit=commit, return_state=True,
                     publish_standing=not train)  # training publishes them, draws the page
    if not data.is_completed():
        return passed_on(data)
    if not train:  # a State of its own: the subflow's would come back from .result()
        return Completed(message=data.message, data=data.result())
    trained = training_flow(project_dir=project_dir, push_remote=push_remote, commit=commit,
                            return_state=True)
    if not trained.is_completed():
        return passed_on(trained)
    return Completed(message=trained.message,
                     data={"data": data.result(), "forecast": trained.result()})


def run_pipeline(raw_dir: Path | None = None, push: bool = True, train: bool = True,
                 fetch: bool | None = None, wait_seconds: float = 0, commit: bool = True,
                 retrain: bool = True) -> str:
    """Run the pipeline from the CLI; raise the ``PipelineError`` that says why it failed.

    ``train``: after the data, forecast and report (False: the data only); ``retrain``:
    evaluate and train again first (False: the daily path, with the current models).
    """
    project = Path.cwd()
    if not (project / "dvc.yaml").exists() or not (project / ".dvc").is_dir():
        raise DataError(f"{project}: not a tsepipe project (no dvc.yaml or .dvc/); "
                        "run tsepipe from the project root")
    require_repo(project)
    params = load_params(project / "params.yaml")
    fetching = fetch if fetch is not None else params.fetch.enabled
    if not fetching:
        export_files(raw_dir or params.paths.raw_dir, params.ingest.file_patterns)
    # busy: before Prefect starts; Ctrl-C: exit at once, not after minutes of retries
    with project_lock(project, "tsepipe run", wait_seconds), ending_with_the_server():
        damaged = damaged_dvc_files(project)  # under the lock: no run of ours writes them
        if damaged:
            raise DataError(damaged)
        if train and not retrain:
            state = daily_flow(raw_dir=str(raw_dir) if raw_dir else None, push_remote=push,
                               fetch=fetch, commit=commit, return_state=True)
        else:
            state = pipeline_flow(raw_dir=str(raw_dir) if raw_dir else None,
                                  push_remote=push, train=train, fetch=fetch, commit=commit,
                                  return_state=True)
    raise_for_state(state)
    result = state.result()
    version = result["data"] if train else result
    _warn_about_the_data(version, params.paths.validation_page)
    lines = [f"dataset {version['dataset']} ({version['rows']} trading days x "
             f"{version['columns']} columns, {version['first_date']} .. "
             f"{version['last_date']}) DVC md5 {version['dataset_md5']}; raw md5 "
             f"{version['raw_md5']}"]
    if train:
        forecast = result["forecast"]
        lines += summary_lines(forecast)
        if forecast["staleness"]["stale"]:
            log.warning("warning: %s", forecast["staleness"]["message"])
        lines.append(f"reports: {params.paths.front_page} (open it in a browser)")
    commits = [c for c in (version.get("commit"), train and result["forecast"].get("commit"))
               if c and "commit" in c]
    for refused in (c for c in (version.get("commit"), train and result["forecast"].get("commit"))
                    if c and "uncommitted" in c):
        for line in refused["uncommitted"]:
            log.warning("warning: the version is not committed to git: %s", printable(line))
    if commits:
        lines.append(f"version committed to git: {commits[-1]['commit'][:10]} (tsepipe history)")
    for tag in (c["model_version"] for c in commits if c.get("model_version")):
        name = tag.split("@")[0]
        lines.append(f"models registered as {tag} (dvc artifacts get . {name})")
    return "\n".join(lines)


def _warn_about_the_data(version: dict, validation_page: Path) -> None:
    """The data version's warnings, a line each: files left out, rows dropped, the merge's."""
    if version["files_left_out"]:
        log.warning("warning: %d export file(s) left out by validation; see %s",
                    version["files_left_out"], validation_page)
        for problem in version.get("left_out", []):
            log.warning("warning: left out: %s", printable(problem))
    if version["rows_dropped"]:
        log.warning("warning: %d bad row(s) dropped by validation; see %s#rows-dropped",
                    version["rows_dropped"], validation_page)
    for warning in version["warnings"]:
        log.warning("warning: %s", printable(warning))
