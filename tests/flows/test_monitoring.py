"""Drift monitoring. Against a real `prefect server` (slow): stable data leaves the champion
alone; a regime change in the sample data starts a drift-triggered run of the training
deployment once new days arrive, its reason recorded, which a gpu worker runs; still
drifted, the retrained models have seen every labelled day: no retraining, and why.
Fast: the regime-change sample data, the ranking."""

from __future__ import annotations

import datetime as dt
import json
import time

import numpy as np
import pytest
import yaml

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


def with_new_days(folder, scratch, end: dt.date, regime_days: int = 60) -> list[str]:
    """Append to the exports in ``folder`` the trading days after their last one up to
    ``end``, whose last ``regime_days`` days change regime (the sample data's, made in
    ``scratch``), each index's prices scaled to go on from its own last close; return the
    target's new days."""
    new = scratch / "new-days"
    sample.generate(new, n_days=150, end=end, regime_change_days=regime_days)
    for path in sorted(folder.glob("*.csv")):
        header, *rows = [row for row in path.read_bytes().decode("utf-16").split("\r\n") if row]
        last = rows[-1].split(",")
        more = [row.split(",") for row in
                (new / path.name).read_bytes().decode("utf-16").split("\r\n")[1:] if row]
        scale = float(last[5]) / float([row for row in more if row[1] <= last[1]][-1][5])
        added = [row[:2] + [f"{float(v) * scale:.1f}" for v in row[2:6]] + row[6:12]
                 + [f"{float(row[12]) * scale:.1f}"] for row in more if row[1] > last[1]]
        if path.name == f"{sample.TARGET_ISIN}.csv":
            days = [f"{row[1][:4]}-{row[1][4:6]}-{row[1][6:]}" for row in added]
        path.write_bytes("\r\n".join([header, *rows, *map(",".join, added), ""])
                         .encode("utf-16"))
    return days


def models_md5(project) -> str:
    """The md5 of the train stage's ``models`` output in ``dvc.lock``."""
    lock = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))
    [models] = [out for out in lock["stages"]["train"]["outs"] if out["path"] == "models"]
    return models["md5"]


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

        # (b) new days arrive (67 after the trained 2025-09-23), the last 60 (the drift
        # stage's current span) in a new regime: labelled days the models have not seen
        new_days = with_new_days(project / "data/raw", tmp_path, dt.date(2025, 12, 31))
        last_day = new_days[-1]
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
        assert forecast["as_of"] == last_day
        assert (project / "reports/index.html").exists()
        assert json.loads((project / "reports/drift/drift.json").read_text())["dataset_drift"]
        drifted = monitor(project, server)
        timings["monitor (drift)"] = time.monotonic() - started
        assert drifted["decision"] == "retrain", drifted
        assert drifted["share"] >= drifted["threshold"]
        assert ">= threshold 0.500" in drifted["reason"]
        assert "most drifted" in drifted["reason"] and drifted["top_drifted"]
        # each new day, and 2025-09-23 whose label came with them, less the last (no label)
        assert drifted["new_labelled_days"] == len(new_days) == 67
        assert drifted["reason"].endswith(
            f"; new since training: 67 labelled days after the last one it was trained on, "
            f"2025-09-22 (through {new_days[-2]})")
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

        # (d) a gpu worker runs the triggered training: the models are retrained (1 epoch)
        # on every labelled day
        trained = models_md5(project)
        params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
        for spec in params["train"]["models"].values():
            spec.update(epochs=1, patience=1)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False,
                                                            allow_unicode=True))
        worker = run_in([prefect, "worker", "start", "--pool", "gpu", "--run-once"], tmp_path,
                        server | {"TSEPIPE_PROJECT_DIR": str(project)}, timeout=600)
        timings["worker: retraining"] = time.monotonic() - started
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(triggered["id"])
            assert flow_run.state.type == StateType.COMPLETED, (
                f"{flow_run.state}\n{worker.stdout[-3000:]}\n{worker.stderr[-3000:]}")
        assert models_md5(project) != trained
        champion = json.loads((project / "models/champion.json").read_text(encoding="utf-8"))
        assert champion["trained_on"]["last"] == new_days[-2]  # the last labelled day
        assert champion["data_version"] == file_md5(project / "data/processed/merged.parquet")

        # (e) still drifted, but the models have seen every labelled day: no retraining
        seen = monitor(project, server)
        timings["monitor (no new days)"] = time.monotonic() - started
        assert seen["decision"] == "no new days", seen
        assert seen["share"] >= seen["threshold"] and seen["triggered_flow_run"] is None
        assert seen["new_labelled_days"] == 0 and seen["new_since_training"] is None
        assert seen["reason"].endswith(
            f"but the models were trained on every labelled day through "
            f"{champion['trained_on']['last']}; a refit would see the same days")
        with get_client(sync_client=True) as client:
            assert len(drift_triggered_runs(client, train.id)) == 1
            assert "# Monitoring: no new days" in latest_monitoring_artifact(client).data
    records = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    assert [r["decision"] for r in records] == [
        "no retraining", "retrain", "retraining already pending", "no new days"]
    # the drift history: one line per current span (its latest report: after retraining,
    # the new champion's), the trend on the drift page
    history = [json.loads(x) for x in
               (project / "reports/drift/history.jsonl").read_text().splitlines()]
    assert [e["current"]["last_date"] for e in history] == ["2025-09-23", last_day]
    assert [e["share"] for e in history] == [stable["share"], seen["share"]]
    assert history[-1]["champion"] == champion["champion"]
    assert (project / "reports/drift/index.html").read_text().count("<svg") == 2
    print(" ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
