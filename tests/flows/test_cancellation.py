"""A flow run cancelled through the Prefect API leaves no stage running.

A real ``prefect server``, the training deployment from ``prefect.yaml`` and a process
worker: the run is cancelled (``prefect flow-run cancel``, what the UI's Cancel does) while
its evaluate stage trains. The worker sends the flow's process SIGTERM; the flow passes it
to the stage's process group (``flows.dvc_commands.dvc``), so no ``dvc repro`` or
``tsepipe`` process of the project is left, the run ends Cancelled, and the next run goes
through (no DVC lock held).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import psutil
import pytest
import yaml

from tests.conftest import BIN, env, isolated, run
from tests.e2e.test_signals import GONE_WITHIN_S, left_over, slow_evaluate
from tests.support.prefect_server import prefect_server, run_in

pytestmark = pytest.mark.slow


def project_processes(project) -> list[psutil.Process]:
    """The processes working in the project: DVC and its stages (not the worker)."""
    found = []
    for process in psutil.process_iter(["cwd", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.info["cwd"] == str(project) and ("dvc" in command or "tsepipe" in command
                                                    or "multiprocessing" in command
                                                    or "pipelines.modelling.fitting" in command):
            found.append(process)
    return found


def test_a_cancelled_flow_run_leaves_no_stage_running(trained_project, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    project = trained_project
    slow_evaluate(project)  # a retraining, cancelled while it trains
    prefect = str(BIN / "prefect")
    with prefect_server(tmp_path) as server, \
            temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):
        run_in([prefect, "work-pool", "create", "gpu", "--type", "process"], project, server)
        run_in([prefect, "--no-prompt", "deploy", "--name", "train"], project, server)
        ran = run_in([prefect, "deployment", "run", "tsepipe-train/train", "--param",
                      "push_remote=false", "--param", "push_git=false"], project, server)
        flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", ran.stdout).group(1)
        log = tmp_path / "worker.log"
        worker = subprocess.Popen([prefect, "worker", "start", "--pool", "gpu"], cwd=tmp_path,
                                  env=server | {"TSEPIPE_PROJECT_DIR": str(project)},
                                  stdout=log.open("w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not any("tsepipe evaluate" in " ".join(p.cmdline())
                          for p in project_processes(project)):
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                assert worker.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
            time.sleep(5)  # training
            stages = project_processes(project)
            run_in([prefect, "flow-run", "cancel", flow_run_id], project, server)
            assert left_over(stages) == [], log.read_text()[-3000:]
            with get_client(sync_client=True) as client:
                deadline = time.monotonic() + GONE_WITHIN_S
                while client.read_flow_run(flow_run_id).state.type != StateType.CANCELLED:
                    assert time.monotonic() < deadline, (
                        f"{client.read_flow_run(flow_run_id).state}\n"
                        + log.read_text()[-3000:])
                    time.sleep(1)
            assert project_processes(project) == []
        finally:
            worker.send_signal(signal.SIGINT)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()

    # the next run goes through: nothing of the cancelled one holds the project (DVC runs a
    # stage: the track record's chart changed; the walk-forward is the trained one again)
    run(["git", "checkout", "HEAD~1", "--", "params.yaml"], project)  # fast training again
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["forecast"]["record_recent"] = 30
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = subprocess.run([str(BIN / "tsepipe"), "run", "--no-push"], cwd=project,
                          env=isolated(tmp_path) | {"PATH": env()["PATH"]},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "forecast for" in done.stdout and "nothing changed" not in done.stdout
