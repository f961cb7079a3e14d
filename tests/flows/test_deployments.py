"""prefect.yaml against a real `prefect server`: deploy, schedules in Tehran time, a worker run."""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from flows.operations import deployment_runs
from pipelines.core.calendar import TRADING_WEEKDAYS
from tests.conftest import BIN, copy_exports
from tests.support.prefect_server import prefect_server, run_in
from tests.support.tsetmc_server import TEDPIX_CODE, TsetmcServer

pytestmark = pytest.mark.slow

TEHRAN = ZoneInfo("Asia/Tehran")
EXPECTED = {  # deployment -> (flow, work pool, cron or None: triggered)
    "data": ("tsepipe-data", "cpu", "30 13 * * 6,0,1,2,3"),
    "report": ("tsepipe-report", "cpu", None),
    "monitor": ("tsepipe-monitor", "cpu", None),
    "train": ("tsepipe-train", "gpu", "0 18 * * 3"),
}
TRIGGERED_BY = {"report": ("tsepipe-data", "data"), "monitor": ("tsepipe-report", "report")}


def cron_weekdays(cron: str) -> set[int]:
    """Cron's day-of-week field (0 = Sunday) as Python weekdays (0 = Monday)."""
    return {(int(day) - 1) % 7 for day in cron.split()[4].split(",")}


def test_cron_days_are_tehran_trading_days():
    config = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        for schedule in deployment.get("schedules", []):
            assert schedule["timezone"] == "Asia/Tehran"
            assert cron_weekdays(schedule["cron"]) <= TRADING_WEEKDAYS
    assert {d["name"] for d in config["deployments"]} == set(EXPECTED)


def test_the_chain_is_triggers_and_training_runs_one_at_a_time():
    """report after data, monitor after report: deployment triggers, not cron offsets."""
    config = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in config["deployments"]}
    for name, (flow_name, deployment) in TRIGGERED_BY.items():
        assert "schedules" not in by_name[name], name
        [trigger] = by_name[name]["triggers"]
        assert trigger["expect"] == ["prefect.flow-run.Completed"]
        assert {"prefect.resource.role": "flow", "prefect.resource.name": flow_name} in (
            trigger["match_related"])
        assert {"prefect.resource.role": "deployment",
                "prefect.resource.name": deployment} in trigger["match_related"]
    assert by_name["train"]["concurrency_limit"] == 1
    assert config["pull"] == [{"flows.worker.checkout": {}}]


def scheduled_runs(client, deployment_id) -> list:
    from prefect.client.schemas.objects import StateType

    return deployment_runs(client, deployment_id, states=[StateType.SCHEDULED])


def test_deploy_schedules_and_a_worker_run(project, small_sample_dir, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    copy_exports(small_sample_dir, project / "data/raw")
    prefect = str(BIN / "prefect")
    started = time.monotonic()
    with contextlib.ExitStack() as stack, prefect_server(tmp_path) as server, \
            temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):
        timings = {"server": time.monotonic() - started}
        for pool in ("cpu", "gpu"):
            run_in([prefect, "work-pool", "create", pool, "--type", "process"], project, server)
        deployed = run_in([prefect, "--no-prompt", "deploy", "--all"], project, server)
        timings["deploy"] = time.monotonic() - started

        with get_client(sync_client=True) as client:
            deployments = {d.name: d for d in client.read_deployments()}
            assert set(deployments) == set(EXPECTED), deployed.stdout
            flows = {f.id: f.name for f in client.read_flows()}
            for name, (flow_name, pool, cron) in EXPECTED.items():
                deployment = deployments[name]
                assert flows[deployment.flow_id] == flow_name
                assert deployment.work_pool_name == pool
                # the pull step finds the worker's checkout (here TSEPIPE_PROJECT_DIR)
                assert deployment.pull_steps == [{"flows.worker.checkout": {}}]
                if cron is None:
                    assert not deployment.schedules
                    continue
                [schedule] = deployment.schedules
                assert schedule.active
                assert schedule.schedule.cron == cron
                assert schedule.schedule.timezone == "Asia/Tehran"
            assert deployments["train"].global_concurrency_limit.limit == 1
            triggered = {a.name: a for a in client.read_automations()}
            assert len(triggered) == len(TRIGGERED_BY), list(triggered)

            # the scheduler fills each deployment's calendar (loop: 1-2 s in this server)
            deadline = time.monotonic() + 60
            runs: dict[str, list] = {}
            while time.monotonic() < deadline:
                runs = {name: scheduled_runs(client, d.id) for name, d in deployments.items()}
                if all(len(runs[n]) >= 3 for n, (_, _, c) in EXPECTED.items() if c):
                    break
                time.sleep(1)
            timings["schedules"] = time.monotonic() - started
            for name, (_, _, cron) in EXPECTED.items():
                if cron is None:
                    assert not runs[name], name
                    continue
                assert len(runs[name]) >= 3, f"{name}: {len(runs[name])} scheduled runs"
                minute, hour = (int(x) for x in cron.split()[:2])
                days = cron_weekdays(cron)
                for flow_run in runs[name]:
                    start = flow_run.expected_start_time.astimezone(TEHRAN)
                    assert start.weekday() in days and start.weekday() in TRADING_WEEKDAYS
                    assert (start.hour, start.minute) == (hour, minute), (name, start)
                    assert start > datetime.now(TEHRAN)
                    assert "auto-scheduled" in flow_run.tags

        # a manual run of the data deployment, executed by a process worker: it fetches
        # first (the deployment's default) from a TSETMC look-alike on loopback, here one
        # index whose history ends in 2019: fetched, then left out of the merge as stale
        tsetmc = stack.enter_context(TsetmcServer())
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["fetch"] |= {"base_url": tsetmc.base_url, "pace_seconds": 0.0,
                            "indices": {"IRX6XTEST001": TEDPIX_CODE}}
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False,
                                                            allow_unicode=True))
        ran = run_in([prefect, "deployment", "run", "tsepipe-data/data"], project, server)
        flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", ran.stdout).group(1)
        worker = run_in([prefect, "worker", "start", "--pool", "cpu", "--run-once"], tmp_path,
                        server | {"TSEPIPE_PROJECT_DIR": str(project)}, timeout=300)
        timings["worker run"] = time.monotonic() - started
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(flow_run_id)
            assert flow_run.state.type == StateType.COMPLETED, (
                f"{flow_run.state}\n{worker.stdout}\n{worker.stderr}")
            keys = {a.key for a in client.read_artifacts()}
            # the scheduled runs are untouched: only the due run was picked up
            assert all(len(scheduled_runs(client, deployments[n].id)) >= 3
                       for n, (_, _, cron) in EXPECTED.items() if cron)
    assert {"validation", "merge-summary", "dataset-version"} <= keys
    assert (project / "data/processed/merged.parquet").exists()  # ran in the project folder
    assert [r.code for r in tsetmc.requests] == [TEDPIX_CODE]
    assert (project / "data/raw/IRX6XTEST001.json").exists()
    merged = json.loads((project / "data/processed/merge_summary.json").read_text())
    fetched = next(i for i in merged["indices"] if i["index_id"] == "IRX6XTEST001")
    assert not fetched["included"] and fetched["reason"].startswith("stale: its last day "
                                                                    "2019-12-31")
    assert any((project / "dvcstore").rglob("*")), "the deployment's dvc push sent nothing"
    print(" ".join(f"{k} {v:.0f}s" for k, v in timings.items()))


def test_every_deployment_parameter_has_a_description_in_the_ui():
    """The Prefect UI shows a parameter's description from the flow's docstring (Args:),
    as Prefect's parameter schema carries it to the deployment."""
    from prefect.utilities.callables import parameter_schema

    from flows.data import data_flow
    from flows.operations import monitoring_flow, report_flow
    from flows.train import training_flow

    for deployed in (data_flow, report_flow, monitoring_flow, training_flow):
        properties = parameter_schema(deployed.fn).model_dump()["properties"]
        missing = [name for name, spec in properties.items() if not spec.get("description")]
        assert properties and missing == [], (deployed.name, missing)
