"""Notifications (flows/notifications.py): the block a URL gets; against a real `prefect
server` (slow), a failed run of the data deployment under a process worker and a drift
finding in a run of the monitor deployment each send one message through the automations
of `tsepipe notify`, to a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

from flows.notifications import DRIFT_AUTOMATION, FAILED_AUTOMATION, notification_block
from tests.conftest import BIN, ROOT
from tests.support.prefect_server import free_port, prefect_server, run_in

# A run of the monitor deployment (created as the UI's "Run" would, executed here by
# Prefect's flow engine) that finds drift the way monitoring_flow tells it: announce_drift
# with its record. Below the threshold, nothing is sent.
DRIFT_RUN = """
import json
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from flows.notifications import announce_drift

RECORD = {"share": 0.75, "threshold": 0.5, "n_drifted": 3, "n_features": 4,
          "top_drifted": ["IRX6XTPI0009__logret", "IRX6XS300003__range", "IRX6XSNT0009__logret"],
          "current": {"first_date": "2025-06-30", "last_date": "2025-09-23", "rows": 60},
          "decision": "retrain", "reason": "3 of 4 features drifted"}

@flow(name="tsepipe-monitor")
def finds_drift(record: dict):
    announce_drift(record | {"share": 0.25})  # below the threshold: no event
    announce_drift(record)

with get_client(sync_client=True) as client:
    deployment = client.read_deployment_by_name("tsepipe-monitor/monitor")
    flow_run = client.create_flow_run_from_deployment(deployment.id, parameters={})
state = run_flow(finds_drift, flow_run=flow_run, parameters={"record": RECORD},
                 return_type="state")
with get_client(sync_client=True) as client:
    flow_run = client.read_flow_run(flow_run.id)
print("RUN " + json.dumps({"id": str(flow_run.id), "name": flow_run.name,
                           "state": state.type.value}))
"""


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict]]]:
    """A webhook on 127.0.0.1: yields its URL and the list of JSON bodies POSTed to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def wait_for(received: list[dict], count: int, timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while len(received) < count:
        assert time.monotonic() < deadline, f"{why}: {len(received)} messages: {received}"
        time.sleep(0.5)


def test_the_url_chooses_the_block():
    webhook = notification_block("https://ops.example.com/hooks/tsepipe")
    assert isinstance(webhook, CustomWebhookNotificationBlock)
    assert webhook.json_data["body"] == "{{body}}"
    for apprise_url in ("https://hooks.slack.com/services/T000/B000/XXXX",
                        "mailtos://user:password@smtp.example.com?to=ops@example.com"):
        assert isinstance(notification_block(apprise_url), SlackWebhook)
    with pytest.raises(ValueError, match="neither an http"):
        notification_block("nosuch://where")


def test_notify_says_what_is_missing_in_one_line():
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from typer.testing import CliRunner

    from tsepipe.cli import app

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        unset = CliRunner().invoke(app, ["notify", "--url", "https://ops.example.com/hook"])
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        bad = CliRunner().invoke(app, ["notify", "--url", "nosuch://where"])
    assert (unset.exit_code, bad.exit_code) == (2, 2)
    assert unset.output.startswith("error: PREFECT_API_URL is not set"), unset.output
    assert bad.output.startswith("error: --url: 'nosuch://where': neither"), bad.output
    assert len((unset.output + bad.output).splitlines()) == 2


@pytest.mark.slow
def test_a_failed_run_and_drift_each_send_one_message(project, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.notifications import ensure_notifications

    # the data deployment fetches first: here from a port nobody listens on (FetchFailed)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["fetch"] |= {"base_url": f"http://127.0.0.1:{free_port()}/api", "retries": 0,
                        "pace_seconds": 0.0, "indices": {"IRX6XTEST001": 1}}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    prefect = str(BIN / "prefect")
    timings, started = {}, time.monotonic()
    with webhook_receiver() as (url, received), prefect_server(tmp_path) as server, \
            temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):
        run_in([prefect, "work-pool", "create", "cpu", "--type", "process"], project, server)
        run_in([prefect, "--no-prompt", "deploy", "--name", "data", "--name", "monitor"],
               project, server)
        told = run_in([str(BIN / "tsepipe"), "notify", "--url", url], project, server)
        assert "automation 'tsepipe: drift found': created" in told.stdout, told.stdout
        # run again (here in-process): updated in place, nothing added
        assert ensure_notifications(url)[1:] == [f"automation {FAILED_AUTOMATION!r}: updated",
                                                 f"automation {DRIFT_AUTOMATION!r}: updated"]
        with get_client(sync_client=True) as client:
            names = [a.name for a in client.read_automations()]
            assert sorted(n for n in names if n.startswith("tsepipe:")) == sorted(
                [FAILED_AUTOMATION, DRIFT_AUTOMATION]), names
            deployment = client.read_deployment_by_name("tsepipe-data/data")
            failed_run = client.create_flow_run_from_deployment(deployment.id)
        timings["server, deploy, notify"] = time.monotonic() - started

        worker = run_in([prefect, "worker", "start", "--pool", "cpu", "--run-once"], tmp_path,
                        server | {"TSEPIPE_PROJECT_DIR": str(project)}, timeout=300)
        with get_client(sync_client=True) as client:
            failed_run = client.read_flow_run(failed_run.id)  # named when it ran
            state = failed_run.state
        assert (state.type, state.message[:13]) == (StateType.FAILED, "FetchFailed: "), (
            f"{state}\n{worker.stdout[-3000:]}\n{worker.stderr[-3000:]}")
        wait_for(received, 1, 60, "the failed run's message")
        timings["failed data run, message"] = time.monotonic() - started

        drift = run_in([str(BIN / "python"), "-c", DRIFT_RUN], ROOT, server)
        monitor_run = json.loads(next(line for line in drift.stdout.splitlines()
                                      if line.startswith("RUN ")).removeprefix("RUN "))
        assert monitor_run["state"] == "COMPLETED", drift.stdout + drift.stderr
        wait_for(received, 2, 60, "the drift message")
        time.sleep(3)  # a duplicate would come within this
        timings["drift, message"] = time.monotonic() - started
    assert len(received) == 2, received
    failed, drifted = (message["text"] for message in received)
    for line in ("Deployment: tsepipe-data/data",
                 f"Flow run: {failed_run.name} ({failed_run.id})",
                 "State: Failed (FAILED)", "Reason: FetchFailed: ", "IRX6XTEST001"):
        assert line in failed, failed
    assert failed.startswith(f"tsepipe: tsepipe-data/data run {failed_run.name} ended "
                             "Failed\n"), failed
    for line in ("tsepipe: drift found, 3 of 4 features (share 0.75)",
                 "Deployment: tsepipe-monitor/monitor",
                 f"Flow run: {monitor_run['name']} ({monitor_run['id']})",
                 "share 0.75 >= threshold 0.5", "current days 2025-06-30 .. 2025-09-23",
                 "Most drifted: IRX6XTPI0009__logret, IRX6XS300003__range, "
                 "IRX6XSNT0009__logret", "Monitor's decision: retrain"):
        assert line in drifted, drifted
    print(" ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
