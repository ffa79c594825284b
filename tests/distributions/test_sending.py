"""Sending a line once: idempotent jobs, provider failures, back-off, interrupted sends.

The ESP is anymail's real Postmark backend with its HTTP API faked at the `requests`
boundary, so errors arrive exactly as anymail raises them.
"""

import json
from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_set_opt_out
from distributions import jobs
from distributions.channels import email as email_channel
from distributions.models import EmailSuppression, OutboxMessage, Recipient
from distributions.services import UNKNOWN_OUTCOME, recipient_send, recipients_sweep
from surveys.models import Survey, SurveyStatus
from tests.distributions.builders import make_distribution_workflow, send_case

pytestmark = pytest.mark.django_db(transaction=True)

POSTMARK_URL = "https://api.postmarkapp.com/email"
MESSAGE_ID = "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"


def postmark_ok(mock, message_id: str = MESSAGE_ID) -> None:
    mock.add(
        responses.POST,
        POSTMARK_URL,
        json={
            "To": "jonas.berg@example.org",
            "SubmittedAt": "2026-11-27T10:00:00.0000000Z",
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        },
    )


@pytest.fixture
def postmark(settings):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token"}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _line() -> Recipient:
    return Recipient.objects.get()


def _make_due(line: Recipient) -> None:
    Recipient.objects.filter(pk=line.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_the_email_postmark_receives(client, admin_user, postmark):
    postmark_ok(postmark)
    send_case(client, make_distribution_workflow(owner=admin_user))
    assert len(postmark.calls) == 1
    sent = json.loads(postmark.calls[0].request.body)
    line = _line()
    assert sent["From"] == "Customer Care <surveys@example.com>"
    assert sent["To"] == "jonas.berg@example.org"
    assert sent["ReplyTo"] == "care@example.com"
    assert sent["Subject"] == "How did we do, Jonas?"
    assert f'href="http://testserver/s/{line.link.token}/"' in sent["HtmlBody"]
    assert f"Take the survey (http://testserver/s/{line.link.token}/)" in sent["TextBody"]
    headers = {header["Name"]: header["Value"] for header in sent["Headers"]}
    assert headers["List-Unsubscribe"] == f"<http://testserver/o/{line.link.token}/>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers[email_channel.RECIPIENT_HEADER] == str(line.pk)
    assert sent["Metadata"] == {"xmflows_recipient": str(line.pk)}
    assert sent["TrackOpens"] is True
    assert line.get_status_display() == "Sent"
    assert line.provider_message_id == MESSAGE_ID
    assert line.sent_at is not None and line.attempts == 1


def test_running_the_send_job_twice_sends_once(client, admin_user, postmark):
    postmark_ok(postmark)
    send_case(client, make_distribution_workflow(owner=admin_user))
    line = _line()
    assert jobs.send_recipient(line.pk) == "already sent"
    assert jobs.send_recipient(line.pk) == "already sent"
    assert recipients_sweep() == 0
    assert len(postmark.calls) == 1


def test_running_the_send_job_twice_sends_once_with_the_outbox(client, admin_user):
    send_case(client, make_distribution_workflow(owner=admin_user))
    line = _line()
    jobs.send_recipient(line.pk)
    recipient_send(recipient_id=line.pk)
    assert OutboxMessage.objects.count() == 1


def test_a_line_being_sent_elsewhere_is_left_alone(client, admin_user, postmark):
    send_case(client, make_distribution_workflow(owner=admin_user, send_delay_minutes=5))
    line = _line()
    Recipient.objects.filter(pk=line.pk).update(
        scheduled_for=timezone.now(), sending_started_at=timezone.now()
    )
    assert recipient_send(recipient_id=line.pk) == "being sent"
    assert len(postmark.calls) == 0


def test_temporary_failures_retry_with_back_off_then_succeed(client, admin_user, postmark):
    postmark.add(responses.POST, POSTMARK_URL, status=503, body="Service Unavailable")
    postmark.add(responses.POST, POSTMARK_URL, body=requests.exceptions.ConnectTimeout("timed out"))
    postmark_ok(postmark)
    send_case(client, make_distribution_workflow(owner=admin_user))

    line = _line()
    assert line.get_status_display() == "Pending"
    assert line.attempts == 1
    assert line.sending_started_at is None
    assert "temporary failure (attempt 1)" in line.error
    assert "503" in line.error
    delay = line.next_attempt_at - timezone.now()
    assert timedelta(seconds=50) < delay <= timedelta(minutes=1)
    assert recipients_sweep() == 0  # back-off not over: nothing queued, nothing sent
    assert len(postmark.calls) == 1

    _make_due(line)
    assert recipients_sweep() == 1
    line.refresh_from_db()
    assert line.attempts == 2
    assert "temporary failure (attempt 2)" in line.error
    assert "timed out" in line.error
    delay = line.next_attempt_at - timezone.now()
    assert timedelta(minutes=1, seconds=50) < delay <= timedelta(minutes=2)  # doubled

    _make_due(line)
    recipients_sweep()
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert line.provider_message_id == MESSAGE_ID
    assert line.error == ""
    assert line.attempts == 3
    assert len(postmark.calls) == 3


def test_a_read_timeout_fails_visibly_instead_of_risking_a_second_send(
    client, admin_user, postmark
):
    # The provider had the request and may have accepted it: never sent again.
    postmark.add(responses.POST, POSTMARK_URL, body=requests.exceptions.ReadTimeout("read"))
    send_case(client, make_distribution_workflow(owner=admin_user))
    line = _line()
    assert line.get_status_display() == "Failed"
    assert line.error.startswith("send outcome unknown")
    assert line.next_attempt_at is None
    _make_due(line)
    assert recipients_sweep() == 0
    assert len(postmark.calls) == 1


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (400, {"ErrorCode": 400, "Message": "Sender signature not confirmed"}, "not confirmed"),
        (401, {"ErrorCode": 10, "Message": "Bad or missing API token"}, "Bad or missing API"),
        (422, {"ErrorCode": 300, "Message": "Invalid 'From' address"}, "Invalid 'From'"),
    ],
)
def test_a_client_error_fails_the_line_with_the_providers_message(
    client, admin_user, postmark, status, payload, expected
):
    postmark.add(responses.POST, POSTMARK_URL, status=status, json=payload)
    send_case(client, make_distribution_workflow(owner=admin_user))
    line = _line()
    assert line.get_status_display() == "Failed"
    assert expected in line.error
    assert line.next_attempt_at is None
    _make_due(line)
    assert recipients_sweep() == 0
    assert len(postmark.calls) == 1


def test_a_refused_recipient_fails_the_line(client, admin_user, postmark):
    postmark.add(
        responses.POST,
        POSTMARK_URL,
        status=422,
        json={
            "ErrorCode": 406,
            "Message": "You tried to send to a recipient that has been "
            "marked as inactive. Found inactive addresses: jonas.berg@example.org. "
            "Inactive recipients are ones that have generated a hard bounce or a spam "
            "complaint.",
        },
    )
    send_case(client, make_distribution_workflow(owner=admin_user))
    line = _line()
    assert line.get_status_display() == "Failed"
    assert line.error


def test_temporary_failures_give_up_after_24_hours(client, admin_user, postmark):
    postmark.add(responses.POST, POSTMARK_URL, status=503, body="Service Unavailable")
    send_case(client, make_distribution_workflow(owner=admin_user, send_delay_minutes=1))
    line = _line()
    Recipient.objects.filter(pk=line.pk).update(
        scheduled_for=timezone.now() - timedelta(hours=23, minutes=59, seconds=30)
    )
    recipients_sweep()
    line.refresh_from_db()
    assert line.get_status_display() == "Failed"
    assert line.error.startswith("gave up after 1 attempts: ")
    assert "503" in line.error


# --- Interrupted sends (worker stopped during the provider call) -----------------------


def _interrupted_line(client, admin_user) -> Recipient:
    """A line marked "sending" 11 minutes ago whose outcome was never recorded."""
    send_case(client, make_distribution_workflow(owner=admin_user, send_delay_minutes=5))
    line = _line()
    started = timezone.now() - timedelta(minutes=11)
    Recipient.objects.filter(pk=line.pk).update(
        scheduled_for=started, sending_started_at=started, attempts=1
    )
    line.refresh_from_db()
    return line


def test_real_esp_interrupted_send_is_not_resent(client, admin_user, postmark):
    line = _interrupted_line(client, admin_user)
    assert recipients_sweep() == 1  # the sweeper finds stuck lines
    line.refresh_from_db()
    assert line.get_status_display() == "Failed"
    assert line.error == UNKNOWN_OUTCOME
    assert line.outcome_unknown is True
    assert len(postmark.calls) == 0
    assert recipients_sweep() == 0


def test_outbox_interrupted_send_that_happened_is_recorded_not_resent(client, admin_user):
    line = _interrupted_line(client, admin_user)
    email_channel.send(line)  # the provider call went through before the crash
    assert recipient_send(recipient_id=line.pk) == "sent (found after an interruption)"
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert line.provider_message_id == OutboxMessage.objects.get().provider_message_id
    assert OutboxMessage.objects.count() == 1


def test_outbox_interrupted_send_that_did_not_happen_is_sent(client, admin_user):
    line = _interrupted_line(client, admin_user)
    assert recipient_send(recipient_id=line.pk) == "sent"
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert line.attempts == 2
    assert OutboxMessage.objects.count() == 1


# --- Re-checked at send time --------------------------------------------------------------


def _scheduled(client, admin_user) -> Recipient:
    send_case(client, make_distribution_workflow(owner=admin_user, send_delay_minutes=30))
    line = _line()
    Recipient.objects.filter(pk=line.pk).update(scheduled_for=timezone.now())
    return line


def test_survey_closed_before_a_scheduled_send_skips_it(client, admin_user):
    line = _scheduled(client, admin_user)
    Survey.objects.update(status=SurveyStatus.INACTIVE)
    recipients_sweep()
    line.refresh_from_db()
    assert (line.get_status_display(), line.error) == ("Skipped", "survey is not active")
    assert not OutboxMessage.objects.exists()


def test_opt_out_before_a_scheduled_send_stops_it(client, admin_user):
    line = _scheduled(client, admin_user)
    contact_set_opt_out(
        contact=Contact.objects.get(), channel="email", opted_out=True, source="unsubscribe link"
    )
    recipients_sweep()
    line.refresh_from_db()
    assert line.get_status_display() == "Opted Out"
    assert "unsubscribe link" in line.error
    assert not OutboxMessage.objects.exists()


def test_bounce_before_a_scheduled_send_skips_it(client, admin_user):
    line = _scheduled(client, admin_user)
    EmailSuppression.objects.create(address="jonas.berg@example.org", reason="hard_bounce")
    recipients_sweep()
    line.refresh_from_db()
    assert line.get_status_display() == "Skipped"
    assert line.error.startswith("address hard-bounced on ")
    assert not OutboxMessage.objects.exists()


def test_html_to_text_keeps_links_readable():
    text = email_channel.html_to_text(
        '<p>Hello &amp; welcome,</p><p><a href="https://x.test/s/1/">Take the survey</a></p>'
        "<style>p{color:red}</style>"
    )
    assert text == "Hello & welcome,\n\nTake the survey (https://x.test/s/1/)"
