"""Sending texts through Twilio, with its HTTP API faked at the `requests` boundary: the
real twilio client builds the request and raises its own errors."""

import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
import responses
from django.utils import timezone

from contacts.models import Contact
from distributions.channels import sms_twilio
from distributions.models import Recipient
from distributions.services import recipient_send, recipients_sweep
from tests.distributions.conftest import TWILIO_ACCOUNT_SID, TWILIO_FROM_NUMBER
from tests.distributions.sms_builders import PHONE, make_sms_workflow, send_sms_case

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json"
SID = "SM" + "a" * 32


def twilio_ok(mock, sid: str = SID) -> None:
    mock.add(
        responses.POST,
        MESSAGES_URL,
        status=201,
        json={"sid": sid, "status": "queued", "to": PHONE, "from": TWILIO_FROM_NUMBER},
    )


def twilio_error(mock, status: int, code: int, message: str) -> None:
    mock.add(
        responses.POST,
        MESSAGES_URL,
        status=status,
        json={
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


@pytest.fixture
def twilio_api(twilio_settings):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _sent_form(mock, index: int = 0) -> dict[str, str]:
    body = mock.calls[index].request.body
    if isinstance(body, bytes):
        body = body.decode()
    return {key: values[0] for key, values in parse_qs(body).items()}


def _line() -> Recipient:
    return Recipient.objects.get()


def test_a_successful_send_stores_twilios_message_sid(client, admin_user, twilio_api):
    twilio_ok(twilio_api)
    run = send_sms_case(client, make_sms_workflow(owner=admin_user))
    assert run.task_runs.get().status == "succeeded"
    line = _line()
    assert line.get_status_display() == "Sent"
    assert line.provider_message_id == SID
    assert line.to_address == PHONE and line.phone == PHONE
    assert line.attempts == 1 and line.sent_at is not None
    sent = _sent_form(twilio_api)
    assert sent["To"] == PHONE
    assert sent["From"] == TWILIO_FROM_NUMBER
    assert sent["Body"] == (
        f"Hi Jonas, how did we do on case {line.message.snapshot['event_fields']['CaseNumber']}? "
        f"http://testserver/s/{line.link.token}/"
    )
    # Our own line id rides in the status callback URL, built from PUBLIC_BASE_URL.
    assert sent["StatusCallback"] == f"http://testserver/hooks/twilio/status/?line={line.pk}"


def test_a_messaging_service_replaces_the_from_number(client, admin_user, twilio_api, settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "b" * 32
    twilio_ok(twilio_api)
    send_sms_case(client, make_sms_workflow(owner=admin_user))
    sent = _sent_form(twilio_api)
    assert sent["MessagingServiceSid"] == "MG" + "b" * 32
    assert "From" not in sent


def test_the_twilio_client_has_a_request_timeout(twilio_settings):
    twilio_settings.TWILIO_TIMEOUT_SECONDS = 7
    assert sms_twilio.client().http_client.timeout == 7


def test_a_read_timeout_fails_the_line_instead_of_risking_a_second_text(
    client, admin_user, twilio_api
):
    twilio_api.add(responses.POST, MESSAGES_URL, body=requests.exceptions.ReadTimeout("slow"))
    send_sms_case(client, make_sms_workflow(owner=admin_user))
    line = _line()
    assert line.get_status_display() == "Failed"
    assert line.error.startswith("send outcome unknown")
    assert recipients_sweep() == 0
    assert len(twilio_api.calls) == 1


def test_a_5xx_is_retried_with_back_off_then_sent(client, admin_user, twilio_api):
    twilio_api.add(responses.POST, MESSAGES_URL, status=503, body="Service Unavailable")
    # A connect timeout never reached Twilio: safe to retry.
    twilio_api.add(
        responses.POST, MESSAGES_URL, body=requests.exceptions.ConnectTimeout("timed out")
    )
    twilio_ok(twilio_api)
    send_sms_case(client, make_sms_workflow(owner=admin_user))

    line = _line()
    assert line.get_status_display() == "Pending"
    assert line.error.startswith("temporary failure (attempt 1)")
    assert "Twilio HTTP 503" in line.error
    assert line.next_attempt_at > timezone.now()
    # Not due yet: nothing is sent.
    assert recipient_send(recipient_id=line.pk) == "not due"
    assert len(twilio_api.calls) == 1

    Recipient.objects.filter(pk=line.pk).update(next_attempt_at=timezone.now() - timedelta(1))
    assert recipients_sweep() == 1
    line.refresh_from_db()
    assert line.error.startswith("temporary failure (attempt 2)")
    assert "could not reach Twilio" in line.error
    first_delay = timedelta(minutes=1)
    assert line.next_attempt_at - timezone.now() > first_delay  # the back-off grows

    Recipient.objects.filter(pk=line.pk).update(next_attempt_at=timezone.now() - timedelta(1))
    recipients_sweep()
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert line.provider_message_id == SID
    assert line.error == "" and line.attempts == 3
    assert len(twilio_api.calls) == 3


def test_an_invalid_number_fails_permanently_with_twilios_message(client, admin_user, twilio_api):
    twilio_error(
        twilio_api, 400, 21211, "The 'To' number +14155550100 is not a valid phone number."
    )
    send_sms_case(client, make_sms_workflow(owner=admin_user))
    line = _line()
    assert line.get_status_display() == "Failed"
    assert line.error == (
        "Twilio error 21211: The 'To' number +14155550100 is not a valid phone number."
    )
    assert line.next_attempt_at is None
    assert recipients_sweep() == 0
    assert len(twilio_api.calls) == 1
    assert not Contact.objects.get().sms_opted_out


def test_21610_fails_permanently_and_opts_the_number_out(client, admin_user, twilio_api):
    twilio_error(
        twilio_api,
        400,
        21610,
        "Attempt to send to unsubscribed recipient",
    )
    workflow = make_sms_workflow(owner=admin_user)
    send_sms_case(client, workflow)
    line = _line()
    assert line.get_status_display() == "Failed"
    assert line.error == "Twilio error 21610: Attempt to send to unsubscribed recipient"
    contact = Contact.objects.get()
    assert contact.sms_opted_out
    assert "21610" in contact.sms_opted_out_source
    assert len(twilio_api.calls) == 1

    # The next case for the same person is refused before Twilio is called.
    run = send_sms_case(client, workflow)
    output = run.task_runs.get().output
    assert output["recipient_status"] == "Opted Out"
    assert output["reason"].startswith("contact opted out of SMS")
    assert len(twilio_api.calls) == 1


def test_the_api_lists_the_sms_line(client, admin_user, api_client, twilio_api):
    twilio_ok(twilio_api)
    send_sms_case(client, make_sms_workflow(owner=admin_user))
    distribution = api_client.get("/api/v1/distributions/").json()["results"][0]
    assert distribution["channel"] == "sms"
    assert distribution["counts"] == {"Sent": 1}
    rows = api_client.get(f"/api/v1/distributions/{distribution['id']}/recipients/").json()
    row = rows["results"][0]
    assert (row["channel"], row["status"], row["to_address"]) == ("sms", "Sent", PHONE)
    assert row["provider_message_id"] == SID
    assert json.dumps(row)  # plain JSON all through


def test_an_interrupted_twilio_send_is_not_repeated(client, admin_user, twilio_api):
    twilio_ok(twilio_api)
    send_sms_case(client, make_sms_workflow(owner=admin_user))
    line = _line()
    # The worker stopped during the API call: Twilio may or may not have the message,
    # and cannot be asked reliably, so it is not sent again (the status callback,
    # which carries the line id, settles it: test_sms_webhooks).
    Recipient.objects.filter(pk=line.pk).update(
        status="pending",
        provider_message_id="",
        sent_at=None,
        sending_started_at=timezone.now() - timedelta(hours=1),
    )
    assert recipient_send(recipient_id=line.pk) == "outcome unknown"
    line.refresh_from_db()
    assert line.get_status_display() == "Failed"
    assert line.outcome_unknown
    assert len(twilio_api.calls) == 1
