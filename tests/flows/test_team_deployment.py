"""A team's deployment: workers in empty folders, the chain by triggers, GPU training apart.

Everything real, on 127.0.0.1: PostgreSQL (Debian's), a ``prefect server`` on it, a bare
git repository as the git remote, moto's S3 server as the DVC remote, a TSETMC look-alike,
and two process workers started in two empty folders, one per pool. The project is
pushed once (trained, so that a report has a champion), its last 60 days in another regime
so that the monitor asks for training, and a training parameter changed since, so the
training run makes new models. Then: data -> (trigger) report -> (trigger) monitor ->
training on the ``gpu`` worker -> the next report on the ``cpu`` worker forecasts with
the new models. Every wait is bounded. What the Prefect UI shows is checked too: the
deployments' tags, the runs' and tasks' names, the artifacts' markdown.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import subprocess
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.conftest import BIN, env
from tests.flows.test_monitoring import with_new_days
from tests.support.postgres import postgres_database
from tests.support.prefect_server import prefect_server, run_in
from tests.support.s3_server import bucket_keys, s3_server
from tests.support.tsetmc_server import TEDPIX_CODE, TsetmcServer

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 420  # seconds for one flow run to finish once it is due
VERSION_FILES = {"dvc.lock", "data/raw.dvc", "params.yaml", "dvc.yaml"}  # and metrics/


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip()


def set_params(project: Path, changes: dict) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in changes.items():
        params[section] |= values
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False,
                                                        allow_unicode=True))


def wait_for_run(client, deployment_name: str, after: float, workers: dict, timeout: float
                 = RUN_TIMEOUT, exclude: tuple = ()) -> object:
    """The first run of ``deployment_name`` created after ``after`` (epoch s), once final."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])),
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False)))
        runs = sorted((r for r in runs if r.created.timestamp() >= after and r.id not in exclude),
                      key=lambda r: r.created)
        if runs and runs[0].state.is_final():
            return runs[0]
        for name, (process, log) in workers.items():
            assert process.poll() is None, f"the {name} worker died:\n{log.read_text()[-3000:]}"
        time.sleep(2)
    logs = "\n".join(f"--- {name}\n{log.read_text()[-4000:]}" for name, (_, log) in
                     workers.items())
    raise AssertionError(f"no finished run of {deployment_name} in {timeout} s\n{logs}")


def test_two_workers_in_empty_folders_run_the_chain(project, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    prefect, tsepipe, dvc = str(BIN / "prefect"), str(BIN / "tsepipe"), str(BIN / "dvc")
    (tmp_path / "server").mkdir()
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(postgres_database())
        server = stack.enter_context(prefect_server(tmp_path / "server", database))
        s3 = stack.enter_context(s3_server(tmp_path))
        tsetmc = stack.enter_context(TsetmcServer())
        stack.enter_context(temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}))
        team = server | s3

        # the project as a team keeps it: trained once, data and models in S3, git pushed
        # the last 60 days in another regime: the monitor finds drift and asks for training
        run_in([tsepipe, "sample-data", "--out", "data/raw", "--days", "300",
                "--regime-change-days", "60"], project, team)
        set_params(project, {
            "drift": {"threshold": 0.01},
            "fetch": {"base_url": tsetmc.base_url, "pace_seconds": 0.0,
                      "indices": {"IRX6XTEST001": TEDPIX_CODE}}})
        configured = run_in([tsepipe, "remote"], project, team)
        assert "s3://tsepipe/dvc" in configured.stdout
        run_in([dvc, "add", "--quiet", "data/raw"], project, team)
        run_in([dvc, "repro"], project, team, timeout=600)
        run_in([dvc, "push"], project, team, timeout=300)
        # since then, new days (the exports in the version pushed): the data run merges
        # them, and the monitor finds labelled days the champion has not seen
        with_new_days(project / "data/raw", tmp_path, dt.date(2025, 10, 31))
        run_in([dvc, "add", "--quiet", "data/raw"], project, team)
        run_in([dvc, "push"], project, team, timeout=300)
        first_card = json.loads((project / "models/lstm/card.json").read_text())
        spec = yaml.safe_load((project / "params.yaml").read_text())["train"]["models"]
        set_params(project, {"train": {"models": spec | {
            "lstm": spec["lstm"] | {"epochs": spec["lstm"]["epochs"] + 1}}}})
        branch = git(project, "branch", "--show-current")
        origin = tmp_path / "origin.git"
        subprocess.run(["git", "init", "--quiet", "--bare", f"--initial-branch={branch}",
                        str(origin)], check=True)
        git(project, "add", "-A")
        git(project, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "--quiet", "-m",
            "the team's project: trained once, lstm's epochs changed since")
        git(project, "remote", "add", "origin", str(origin))
        git(project, "push", "--quiet", "origin", branch)
        pushed_commits = int(git(origin, "rev-list", "--count", branch))

        for pool in ("cpu", "gpu"):
            run_in([prefect, "work-pool", "create", pool, "--type", "process"], project, team)
        run_in([prefect, "--no-prompt", "deploy", "--all"], project, team)

        # two workers, each in an empty folder of its own: no checkout, no data
        workers = {}
        for pool in ("cpu", "gpu"):
            folder = tmp_path / f"{pool}-worker"
            folder.mkdir()
            log = tmp_path / f"{pool}-worker.log"
            worker_env = team | {"TSEPIPE_GIT_URL": str(origin),
                                 "TSEPIPE_WORKER_DIR": str(folder / "checkouts")}
            worker_env.pop("TSEPIPE_PROJECT_DIR", None)
            process = subprocess.Popen(
                [prefect, "worker", "start", "--pool", pool, "--name", f"{pool}-worker"],
                cwd=folder, env=env() | worker_env, stdout=log.open("w"),
                stderr=subprocess.STDOUT, start_new_session=True)
            stack.callback(_stop, process)
            workers[pool] = (process, log)

        started = time.time() - 1
        run_in([prefect, "deployment", "run", "tsepipe-data/data"], project, team)
        with get_client(sync_client=True) as client:
            runs = {}
            for name in ("data", "report", "monitor", "train"):
                runs[name] = wait_for_run(client, name, started, workers)
                assert runs[name].state.is_completed(), (name, runs[name].state)
            assert runs["train"].work_pool_name == "gpu"
            assert {runs[n].work_pool_name for n in ("data", "report", "monitor")} == {"cpu"}
            # the next daily report, on the cpu worker, after training
            again = time.time()
            run_in([prefect, "deployment", "run", "tsepipe-report/report"], project, team)
            runs["next report"] = wait_for_run(client, "report", again, workers,
                                               exclude=(runs["report"].id,))
            assert runs["next report"].state.is_completed(), runs["next report"].state
            tasks = {t.name for t in client.read_task_runs() if t.flow_run_id == runs["data"].id}
            report_artifact = next(a for a in client.read_artifacts()
                                   if a.key == "report" and a.flow_run_id == runs["train"].id)
            tags = {d.name: set(d.tags) for d in client.read_deployments()}
            chain = {run.id for run in runs.values()}
            chain_tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=list(chain))))
            # run_deployment's placeholder for the training run (Prefect names it at random)
            placeholders = {run.parent_task_run_id for run in runs.values()}
            markdown = [f"{a.data}\n{a.description or ''}" for a in client.read_artifacts()
                        if a.flow_run_id in chain]
            keys = bucket_keys(s3["TSEPIPE_S3_ENDPOINT_URL"])

    # each stage is a task run named after it, every other task by what it does
    assert {"ingest", "validate", "merge", "dvc push", "git commit", "fetch"} <= tasks, tasks
    generated = [t.name for t in chain_tasks if t.id not in placeholders
                 and re.fullmatch(r"\w+-[0-9a-f]{3}", t.name)]
    assert len(chain_tasks) > len(tasks) and generated == [], generated
    # the deployments are tagged; each run is named by its deployment and Tehran day
    assert tags == {"data": {"tsepipe", "data", "cpu"}, "report": {"tsepipe", "report", "cpu"},
                    "monitor": {"tsepipe", "monitor", "cpu"},
                    "train": {"tsepipe", "train", "gpu"}}, tags
    for name, run in runs.items():
        day = run.expected_start_time.astimezone(ZoneInfo("Asia/Tehran"))
        assert run.name == f"{name.split()[-1]} {day:%Y-%m-%d}", (name, run.name)
    # the artifacts show names as written (backslash escapes, no HTML entities); the report
    # carries the forecast and the leaderboard itself
    assert markdown and not [text for text in markdown if "&#" in text]
    report = str(report_artifact.data)
    for part in ("- call for ", "P(up) ", "- champion: ", "- data day: ",
                 "## Leaderboard", "(champion) |", "| always\\_up | baseline |"):
        assert part in report, (part, report)
    # the report artifact points at the published reports, not at a path on the worker
    assert "file://" not in str(report_artifact.data)
    assert "s3://tsepipe/dvc" in str(report_artifact.data)
    assert keys, "nothing in the S3 remote"
    # every changed version is one commit of the version files only, pushed to origin
    log = git(origin, "log", "--format=%H %s", branch).splitlines()
    new = log[:len(log) - pushed_commits]
    flows = [re.search(r"from (tsepipe-\w+):", line).group(1) for line in new]
    assert {"tsepipe-data", "tsepipe-report", "tsepipe-train"} <= set(flows), log
    for line in new:
        changed = set(git(origin, "show", "--name-only", "--format=", line.split()[0]).split())
        assert all(name in VERSION_FILES or name.startswith("metrics/")
                   for name in changed), (line, changed)
    # the next report on the cpu worker forecast with the models trained on the gpu worker
    cpu = next((tmp_path / "cpu-worker/checkouts").iterdir())
    gpu = next((tmp_path / "gpu-worker/checkouts").iterdir())
    gpu_card = json.loads((gpu / "models/lstm/card.json").read_text())
    assert gpu_card != first_card
    assert json.loads((cpu / "models/lstm/card.json").read_text()) == gpu_card
    cpu_forecast = json.loads((cpu / "forecasts/latest.json").read_text())
    gpu_forecast = json.loads((gpu / "forecasts/latest.json").read_text())
    assert cpu_forecast["model_version"] == gpu_forecast["model_version"]
    train_commit = next(line.split()[0] for line in new if "from tsepipe-train:" in line)
    assert git(cpu, "merge-base", "--is-ancestor", train_commit, "HEAD") == ""
    # the history, from a fresh clone of the git remote
    clone = tmp_path / "reviewer"
    subprocess.run(["git", "clone", "--quiet", str(origin), str(clone)], check=True)
    listed = run_in([tsepipe, "history", "--json"], clone, env())
    assert {v["flow"] for v in json.loads(listed.stdout)} >= {"tsepipe-data", "tsepipe-train"}


def _stop(process: subprocess.Popen) -> None:
    import os
    import signal

    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
