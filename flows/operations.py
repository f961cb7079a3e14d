"""Operations flows: the daily forecast-and-report run and the drift monitor.

``report_flow`` (``tsepipe-report``) runs ``predict -> drift -> accuracy -> report`` through
DVC with the current champion (``accuracy`` skipped by DVC unless the evaluation changed
since the pages were drawn, e.g. a training run that stopped after evaluate), publishes
the artifacts and pushes. ``monitoring_flow``
(``tsepipe-monitor``) runs the ``drift`` stage and, when the share of drifted features
reaches the threshold (``drift.threshold`` in params.yaml unless given) and a refit would
see days the champion was not trained on (labelled days after its last training day, or
its days' data changed since: ``drift.refit_would_add``), starts a run of the training
deployment (tag ``drift-triggered``) without waiting for it. Drift with nothing new to
learn from is recorded as "no new days": a refit on the same days cannot clear drift of the
market against its own history. Scheduled retraining is the training deployment's own
schedule (prefect.yaml), which Prefect starts by itself. Every decision,
retraining or not, is recorded with its reason: a markdown artifact (key ``monitoring``)
and one JSON line in ``monitoring.jsonl`` beside the front page (``paths.monitoring_log``).

The triggered run is linked to the monitoring run (Prefect's ``run_deployment`` inside a
flow: the training run shows up as its subflow, and a placeholder task run mirrors its
state). A drift-triggered training run that has not finished yet (scheduled, pending or
running), or any run of the training deployment in progress, makes the monitor wait
instead of starting another one: the data drifts for days, retraining once is enough.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from prefect.states import Completed, Failed, State

from flows.artifacts import inert_markdown, publish_all, run_name
from flows.notifications import announce_drift
from flows.runs import exclusive
from flows.stages import models_as_trained, publish_version, run_stages, stages_to_forecast
from pipelines.core.calendar import TEHRAN
from pipelines.core.fileio import append_jsonl
from pipelines.core.params.load import load_params
from pipelines.reporting.drift import refit_would_add, seen_every_day
from pipelines.reporting.evidently_pages import ranked_drifted, score_label

REPORT_STAGES = ("predict", "drift", "accuracy", "report")
RETRAIN_TAG = "drift-triggered"
TOP_FEATURES = 10  # drifted features named in the artifact and the log

RETRAIN = "retrain"
NO_RETRAINING = "no retraining"
NO_NEW_DAYS = "no new days"  # drifted, but a refit would see the days the models saw
ALREADY_PENDING = "retraining already pending"
NOT_TRIGGERED = "retraining needed, trigger off"
TRIGGER_FAILED = "retraining needed, trigger failed"

_UNFINISHED = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED,
               StateType.CANCELLING]
_IN_PROGRESS = {StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING}


@flow(name="tsepipe-report", flow_run_name=run_name,
      description="Daily: forecast with the current champion, drift report, report pages.")
@exclusive
def report_flow(project_dir: str = ".", push_remote: bool = True,
                lock_wait_seconds: float = 0, commit: bool = True,
                push_git: bool = False) -> State:
    """Run predict -> drift -> accuracy -> report through DVC, with the models as train
    wrote them (``flows.stages.restore_models``); publish artifacts; push.

    Returns a Completed state carrying the forecast (``forecasts/latest.json``), or a
    Failed one whose message lists the failed stage's problems.

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
    models_as_trained(str(Path(project_dir).resolve()))  # what train wrote, nothing else
    return stages_to_forecast(project_dir, REPORT_STAGES, "tsepipe-report", push_remote,
                              commit, push_git)


def deployment_runs(client: Any, deployment_id: Any, states: list[StateType] | None = None,
                    tags: list[str] | None = None) -> list[Any]:
    """Flow runs of one deployment, in any of ``states`` and carrying all ``tags``."""
    run_filter = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)) if states else None,
        tags=FlowRunFilterTags(all_=tags) if tags else None)
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=run_filter)


@task(task_run_name="read drift")
def read_drift(drift_json: str) -> dict[str, Any]:
    return json.loads(Path(drift_json).read_text(encoding="utf-8"))


@task(retries=2, retry_delay_seconds=5, task_run_name="start retraining")
def start_retraining(deployment_name: str, idempotency_key: str | None) -> dict[str, Any]:
    """Create a run of the training deployment now, without waiting for it (timeout=0).

    Returns ``{"triggered": run}``; ``{"pending": run}`` when a drift-triggered run has
    not finished yet or any run of the deployment is in progress (nothing is started);
    ``{"error": message}`` when the deployment does not exist. ``run``: id, name, state.
    """
    def brief(run: Any) -> dict[str, Any]:
        return {"id": str(run.id), "name": run.name,
                "state": run.state.name if run.state else None}

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(deployment_name)
        except ObjectNotFound:
            return {"error": f"no deployment {deployment_name!r} on the Prefect server "
                             f"{PREFECT_API_URL.value() or '(ephemeral)'}; run "
                             "`prefect --no-prompt deploy --all` first"}
        runs = deployment_runs(client, deployment.id, states=_UNFINISHED)
    for run in runs:
        state_type = run.state.type if run.state else None
        if RETRAIN_TAG in (run.tags or []) or state_type in _IN_PROGRESS:
            return {"pending": brief(run)}
    # named now as it will be once it starts (``run_name``), not a random name meanwhile
    name = f"{deployment_name.split('/')[-1]} {dt.datetime.now(ZoneInfo(TEHRAN)):%Y-%m-%d}"
    run = run_deployment(name=deployment_name, timeout=0, tags=[RETRAIN_TAG],
                         idempotency_key=idempotency_key, flow_run_name=name)
    if run.parent_task_run_id:  # the task that stands for it in this run's graph
        with get_client(sync_client=True) as client:
            client.set_task_run_name(run.parent_task_run_id, f"run {deployment_name}")
    get_run_logger().info("started %s: flow run %s (%s)", deployment_name, run.name, run.id)
    return {"triggered": brief(run)}


def _span(side: dict[str, Any] | None) -> str:
    if not side:
        return "unknown"
    return f"{side.get('first_date')} .. {side.get('last_date')} ({side.get('rows')} days)"


def _markdown(record: dict[str, Any], drift: dict[str, Any], top: list[dict[str, Any]],
              deployment_name: str) -> str:
    lines = [
        f"# Monitoring: {record['decision']}",
        f"**Why:** {inert_markdown(record['reason'])}",
        "",
        f"- share of drifted features: {record['share']:.3f} "
        f"({drift.get('n_drifted')} of {drift.get('n_features')}); "
        f"threshold {record['threshold']:.3f}",
        f"- reference (champion's training window): {_span(drift.get('reference'))}",
        f"- current (latest days): {_span(drift.get('current'))}",
        f"- the champion was trained on the labelled days through "
        f"{drift.get('trained_on_last')}; new since: {record.get('new_since_training') or 'none'}",
    ]
    for role in ("prediction", "target"):
        found = drift.get(f"{role}_drift")
        if found and found.get("drifted") is not None:
            lines.append(f"- {role} drift: {'yes' if found['drifted'] else 'no'} "
                         f"(score {found['score']:.4g}, {found.get('method')})")
    triggered = record.get("triggered_flow_run")
    if triggered:
        lines.append(f"- triggered `{deployment_name}`: flow run **{triggered['name']}** "
                     f"(`{triggered['id']}`), tag `{RETRAIN_TAG}`")
    pending = record.get("pending_flow_run")
    if pending:
        lines.append(f"- already waiting for `{deployment_name}`: flow run "
                     f"**{pending['name']}** (`{pending['id']}`, {pending['state']})")
    if top:
        score = score_label(top[0]["method"], top[0]["lower_is_drift"])
        lines += ["", f"## Most drifted features (top {len(top)} of {drift.get('n_drifted')})",
                  "", f"| feature | score: {score} | threshold | method |", "|---|---|---|---|"]
        lines += [f"| {inert_markdown(t['feature'])} | {t['drift_score']:.4g} | {t['threshold']} | "
                  f"{inert_markdown(t['method'])} |" for t in top]
    return "\n".join(lines) + "\n"




def _trained_data_version(champion_record: Path) -> str | None:
    """The dataset MD5 the champion was trained on (``models/champion.json``), if known."""
    try:
        return json.loads(champion_record.read_text(encoding="utf-8")).get("data_version")
    except (OSError, ValueError):
        return None


def _decide(record: dict[str, Any], verdict: str, names: str, trigger: bool,
            retrain_deployment: str, monitor_run: Any) -> State | None:
    """Fill the record's decision and reason: below the threshold, nothing; at or above it
    with nothing new for a refit (``new_since_training`` None), nothing either; else start
    ``retrain_deployment`` (unless ``trigger`` is off or a run is pending). A Failed state
    when the run could not be started, else None."""
    if record["share"] < record["threshold"]:
        record["decision"], record["reason"] = NO_RETRAINING, verdict
        return None
    reason = f"{verdict} (most drifted: {names})"
    if record["new_since_training"] is None:
        record["decision"] = NO_NEW_DAYS
        record["reason"] = f"{reason}, but {seen_every_day(record)}"
        return None
    reason = f"{reason}; new since training: {record['new_since_training']}"
    if not trigger:
        record["decision"], record["reason"] = NOT_TRIGGERED, f"{reason}; trigger=False"
        return None
    key = f"{RETRAIN_TAG}:{monitor_run.id}" if monitor_run else None
    started = start_retraining(retrain_deployment, key, return_state=True)
    found = started.result() if started.is_completed() else {"error": started.message}
    if "pending" in found:
        record["decision"] = ALREADY_PENDING
        record["pending_flow_run"] = found["pending"]
        record["reason"] = (f"{reason}; run {found['pending']['name']} of "
                            f"{retrain_deployment} is still {found['pending']['state']}")
    elif "triggered" in found:
        record["decision"] = RETRAIN
        record["triggered_flow_run"] = found["triggered"]
        record["reason"] = reason
    else:
        record["decision"] = TRIGGER_FAILED
        record["reason"] = f"{reason}; starting {retrain_deployment} FAILED: {found['error']}"
        return Failed(message=f"could not start {retrain_deployment}: {found['error']}")
    return None


@flow(name="tsepipe-monitor", flow_run_name=run_name,
      description="Drift check; at or above the threshold it starts the training deployment.")
@exclusive
def monitoring_flow(project_dir: str = ".", threshold: float | None = None,
                    retrain_deployment: str = "tsepipe-train/train",
                    trigger: bool = True, lock_wait_seconds: float = 0,
                    push_remote: bool = True, commit: bool = True,
                    push_git: bool = False) -> State:
    """Run the drift stage (and predict before it, when the data is newer than its
    forecast); start retraining when the drifted share reaches ``threshold`` and a refit
    would see days the champion was not trained on (else "no new days").

    ``threshold``: share of drifted features (default ``drift.threshold`` of params.yaml).
    ``trigger=False`` records the decision without starting a run. Returns a Completed
    state carrying the decision record (also appended to ``paths.monitoring_log``).

    Args:
        project_dir: the project's folder (its params.yaml, dvc.yaml and git checkout); the
            worker's working directory by default.
        threshold: the share of drifted features at which retraining starts (default:
            drift.threshold of params.yaml).
        retrain_deployment: the deployment started to retrain (FLOW/DEPLOYMENT).
        trigger: start the retraining run (false: only record the decision).
        lock_wait_seconds: how long to wait for another run in this project to finish before
            ending as Busy (0: do not wait).
        push_remote: push the new data and models to the DVC remote (dvc push) before the
            version is committed.
        commit: commit the version to git when dvc.lock or data/raw.dvc changed (with
            params.yaml, dvc.yaml and metrics/).
        push_git: also push the version's commit (and a new models tag) to the git remote.
    """
    # long: its docstring's Args: are the deployment's parameter help in the Prefect UI
    logger = get_run_logger()
    project = Path(project_dir).resolve()
    params = load_params(project / "params.yaml")
    where = params.paths
    if threshold is None:
        threshold = params.drift.threshold
    # drift reads the champion's P(up) that predict writes (up to date after a report run)
    stopped = run_stages(str(project), ("predict", "drift"))
    if stopped:
        return stopped
    # a drift report made here (new data since the last report run) is a version too
    publish_version(str(project), "tsepipe-monitor", push_remote, commit, push_git)
    drift = read_drift(str(project / where.drift_summary))
    share = float(drift["share_of_drifted_features"])
    top = ranked_drifted(drift.get("features", {}))[:TOP_FEATURES]
    names = ", ".join(t["feature"] for t in top[:3])
    drifted = (f"{drift.get('n_drifted')} of {drift.get('n_features')} features drifted "
               f"(share {share:.3f})")
    run_context = FlowRunContext.get()
    monitor_run = run_context.flow_run if run_context and run_context.flow_run else None
    record: dict[str, Any] = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "share": share, "threshold": threshold,
        "n_drifted": drift.get("n_drifted"), "n_features": drift.get("n_features"),
        "reference": drift.get("reference"), "current": drift.get("current"),
        "top_drifted": [t["feature"] for t in top],
        "trained_on_last": drift.get("trained_on_last"),
        "labelled_last": drift.get("labelled_last"),
        "new_labelled_days": drift.get("new_labelled_days"),
        "new_since_training": refit_would_add(
            drift, _trained_data_version(project / where.champion_record)),
        "monitoring_flow_run": str(monitor_run.id) if monitor_run else None,
        "triggered_flow_run": None,
    }
    outcome = _decide(record, f"{drifted} {'<' if share < threshold else '>='} threshold "
                              f"{threshold:.3f}", names, trigger, retrain_deployment,
                      monitor_run)
    logger.info("monitoring: %s (%s)", record["decision"], record["reason"])
    create_markdown_artifact(
        key="monitoring", markdown=_markdown(record, drift, top, retrain_deployment),
        description=inert_markdown(f"{record['decision']}: {record['reason']}"))
    append_jsonl(project / where.monitoring_log, record)
    announce_drift(record)  # tsepipe.drift.found at or above the threshold: notifies
    publish_all(str(project))
    if outcome is not None:
        return outcome
    return Completed(message=f"{record['decision']}: {record['reason']}", data=record)
