"""The daily path as one flow: the data flow, then the report flow, as subflows.

The deployments run the two flows as runs of their own, each in its own process (the
report flow triggered by the data flow's completion). Run by hand, without a Prefect
server, each such process starts an ephemeral server of its own (5-6 s on 2 cores) and
imports Prefect again (4-5 s); ``daily_flow`` runs both in one process, one server, with
the same stages, task runs, pushes and version commits as the two flows.
"""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed, State

from flows.artifacts import run_name
from flows.data import data_flow
from flows.operations import report_flow
from flows.runs import exclusive, passed_on


@flow(name="tsepipe-daily", flow_run_name=run_name,
      description="The daily path: the data flow, then the report flow.")
@exclusive
def daily_flow(raw_dir: str | None = None, project_dir: str = ".", push_remote: bool = True,
               fetch: bool | None = None, lock_wait_seconds: float = 0, commit: bool = True,
               push_git: bool = False) -> State:
    """``data_flow`` then, when it completed, ``report_flow`` (parameters as theirs).

    Returns a Completed state carrying ``{"data": version, "forecast": forecast}``, or the
    failed subflow's state (``BadData``, ``FetchFailed``, a crash) as its own.
    """
    data = data_flow(raw_dir=raw_dir, project_dir=project_dir, push_remote=push_remote,
                     fetch=fetch, commit=commit, push_git=push_git,
                     publish_standing=False,  # the report subflow publishes today's
                     return_state=True)
    if not data.is_completed():
        return passed_on(data)
    report = report_flow(project_dir=project_dir, push_remote=push_remote, commit=commit,
                         push_git=push_git, return_state=True)
    if not report.is_completed():
        return passed_on(report)
    return Completed(message=report.message,
                     data={"data": data.result(), "forecast": report.result()})
