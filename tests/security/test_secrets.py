"""Secrets never reach the logs or any page: SessionId, provider credentials, SECRET_KEY.

A full flow runs with every logger at DEBUG: Salesforce messages carrying a live
SessionId (one accepted, one refused), the survey email through django-anymail's
Postmark backend (its HTTP API faked at the `requests` boundary, failing once),
provider webhooks with right and wrong credentials. Then every page and API response
a superuser and the owner can GET — admin pages included — is read. None may contain
a secret.
"""

from __future__ import annotations

import base64
import json
import logging

import pytest
import responses
from django.db import connection
from django.test import Client, TestCase

from tests.distributions.builders import case_message
from tests.figures import record
from tests.security.urls import all_url_cases, url_for
from tests.security.world import build_world
from tests.soap_builders import build_outbound_message
from xmflows.models import Delivery, Notification

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore::Warning:anymail")]

SESSION_SECRET = "AQ0AQBrandNewLiveSessionSecretZq9Xw3Lm7Pv2Rt5Ys8Uj1Kd4Gh6Bn0Ce3FiX"
SESSION_ID = f"00D8a000000XyZa!{SESSION_SECRET}"
POSTMARK_TOKEN = "pm-server-token-5f2b8c1e-secret"
WEBHOOK_PASSWORD = "webhook-Password-Nobody-Guesses-42"
TWILIO_TOKEN = "twilio-auth-token-9a8b7c6d5e4f-secret"
POSTMARK_URL = "https://api.postmarkapp.com/email"


@pytest.fixture
def configured(settings):
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": POSTMARK_TOKEN,
        "WEBHOOK_SECRET": f"postmark:{WEBHOOK_PASSWORD}",
    }
    settings.TWILIO_ACCOUNT_SID = "AC" + "3" * 32
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    return {
        "SessionId": SESSION_SECRET,
        "Postmark server token": POSTMARK_TOKEN,
        "email webhook password": WEBHOOK_PASSWORD,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "SECRET_KEY": settings.SECRET_KEY,
    }


def full_flow(settings, world) -> None:
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    path = f"/events/salesforce/{world.workflow.event.token}/"
    salesforce = Client(raise_request_exception=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as postmark:
        postmark.add(
            responses.POST,
            POSTMARK_URL,
            status=500,
            json={"ErrorCode": 500, "Message": "Internal server error"},
        )
        postmark.add(
            responses.POST,
            POSTMARK_URL,
            json={
                "ErrorCode": 0,
                "Message": "OK",
                "MessageID": "pm-message-1",
                "To": "a@example.org",
            },
        )
        body = case_message(ContactEmail="secret.flow@example.org")
        body = body.replace(
            b'<SessionId xsi:nil="true"/>', f"<SessionId>{SESSION_ID}</SessionId>".encode()
        )
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = salesforce.post(path, body, content_type="text/xml; charset=utf-8")
        assert response.status_code == 200
        # Refused (a Lead on a Case event): its excerpt is kept for the admin.
        refused = build_outbound_message(
            [{"id": "04l8a00000R000001AAR", "fields": {"Id": "00Q8a00001R0001AAB"}}],
            object_type="Lead",
            session_id=SESSION_ID,
        )
        response = salesforce.post(path, refused, content_type="text/xml; charset=utf-8")
        assert response.status_code == 500
        # The send failed once (HTTP 500): retry it, as the sweeper would.
        from distributions.models import Recipient
        from distributions.services import recipient_send

        for line in Recipient.objects.filter(status="pending"):
            Recipient.objects.filter(pk=line.pk).update(next_attempt_at=None)
            recipient_send(recipient_id=line.pk)
        # The token was in play: Postmark was called with it, twice.
        assert [call.request.headers["X-Postmark-Server-Token"] for call in postmark.calls] == [
            POSTMARK_TOKEN
        ] * 2
    webhooks = Client(raise_request_exception=False)
    event = json.dumps(
        {
            "RecordType": "Delivery",
            "MessageID": "pm-message-1",
            "Recipient": "secret.flow@example.org",
            "DeliveredAt": "2026-11-27T10:01:02Z",
            "Details": "ok",
            "Metadata": {},
        }
    )
    for password in (WEBHOOK_PASSWORD, "wrong-password"):
        auth = base64.b64encode(f"postmark:{password}".encode()).decode()
        webhooks.post(
            "/hooks/email/postmark/tracking/",
            event,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Basic {auth}",
        )
    webhooks.post(
        "/hooks/twilio/status/",
        {"MessageSid": "SM1", "MessageStatus": "sent"},
        HTTP_X_TWILIO_SIGNATURE="forged",
    )


def test_secrets_are_never_logged_nor_shown(settings, configured, caplog):
    # Every logger at DEBUG, SQL included (as with DEBUG=true), not only the root.
    for name in ["", *logging.root.manager.loggerDict]:
        caplog.set_level(logging.DEBUG, logger=name)
    connection.force_debug_cursor = True
    try:
        world = build_world(settings)
        full_flow(settings, world)
    finally:
        connection.force_debug_cursor = False
    logged = caplog.text + "\n".join(
        f"{record.getMessage()} {record.args!r}" for record in caplog.records
    )
    messages = [record.getMessage() for record in caplog.records]
    # The flow did log what happened: SQL, the failed send, the refusals.
    assert any("INSERT INTO" in message for message in messages)
    assert any("refused" in message for message in messages), messages[-20:]
    in_logs = [name for name, value in configured.items() if value in logged]
    assert not in_logs, f"in the logs: {in_logs}"

    pages = 0
    shown = []
    paths = {url_for(case, world) for case in all_url_cases()}
    paths |= {
        f"/admin/xmflows/delivery/{pk}/change/"
        for pk in Delivery.objects.values_list("pk", flat=True)
    }
    paths |= {
        f"/admin/xmflows/notification/{pk}/change/"
        for pk in Notification.objects.values_list("pk", flat=True)
    }
    paths |= {
        "/api/v1/deliveries/?outcome=rejected",
        "/reports/workflows/deliveries/?outcome=rejected",
    }
    for role in ("superuser", "owner"):
        client = world.client(role)
        for path in sorted(paths):
            response = client.get(path)
            if getattr(response, "streaming", False):
                content = b"".join(response.streaming_content)
            else:
                content = response.content
            text = content.decode(errors="replace")
            pages += 1
            shown += [f"{path}: {name}" for name, value in configured.items() if value in text]
    assert not shown, shown
    # The refused message is on record, with its SessionId redacted.
    rejected = Delivery.objects.get(outcome="rejected")
    assert "[redacted]" in rejected.body_excerpt
    record(
        "secrets in logs and pages",
        secrets=len(configured),
        log_records=len(caplog.records),
        pages_and_responses=pages,
        found=0,
    )
