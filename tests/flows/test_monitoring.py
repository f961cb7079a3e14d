"""Drift monitoring. Against a real `prefect server` (slow): stable data leaves the champion
alone; a regime change in the sample data starts a drift-triggered run of the training
deployment, its reason recorded. Fast: the regime-change sample data, the ranking."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from flows.data import DATA_STAGES
from flows.operations import REPORT_STAGES, deployment_runs
from pipelines.core.fileio import file_md5
from pipelines.data import sample
from pipelines.data.formats import read_export
from pipelines.reporting.evidently_pages import ranked_drifted
from tests.conftest import BIN
from tests.support.prefect_server import prefect_server, run_in

DAILY_STAGES = DATA_STAGES + REPORT_STAGES

FLOW = """
import json
from flows.{module} import {name}
state = {name}({args}return_state=True)
print("RESULT " + json.dumps({{"completed": state.is_completed(), "message": state.message,
                               "result": state.result() if state.is_completed() else None}}))
"""


def run_flow(project, server, name: str, args: str = "", module: str = "operations") -> dict:
    """Run a flow of flows.``module`` in a subprocess in ``project``, against ``server``."""
    done = run_in([str(BIN / "python"), "-c", FLOW.format(module=module, name=name, args=args)],
                  project, server)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["completed"], f"{result['message']}\n{done.stderr[-3000:]}"
    return result["result"]


def monitor(project, server) -> dict:
    return run_flow(project, server, "monitoring_flow")


def drift_triggered_runs(client, deployment_id) -> list:
    return deployment_runs(client, deployment_id, tags=["drift-triggered"])


def daily_stage_runs(client) -> dict[str, list[str]]:
    """The stages' task runs of the daily flow's run, by subflow, in the order they ran."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    [daily] = client.read_flow_runs(flow_filter=FlowFilter(
        name=FlowFilterName(any_=["tsepipe-daily"])))
    subflows = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[daily.id])))
    flow_names = {f.id: f.name for f in client.read_flows()}
    found = {}
    for subflow in subflows:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[subflow.id])))
        found[flow_names[subflow.flow_id]] = [
            run.name for run in sorted(runs, key=lambda run: run.start_time)
            if run.name in DAILY_STAGES]
    return found


def latest_monitoring_artifact(client):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        key=ArtifactFilterKey(any_=["monitoring"])))
    return max(found, key=lambda a: a.created)


def test_regime_change_sample_data(tmp_path):
    default, changed = tmp_path / "default", tmp_path / "changed"
    sample.generate(default, n_days=120)
    sample.generate(changed, n_days=120, regime_change_days=30)
    for name in sorted(p.name for p in default.iterdir()):
        before, after = (read_export(folder / name).frame for folder in (default, changed))
        assert before["date"].equals(after["date"])
        last = after["date"] >= after["date"].iloc[-30]  # the regime's days (gappy files too)
        assert before[~last].equals(after[~last])  # earlier days: the default data exactly
        returns = np.diff(np.log(after["close"].to_numpy()))
        assert returns[-25:].std() > 2 * returns[:-35].std(), name
        assert after["volume"][last].median() > 1.5 * before["volume"][last].median(), name


def test_drifted_features_ranked_past_their_own_threshold():
    features = {
        "a__logret": {"drift_score": 0.004, "drifted": True, "method": "ks", "threshold": 0.01},
        "b__logret": {"drift_score": 1e-9, "drifted": True, "method": "ks", "threshold": 0.01},
        "c__range": {"drift_score": 0.5, "drifted": True, "method": "wasserstein",
                     "threshold": 0.1},
        "d__range": {"drift_score": 0.2, "drifted": False, "method": "ks", "threshold": 0.01},
    }
    assert [f["feature"] for f in ranked_drifted(features)] == [
        "b__logret", "c__range", "a__logret"]


@pytest.mark.slow
def test_stable_data_does_not_retrain_and_a_regime_change_does(trained_project, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    project = trained_project  # the 300-day sample, trained: the champion the monitor reads
    log = project / "reports/monitoring.jsonl"
    timings, started = {}, time.monotonic()
    with prefect_server(tmp_path) as server, temporary_settings(
        {PREFECT_API_URL: server["PREFECT_API_URL"]}
    ):
        prefect = str(BIN / "prefect")
        run_in([prefect, "work-pool", "create", "gpu", "--type", "process"], project, server)
        run_in([prefect, "--no-prompt", "deploy", "--name", "train"], project, server)
        timings["server, deploy"] = time.monotonic() - started
        with get_client(sync_client=True) as client:
            train = client.read_deployment_by_name("tsepipe-train/train")

        # (a) the champion's own data: no drift, no retraining
        stable = monitor(project, server)
        timings["monitor (stable)"] = time.monotonic() - started
        assert stable["decision"] == "no retraining", stable
        assert stable["share"] < stable["threshold"] == 0.5  # drift.threshold in params.yaml
        assert stable["triggered_flow_run"] is None
        assert "< threshold 0.500" in stable["reason"]
        with get_client(sync_client=True) as client:
            assert drift_triggered_runs(client, train.id) == []
            artifact = latest_monitoring_artifact(client)
            assert "# Monitoring: no retraining" in artifact.data
        [line] = log.read_text(encoding="utf-8").splitlines()
        assert json.loads(line)["decision"] == "no retraining"

        # (b) the last 60 days (the drift stage's current span) change regime
        sample.generate(project / "data/raw", n_days=300, regime_change_days=60)
        # the daily path in one process: the data flow, then the report flow (today's
        # forecast with the current champion, drift, pages), each stage a task run
        daily = run_flow(project, server, "daily_flow", "push_remote=False, ", module="daily")
        timings["daily flow (regime change)"] = time.monotonic() - started
        with get_client(sync_client=True) as client:
            assert daily_stage_runs(client) == {
                "tsepipe-data": ["ingest", "validate", "merge"],
                "tsepipe-report": ["predict", "drift", "accuracy", "report"]}
        forecast = daily["forecast"]
        assert forecast["data_version"] == file_md5(project / "data/processed/merged.parquet")
        assert forecast["as_of"] == "2025-09-23"  # the sample data's last day
        assert (project / "reports/index.html").exists()
        assert json.loads((project / "reports/drift/drift.json").read_text())["dataset_drift"]
        drifted = monitor(project, server)
        timings["monitor (drift)"] = time.monotonic() - started
        assert drifted["decision"] == "retrain", drifted
        assert drifted["share"] >= drifted["threshold"]
        assert ">= threshold 0.500" in drifted["reason"]
        assert "most drifted" in drifted["reason"] and drifted["top_drifted"]
        assert drifted["current"]["rows"] == 60 and drifted["reference"]["rows"] > 60
        triggered = drifted["triggered_flow_run"]
        with get_client(sync_client=True) as client:
            [flow_run] = drift_triggered_runs(client, train.id)
            assert str(flow_run.id) == triggered["id"]
            assert flow_run.state.type == StateType.SCHEDULED  # no gpu worker: waits there
            assert flow_run.work_pool_name == "gpu"
            assert "drift-triggered" in flow_run.tags
            # linked to the monitoring run that started it (run_deployment in a flow)
            parent = client.read_task_run(flow_run.parent_task_run_id)
            assert str(parent.flow_run_id) == drifted["monitoring_flow_run"]
            artifact = latest_monitoring_artifact(client)
            assert "# Monitoring: retrain" in artifact.data
            assert triggered["name"] in artifact.data and triggered["id"] in artifact.data
            assert "Most drifted features" in artifact.data
        records = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
        assert [r["decision"] for r in records] == ["no retraining", "retrain"]
        assert records[-1]["triggered_flow_run"]["id"] == triggered["id"]
        assert records[-1]["reason"] == drifted["reason"]

        # (c) still drifted the next day, retraining not done yet: no second run
        again = monitor(project, server)
        assert again["decision"] == "retraining already pending", again
        assert again["pending_flow_run"]["id"] == triggered["id"]
        with get_client(sync_client=True) as client:
            assert len(drift_triggered_runs(client, train.id)) == 1
        timings["monitor (pending)"] = time.monotonic() - started
    assert len(log.read_text(encoding="utf-8").splitlines()) == 3
    print(" ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
