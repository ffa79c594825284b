"""Provider tracking webhooks (anymail) and respondents' progress move lines forward only."""

import base64
import hashlib
import hmac
import json

import pytest
from django.test import Client

from contacts.models import Contact
from distributions.models import DeliveryEvent, EmailSuppression, OutboxMessage, Recipient
from distributions.services import UNKNOWN_OUTCOME
from tests.distributions.builders import make_distribution_workflow, send_case, task_of
from xmflows.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "hook:s3cret-pass"
MAILGUN_KEY = "key-mailgun-signing"
POSTMARK_URL = "/hooks/email/postmark/tracking/"
MAILGUN_URL = "/hooks/email/mailgun/tracking/"
POSTMARK_ID = "883953f4-6105-42a2-a16a-77a8eac79483"
MAILGUN_ID = "<20261127101500.1.ABCDEF@mg.example.com>"
ADDRESS = "jonas.berg@example.org"


@pytest.fixture(autouse=True)
def anymail_webhooks(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


def _auth(secret: str = SECRET) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def _sent_line(client, admin_user, provider_id: str = POSTMARK_ID) -> Recipient:
    """A line sent through the outbox, then given an ESP's message id."""
    send_case(client, make_distribution_workflow(owner=admin_user))
    Recipient.objects.update(provider_message_id=provider_id)
    return Recipient.objects.get()


def postmark(payload: dict, **auth):
    return Client().post(
        POSTMARK_URL, json.dumps(payload), content_type="application/json", **(auth or _auth())
    )


def postmark_delivery(message_id: str = POSTMARK_ID, **extra) -> dict:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": message_id,
        "Recipient": ADDRESS,
        "Tag": "",
        "DeliveredAt": "2026-11-27T10:01:02Z",
        "Details": "Test delivery webhook details",
        "Metadata": {},
        **extra,
    }


def postmark_open(message_id: str = POSTMARK_ID) -> dict:
    return {
        "RecordType": "Open",
        "MessageStream": "outbound",
        "FirstOpen": True,
        "Client": {"Name": "Gmail", "Company": "Google", "Family": "Gmail"},
        "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X 10"},
        "Platform": "WebMail",
        "UserAgent": "Mozilla/5.0",
        "ReadSeconds": 5,
        "Geo": {},
        "MessageID": message_id,
        "Metadata": {},
        "ReceivedAt": "2026-11-27T10:05:00Z",
        "Tag": "",
        "Recipient": ADDRESS,
    }


def postmark_bounce(kind: str = "HardBounce", message_id: str = POSTMARK_ID, **extra) -> dict:
    return {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": ADDRESS,
        "From": "surveys@example.com",
        "BouncedAt": "2026-11-27T10:02:00Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "How did we do, Jonas?",
        "Metadata": {},
        **extra,
    }


def postmark_complaint(message_id: str = POSTMARK_ID) -> dict:
    return postmark_bounce(
        "SpamComplaint",
        message_id,
        RecordType="SpamComplaint",
        ID=4323372036854775808,
        TypeCode=512,
        Description="The subscriber explicitly marked this message as spam.",
    )


MAILGUN_TOKEN = "a8ce0edb2dd8301dee6c2405235584e45aa9"


def mailgun(event_data: dict, *, token: str = MAILGUN_TOKEN, key: str = MAILGUN_KEY):
    timestamp = "1795774500"
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    body = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }
    return Client().post(MAILGUN_URL, json.dumps(body), content_type="application/json", **_auth())


def mailgun_event(event: str, **extra) -> dict:
    return {
        "event": event,
        "timestamp": 1795774500.25,
        "id": "CPgfbmQMTCKtHW6uIWtuVe",
        "recipient": ADDRESS,
        "tags": [],
        "user-variables": {},
        "message": {
            "headers": {
                "to": ADDRESS,
                "message-id": MAILGUN_ID.strip("<>"),
                "from": "surveys@example.com",
                "subject": "How did we do, Jonas?",
            }
        },
        **extra,
    }


# --- Postmark ---------------------------------------------------------------------------


def test_postmark_delivery_then_open(client, admin_user):
    line = _sent_line(client, admin_user)
    assert postmark(postmark_delivery()).status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Delivered"
    assert line.delivered_at.isoformat() == "2026-11-27T10:01:02+00:00"
    assert postmark(postmark_open()).status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Opened"
    assert line.opened_at.isoformat() == "2026-11-27T10:05:00+00:00"


def test_postmark_hard_bounce_suppresses_the_address(client, admin_user):
    line = _sent_line(client, admin_user)
    assert postmark(postmark_bounce()).status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Hard Bounce"
    assert "unable to deliver" in line.error
    suppression = EmailSuppression.objects.get()
    assert (suppression.address, suppression.reason) == (ADDRESS, "hard_bounce")
    # The next case for the same person is skipped with the reason.
    run = send_case(
        client, Workflow.objects.get(pk=line.distribution.workflow_id), CaseNumber="00009999"
    )
    assert task_of(run).output["reason"].startswith("address hard-bounced on ")
    assert OutboxMessage.objects.count() == 1


def test_postmark_complaint_suppresses_the_address(client, admin_user):
    line = _sent_line(client, admin_user)
    postmark(postmark_delivery())
    assert postmark(postmark_complaint()).status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Complaint"
    assert EmailSuppression.objects.get().reason == "complaint"


def test_postmark_soft_bounce_is_not_a_hard_one(client, admin_user):
    line = _sent_line(client, admin_user)
    postmark(postmark_bounce("SoftBounce", TypeCode=4096, Name="Soft bounce"))
    line.refresh_from_db()
    assert line.get_status_display() == "Soft Bounce"
    assert not EmailSuppression.objects.exists()
    postmark(postmark_delivery())  # it got through after all
    line.refresh_from_db()
    assert line.get_status_display() == "Delivered"


def test_postmark_unsubscribe_opts_the_contact_out(client, admin_user):
    line = _sent_line(client, admin_user)
    postmark(
        {
            "RecordType": "SubscriptionChange",
            "MessageID": POSTMARK_ID,
            "ServerID": 23,
            "MessageStream": "outbound",
            "ChangedAt": "2026-11-27T10:09:00Z",
            "Recipient": ADDRESS,
            "Origin": "Recipient",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
            "Tag": "",
            "Metadata": {},
        }
    )
    line.refresh_from_db()
    assert line.get_status_display() == "Opted Out"
    assert Contact.objects.get().email_opted_out is True


# --- Mailgun ------------------------------------------------------------------------------


def test_mailgun_delivered_opened_and_permanent_failure(client, admin_user):
    line = _sent_line(client, admin_user, provider_id=MAILGUN_ID)
    assert mailgun(mailgun_event("delivered"), token="t1" * 20).status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Delivered"
    assert mailgun(mailgun_event("opened"), token="t2" * 20).status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Opened"
    failed = mailgun_event(
        "failed",
        severity="permanent",
        reason="bounce",
        **{"delivery-status": {"code": 550, "message": "No such user", "description": "bounced"}},
    )
    assert mailgun(failed, token="t3" * 20).status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Hard Bounce"
    assert EmailSuppression.objects.filter(address=ADDRESS, reason="hard_bounce").exists()


def test_mailgun_temporary_failure_is_a_soft_bounce(client, admin_user):
    line = _sent_line(client, admin_user, provider_id=MAILGUN_ID)
    temporary = mailgun_event(
        "failed",
        severity="temporary",
        reason="generic",
        **{"delivery-status": {"code": 452, "message": "Mailbox full", "description": ""}},
    )
    mailgun(temporary)
    line.refresh_from_db()
    assert line.get_status_display() == "Soft Bounce"
    assert "Mailbox full" in line.error


def test_mailgun_complaint(client, admin_user):
    line = _sent_line(client, admin_user, provider_id=MAILGUN_ID)
    mailgun(mailgun_event("complained"))
    line.refresh_from_db()
    assert line.get_status_display() == "Complaint"
    assert EmailSuppression.objects.get().reason == "complaint"


def test_mailgun_bad_signature_is_refused(client, admin_user):
    line = _sent_line(client, admin_user, provider_id=MAILGUN_ID)
    response = mailgun(mailgun_event("delivered"), key="not-the-key")
    assert response.status_code == 400
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert not DeliveryEvent.objects.exists()


# --- Security, duplicates, order --------------------------------------------------------


@pytest.mark.parametrize("auth", [{}, _auth("hook:wrong"), _auth("someone:s3cret-pass")])
def test_wrong_or_missing_basic_auth_is_refused(client, admin_user, auth):
    line = _sent_line(client, admin_user)
    response = Client().post(
        POSTMARK_URL, json.dumps(postmark_bounce()), content_type="application/json", **auth
    )
    # anymail answers a failed webhook validation with 400 (SuspiciousOperation).
    assert response.status_code == 400
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert not EmailSuppression.objects.exists()
    assert not DeliveryEvent.objects.exists()


def test_webhooks_are_refused_until_a_secret_is_configured(client, admin_user, settings):
    line = _sent_line(client, admin_user)
    settings.ANYMAIL = {}
    response = Client().post(
        POSTMARK_URL, json.dumps(postmark_bounce()), content_type="application/json"
    )
    assert response.status_code == 403
    assert "ANYMAIL_WEBHOOK_SECRET" in response.content.decode()
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"


def test_a_redelivered_event_counts_once(client, admin_user):
    _sent_line(client, admin_user)
    assert postmark(postmark_bounce()).status_code == 200
    assert postmark(postmark_bounce()).status_code == 200
    assert postmark(postmark_delivery()).status_code == 200  # no ID: the payload is its identity
    assert postmark(postmark_delivery()).status_code == 200
    assert DeliveryEvent.objects.count() == 2


def test_events_out_of_order_never_move_a_line_back(client, admin_user):
    line = _sent_line(client, admin_user)
    postmark(postmark_open())
    postmark(postmark_delivery())  # arrives late
    line.refresh_from_db()
    assert line.get_status_display() == "Opened"
    assert line.delivered_at is not None  # the fact is kept
    postmark(postmark_bounce())
    postmark(postmark_delivery(DeliveredAt="2026-11-27T11:00:00Z"))
    line.refresh_from_db()
    assert line.get_status_display() == "Hard Bounce"


def test_an_event_for_an_unknown_message_is_recorded_and_answered_200(client, admin_user):
    _sent_line(client, admin_user)
    response = postmark(postmark_delivery("00000000-0000-0000-0000-000000000000"))
    assert response.status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.recipient is None
    assert event.outcome.startswith("ignored")
    assert Recipient.objects.get().get_status_display() == "Sent"


def test_a_delivery_settles_a_send_whose_outcome_was_unknown(client, admin_user):
    line = _sent_line(client, admin_user, provider_id="")
    Recipient.objects.filter(pk=line.pk).update(
        status="failed", error=UNKNOWN_OUTCOME, outcome_unknown=True
    )
    payload = postmark_delivery(Metadata={"xmflows_recipient": str(line.pk)})
    assert postmark(payload).status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Delivered"
    assert line.provider_message_id == POSTMARK_ID
    assert line.error == ""
    assert line.outcome_unknown is False


# --- Respondents' progress (surveys signals) ------------------------------------------------


def test_survey_started_and_finished_follow_the_respondent(client, admin_user):
    line = _sent_line(client, admin_user)
    respondent = Client()
    respondent.get(f"/s/{line.link.token}/")
    line.refresh_from_db()
    assert line.get_status_display() == "Survey Started"
    assert line.started_at is not None
    assert line.opened_at is not None  # following the link proves the email was opened
    questions = list(line.survey.questions.order_by("position"))
    respondent.post(f"/s/{line.link.token}/", {f"q{questions[0].pk}": "10", "action": "finish"})
    line.refresh_from_db()
    assert line.get_status_display() == "Survey Finished"
    assert line.finished_at is not None
    assert line.response_id == line.link.response.pk
    postmark(postmark_open())  # a late open does not undo it
    postmark(postmark_delivery())
    line.refresh_from_db()
    assert line.get_status_display() == "Survey Finished"


def test_the_opt_out_link_opts_out_the_line_and_the_contact(client, admin_user):
    line = _sent_line(client, admin_user)
    assert Client().post(f"/o/{line.link.token}/").status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Opted Out"
    contact = Contact.objects.get()
    assert contact.email_opted_out is True
    assert contact.email_opted_out_source == "unsubscribe link"
    run = send_case(
        client, Workflow.objects.get(pk=line.distribution.workflow_id), CaseNumber="00008888"
    )
    assert task_of(run).output["recipient_status"] == "Opted Out"
    assert OutboxMessage.objects.count() == 1
