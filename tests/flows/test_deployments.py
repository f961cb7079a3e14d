"""prefect.yaml against a real `prefect server`: deploy, schedules in Tehran time, worker
runs (a failed data run, a good one, the report run it triggers) and the UI's view of them."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from flows.operations import deployment_runs
from pipelines.core.calendar import TRADING_WEEKDAYS
from tests.conftest import BIN, chromium_or_skip
from tests.support.browser import visible_text
from tests.support.prefect_server import prefect_server, run_in
from tests.support.prefect_ui import state_badges, ui_page_showing
from tests.support.tsetmc_server import TEDPIX_CODE, Fault, TsetmcServer

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


@pytest.mark.browser
def test_deploy_schedules_and_a_worker_run(trained_project, tmp_path):
    """The deployments on a real server, run by a process worker: a data run whose fetch
    fails (Failed, FetchFailed, no traceback), a good one (the page's notice gone, in the
    version it commits too), the report run it triggers; the failure as the UI shows it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    project = trained_project
    prefect = str(BIN / "prefect")
    started = time.monotonic()
    with contextlib.ExitStack() as stack, prefect_server(tmp_path, ui=True) as server, \
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

        # manual runs of the data deployment, executed by a process worker: it fetches
        # first (the deployment's default) from a TSETMC look-alike on loopback, here one
        # index whose history ends in 2019. The first fetch is refused (FetchFailed); the
        # second goes through: fetched, then left out of the merge as stale
        tsetmc = stack.enter_context(TsetmcServer())
        tsetmc.faults[TEDPIX_CODE] = [Fault.http_error(404)]
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["fetch"] |= {"base_url": tsetmc.base_url, "pace_seconds": 0.0,
                            "indices": {"IRX6XTEST001": TEDPIX_CODE}}
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False,
                                                            allow_unicode=True))
        failed_id, worker = worker_run("tsepipe-data/data", project, server, tmp_path)
        timings["failed data run"] = time.monotonic() - started
        with get_client(sync_client=True) as client:
            assert_told_failure(client, failed_id, "FetchFailed", worker)
        assert NOTICE + " (FetchFailed)" in front_page(project)  # the failed run drew it

        flow_run_id, worker = worker_run("tsepipe-data/data", project, server, tmp_path)
        timings["worker run"] = time.monotonic() - started
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(flow_run_id)
            assert flow_run.state.type == StateType.COMPLETED, (
                f"{flow_run.state}\n{worker.stdout}\n{worker.stderr}")
            keys = {a.key for a in client.read_artifacts()}
            # the scheduled runs are untouched: only the due run was picked up
            assert all(len(scheduled_runs(client, deployments[n].id)) >= 3
                       for n, (_, _, cron) in EXPECTED.items() if cron)
        assert_the_notice_is_gone(project)

        # its completion triggers the report deployment: the page stays without the notice
        # (its stage is up to date since the good run redrew it, so DVC skips it)
        report_id = triggered_run(deployments["report"].id)
        worker = run_in([prefect, "worker", "start", "--pool", "cpu", "--run-once"], tmp_path,
                        server | {"TSEPIPE_PROJECT_DIR": str(project)}, timeout=400)
        timings["report run"] = time.monotonic() - started
        with get_client(sync_client=True) as client:
            report = client.read_flow_run(report_id).state
        assert report.type == StateType.COMPLETED, f"{report}\n{worker.stdout[-3000:]}"
        assert NOTICE not in front_page(project)

        # the operator's view: the Prefect UI lists, counts and colours the failed run and
        # its task as failed: the deployment's Runs tab, then the flow's page
        chromium_or_skip()
        ui = server["PREFECT_API_URL"].removesuffix("/api")
        shown = ui_page_showing(f"{ui}/deployments/deployment/{deployments['data'].id}",
                                lambda dom: {("failed", "Failed"), ("completed", "Completed")}
                                <= set(state_badges(dom))
                                and "Flow runs" in visible_text(dom),
                                tmp_path / "ui-deployment.png")
        assert ("failed", "Failed") in state_badges(shown), state_badges(shown)
        assert ("completed", "Completed") in state_badges(shown)
        assert re.search(r"\b2 Flow runs\b", visible_text(shown)), visible_text(shown)[:1500]
        shown = ui_page_showing(f"{ui}/flows/flow/{deployments['data'].flow_id}",
                                lambda dom: ("failed", "Failed") in state_badges(dom)
                                and "Failed" in visible_text(dom).partition("Task Runs")[2],
                                tmp_path / "ui-flow.png")
        assert ("failed", "Failed") in state_badges(shown), state_badges(shown)
        text = visible_text(shown)
        assert re.search(r"Flow Runs \d+ total", text), text[:1000]
        assert re.search(r"Task Runs \d+ \d+ Completed [\d.]+% 1 Failed", text), text[:1000]
        timings["browser"] = time.monotonic() - started
    assert {"validation", "merge-summary", "dataset-version"} <= keys
    assert (project / "data/processed/merged.parquet").exists()  # ran in the project folder
    assert [r.code for r in tsetmc.requests] == [TEDPIX_CODE, TEDPIX_CODE]
    assert (project / "data/raw/IRX6XTEST001.json").exists()
    merged = json.loads((project / "data/processed/merge_summary.json").read_text())
    fetched = next(i for i in merged["indices"] if i["index_id"] == "IRX6XTEST001")
    assert not fetched["included"] and fetched["reason"].startswith("stale: its last day "
                                                                    "2019-12-31")
    assert any((project / "dvcstore").rglob("*")), "the deployment's dvc push sent nothing"
    print(" ".join(f"{k} {v:.0f}s" for k, v in timings.items()))


NOTICE = "attention: the last data run failed"


def front_page(project: Path) -> str:
    return (project / "reports/index.html").read_text(encoding="utf-8")


def worker_run(deployment: str, project: Path, server: dict[str, str], tmp_path: Path
               ) -> tuple[str, subprocess.CompletedProcess]:
    """A run of ``deployment`` started by hand and executed by a process worker
    (``--run-once``): its id, and what the worker printed."""
    prefect = str(BIN / "prefect")
    ran = run_in([prefect, "deployment", "run", deployment], project, server)
    flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", ran.stdout).group(1)
    worker = run_in([prefect, "worker", "start", "--pool", "cpu", "--run-once"], tmp_path,
                    server | {"TSEPIPE_PROJECT_DIR": str(project)}, timeout=300)
    return flow_run_id, worker


def assert_told_failure(client, flow_run_id: str, name: str,
                        worker: subprocess.CompletedProcess) -> None:
    """The run and the task that found the failure are Failed, named ``name``, and
    nothing printed or logged a traceback for it."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter
    from prefect.client.schemas.objects import StateType

    state = client.read_flow_run(flow_run_id).state
    printed = worker.stdout + worker.stderr
    # the run's final state is Prefect's own Failed (the deployment page lists runs by
    # Prefect's state names), its kind leading the message; the task's is named by it
    assert (state.type, state.name) == (StateType.FAILED, "Failed"), f"{state}\n{printed}"
    assert state.message.startswith(f"{name}: "), state.message
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
        id=FlowRunFilterId(any_=[flow_run_id])))
    assert [(t.state.type, t.state.name) for t in tasks if not t.state.is_completed()] == [
        (StateType.FAILED, name)], [t.state for t in tasks]
    logged = "\n".join(log.message for log in client.read_logs(
        LogFilter(flow_run_id={"any_": [flow_run_id]})))
    for said in (printed, logged):
        assert "Traceback" not in said and "unexpected exception" not in said, said[-3000:]


def assert_the_notice_is_gone(project: Path) -> None:
    """The page says nothing of the failed run after a good one, and neither does the page
    in the version that run committed (its md5 in ``git show HEAD:dvc.lock``, the file in
    the DVC cache): it says when the good run finished."""
    from pipelines.core.display import tehran_time

    finished = tehran_time(json.loads(
        (project / "reports/runs.jsonl").read_text().splitlines()[-1])["finished"])
    shown = front_page(project)
    assert NOTICE not in shown and f"last data run finished {finished}" in shown
    git = ["git", "-C", str(project)]
    subject = subprocess.run([*git, "log", "-1", "--format=%s"], capture_output=True,
                             text=True, check=True).stdout
    assert subject.startswith("Version from tsepipe-data"), subject
    lock = yaml.safe_load(subprocess.run([*git, "show", "HEAD:dvc.lock"], capture_output=True,
                                         text=True, check=True).stdout)
    [page] = [out for out in lock["stages"]["report"]["outs"]
              if out["path"] == "reports/index.html"]
    cached = project / ".dvc/cache/files/md5" / page["md5"][:2] / page["md5"][2:]
    committed = cached.read_text(encoding="utf-8")
    assert NOTICE not in committed and f"last data run finished {finished}" in committed


def triggered_run(deployment_id, timeout: float = 90) -> str:
    """The id of the run an automation made of the deployment (it waits for it)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = deployment_runs(client, deployment_id)
        if runs:
            return str(runs[0].id)
        time.sleep(1)
    raise AssertionError(f"no run of deployment {deployment_id} in {timeout:.0f} s")


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


def test_a_told_failure_is_a_failed_state_that_logs_no_traceback():
    """What the worker's engine does with a flow's final Failed state (raise its exception,
    log it with a traceback) is quiet for a failure the run told, not for a crash."""
    import logging
    import pickle

    from prefect.states import Completed, Failed

    from flows.runs import ToldFailure, as_final, failed, is_told, kind_of

    state = failed("FetchFailed", ["the feed answered 404", "nothing fetched"])
    assert state.is_failed() and state.name == "FetchFailed"
    final = as_final(state)  # a flow run's: Prefect's own name, the kind leads the message
    assert (final.name, final.message) == ("Failed", f"FetchFailed: {state.message}")
    assert is_told(final) and kind_of(final) == ("FetchFailed", state.message)
    assert as_final(final) is final and kind_of(state) == ("FetchFailed", state.message)
    assert state.message == "the feed answered 404\nnothing fetched"
    told = pickle.loads(pickle.dumps(state.data))  # a result Prefect may persist
    assert (told.name, told.message, str(told)) == (
        "FetchFailed", state.message, f"FetchFailed: {state.message}")
    for name in ("prefect.flow_runs", "prefect.engine"):  # run_flow's, the engine's
        logger = logging.getLogger(name)
        passed = [raised for raised in (told, ValueError("a bug")) if logger.filter(
            logger.makeRecord(name, logging.ERROR, __file__, 0, "Engine execution exited "
                              "with unexpected exception", (), (type(raised), raised, None)))]
        assert [type(raised) for raised in passed] == [ValueError], name  # the crash only
    assert isinstance(told, ToldFailure) and is_told(state)
    assert not is_told(Failed(message="a crash")) and not is_told(Completed())
