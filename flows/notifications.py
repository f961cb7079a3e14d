"""Notifications through Prefect automations: a failed deployment run, and drift.

``tsepipe notify --url URL`` (``ensure_notifications``) saves, on the Prefect server of
``PREFECT_API_URL``, a notification block named ``tsepipe`` that sends to URL, and two
automations that send through it:

- ``tsepipe: a deployment run failed``: a flow run of a tsepipe deployment ends in a
  Failed-type state (``BadData``, ``FetchFailed``, ``Busy``, ``Killed``, ``Failed``) or
  crashes; the message names the deployment, the run, the state and its message;
- ``tsepipe: drift found``: the event ``tsepipe.drift.found``, which the monitor emits
  (``announce_drift``) when the share of drifted features reaches its threshold; the
  message names the deployment, the run, the share and the most drifted features.

The block's type follows the URL: an ``http(s)://`` URL (other than a Slack incoming
webhook) gets a custom webhook block that POSTs JSON ``{"subject", "body", "text"}``
(``text``: what Slack-style chat webhooks read); a Slack webhook URL, or any other URL that
Apprise knows (``mailtos://user:password@smtp.example.com?to=ops@example.com`` for
e-mail, ``discord://``, ``tgram://``, ...), gets Prefect's Apprise-backed Slack block,
which hands a URL that is not Slack's to Apprise as it is. Run again, it updates the block
and the two automations in place (found by name) instead of adding more.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from prefect.automations import AutomationCore, EventTrigger, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from prefect.client.orchestration import get_client
from prefect.events import emit_event

BLOCK_NAME = "tsepipe"
FAILED_AUTOMATION = "tsepipe: a deployment run failed"
DRIFT_AUTOMATION = "tsepipe: drift found"
DRIFT_EVENT = "tsepipe.drift.found"
DRIFT_FEATURES = 5  # the most drifted features a drift message names
SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")

_DEPLOYMENT = ("{% if deployment %}{{ flow.name }}/{{ deployment.name }}"
               "{% else %}none (not a deployment run){% endif %}")
_RUN = "{% if flow_run %}{{ flow_run.name }} ({{ flow_run.id }}){% else %}none{% endif %}"
_LINK = "{% set link = flow_run|ui_url %}{% if link %}\n{{ link }}{% endif %}"

FAILED_SUBJECT = ("tsepipe: {{ flow.name }}/{{ deployment.name }} run {{ flow_run.name }} "
                  "ended {{ flow_run.state.name }}")
FAILED_BODY = (f"Deployment: {_DEPLOYMENT}\nFlow run: {_RUN}\n"
               "State: {{ flow_run.state.name }} ({{ flow_run.state.type.value }})\n"
               "Reason: {{ flow_run.state.message or '(no message)' }}" + _LINK)
DRIFT_SUBJECT = ("tsepipe: drift found, {{ event.payload.n_drifted }} of "
                 "{{ event.payload.n_features }} features (share "
                 "{{ event.payload.share|round(3) }})")
DRIFT_BODY = (f"Deployment: {_DEPLOYMENT}\nFlow run: {_RUN}\n"
              "Drift: {{ event.payload.n_drifted }} of {{ event.payload.n_features }} "
              "features drifted, share {{ event.payload.share|round(3) }} >= threshold "
              "{{ event.payload.threshold|round(3) }} (current days "
              "{{ event.payload.current_days }})\n"
              "Most drifted: {{ event.payload.top_drifted|join(', ') }}\n"
              "Monitor's decision: {{ event.payload.decision }}" + _LINK)


def notification_block(url: str) -> CustomWebhookNotificationBlock | SlackWebhook:
    """The notification block that sends to ``url`` (its type chosen by the URL, see the
    module's docstring); ``ValueError`` for a URL neither kind can send to."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname not in SLACK_HOSTS:
        if not parts.hostname:
            raise ValueError(f"{url!r}: no host in the webhook URL")
        return CustomWebhookNotificationBlock(
            name=BLOCK_NAME, url=url,
            json_data={"subject": "{{subject}}", "body": "{{body}}",
                       "text": "{{subject}}\n{{body}}"})
    from apprise import Apprise

    if not Apprise().add(url):
        raise ValueError(f"{url!r}: neither an http(s) webhook nor a URL Apprise can send "
                         "to (mailto://, mailtos://, a Slack webhook, ...)")
    return SlackWebhook(url=url)


def automations(block_id: Any) -> list[AutomationCore]:
    """The two automations that send through the block ``block_id``."""
    failed = EventTrigger(
        expect={"prefect.flow-run.*"},  # the event is named by the state (FetchFailed, ...)
        match={"prefect.resource.id": "prefect.flow-run.*",
               "prefect.state-type": ["FAILED", "CRASHED"]},
        match_related=[{"prefect.resource.role": "flow", "prefect.resource.name": "tsepipe-*"},
                       {"prefect.resource.role": "deployment"}],
        posture="Reactive", threshold=1)
    drift = EventTrigger(expect={DRIFT_EVENT}, posture="Reactive", threshold=1)
    return [
        AutomationCore(
            name=FAILED_AUTOMATION, trigger=failed,
            description="A flow run of a tsepipe deployment failed or crashed: notify.",
            actions=[SendNotification(block_document_id=block_id, subject=FAILED_SUBJECT,
                                      body=FAILED_BODY)]),
        AutomationCore(
            name=DRIFT_AUTOMATION, trigger=drift,
            description=f"The monitor found drift ({DRIFT_EVENT}): notify.",
            actions=[SendNotification(block_document_id=block_id, subject=DRIFT_SUBJECT,
                                      body=DRIFT_BODY)]),
    ]


def ensure_notifications(url: str) -> list[str]:
    """Save the block for ``url`` and create or update the two automations on the Prefect
    server of ``PREFECT_API_URL``. Returns one line per thing saved (the URL's scheme and
    host only: the rest may be a secret)."""
    block = notification_block(url)
    block_id = block.save(BLOCK_NAME, overwrite=True)
    parts = urlsplit(url)
    lines = [f"notification block {BLOCK_NAME!r} ({block.get_block_type_name()}): sends to "
             f"{parts.scheme}://{parts.hostname or '...'}"]
    with get_client(sync_client=True) as client:
        for automation in automations(block_id):
            found = client.read_automations_by_name(automation.name)
            if found:
                client.update_automation(found[0].id, automation)
                for duplicate in found[1:]:
                    client.delete_automation(duplicate.id)
                lines.append(f"automation {automation.name!r}: updated")
            else:
                client.create_automation(automation)
                lines.append(f"automation {automation.name!r}: created")
    return lines


def drift_event(record: dict[str, Any]) -> dict[str, Any]:
    """``emit_event``'s arguments for a monitoring record (``flows.operations``): the
    share, threshold, counts, the most drifted features, the current days, the decision."""
    current = record.get("current") or {}
    return {
        "event": DRIFT_EVENT,
        "resource": {"prefect.resource.id": "tsepipe.drift",
                     "prefect.resource.name": "drift"},
        "payload": {
            "share": record["share"], "threshold": record["threshold"],
            "n_drifted": record.get("n_drifted"), "n_features": record.get("n_features"),
            "top_drifted": list(record.get("top_drifted") or [])[:DRIFT_FEATURES],
            "current_days": f"{current.get('first_date')} .. {current.get('last_date')}",
            "decision": record.get("decision"), "reason": record.get("reason"),
        },
    }


def announce_drift(record: dict[str, Any]) -> None:
    """Emit ``tsepipe.drift.found`` when the record's share reaches its threshold (nothing
    below it). Inside a flow run Prefect relates the event to the run, its flow and its
    deployment, which the drift automation's message names."""
    if record["share"] >= record["threshold"]:
        emit_event(**drift_event(record))
