"""Email provider and Twilio failing: 5xx, 429, timeouts, refused connections, refusals (4xx).

End to end through the demo workflow: the Salesforce POST saves the contact and
creates the invitation line; the provider (tests/reliability/fake_esp.py, failing as
anymail's backends fail) then answers each address by a script. The clock is moved
to each retry time and the distribution sweeper runs, as the schedule does every
minute. Temporary failures are retried with back-off (1, 2, 4 … minutes, at most an
hour apart, for 24 hours), then the line fails with the provider's own message;
permanent ones fail at once with it; the provider never receives a message twice.
Texts go the same way through an SMS workflow and the real Twilio client, its HTTP
API answering by script at the `requests` boundary.
"""

import importlib.util
import json
from collections import Counter
from datetime import timedelta
from itertools import pairwise
from urllib.parse import parse_qs

import pytest
import requests
import responses
from django.utils import timezone

from distributions.jobs import sweep_due
from distributions.models import Recipient
from tests.figures import record
from tests.reliability.fake_esp import ScriptedEsp
from tests.reliability.support import demo_address, demo_notification, demo_path, message, seed_demo
from xmflows.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

# address label -> (what the provider does on each call, final status, words of the error)
SCENARIOS: dict[str, tuple[list[str], str, str]] = {
    "unavailable-once": (["503"], "sent", ""),
    "timeout-once": (["timeout"], "sent", ""),
    "refused-connection": (["refused"], "sent", ""),
    "rate-limited": (["429", "429"], "sent", ""),
    "mixed-outage": (["503", "timeout", "502", "refused", "500"], "sent", ""),
    "bad-request": (["400"], "failed", "Invalid 'From' address: sender signature not confirmed"),
    "bad-token": (["401"], "failed", "Invalid server token"),
    "too-large": (["422"], "failed", "Message body is too large"),
    "recipient-refused": (["recipient-refused"], "failed", "inactive recipient"),
    "down-all-day": (["503"] * 100, "failed", "Service temporarily unavailable (maintenance)"),
    "timeout-all-day": (["timeout"] * 100, "failed", "Connection to api.fake-esp timed out"),
}


@pytest.fixture
def esp(settings):
    settings.EMAIL_BACKEND = "tests.reliability.fake_esp.ScriptedEsp"
    ScriptedEsp.reset()
    yield ScriptedEsp
    ScriptedEsp.reset()


@pytest.fixture
def clock(monkeypatch):
    """Moves the time every service sees (timezone.now) forward to a given moment."""
    real_now = timezone.now
    offset = timedelta()

    def move_to(moment) -> None:
        nonlocal offset
        offset = max(offset, moment - real_now())
        monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)

    return move_to


def backoff_minutes(calls) -> list[int]:
    return [round((later - earlier).total_seconds() / 60) for earlier, later in pairwise(calls)]


def test_provider_failures_are_retried_with_back_off_then_fail_with_its_message(client, esp, clock):
    labels = list(SCENARIOS)
    addresses = {label: demo_address(number, label) for number, label in enumerate(labels)}
    for label, (behaviours, _, _) in SCENARIOS.items():
        esp.script(addresses[label], *behaviours)
    demo = seed_demo()
    body = message([demo_notification(number, label) for number, label in enumerate(labels)])
    response = client.post(
        demo_path(demo), body, content_type="text/xml; charset=utf-8", HTTP_SOAPACTION='""'
    )
    assert response.status_code == 200
    # The runs succeeded: their part was to create the invitation; the line carries the send.
    assert set(Run.objects.values_list("status", flat=True)) == {"succeeded"}

    sweeps = 0
    while sweeps < 200:
        waiting = Recipient.objects.filter(status="pending", next_attempt_at__isnull=False)
        due = waiting.order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
        if due is None:
            break
        line = waiting.order_by("next_attempt_at").first()
        assert "retrying at" in line.error and line.error.startswith("temporary failure")
        clock(due + timedelta(seconds=1))
        sweep_due()
        sweeps += 1
    assert sweeps < 200, "retries never ended"

    lines = {line.to_address: line for line in Recipient.objects.all()}
    injected = 0
    for label, (behaviours, final, words) in SCENARIOS.items():
        address = addresses[label]
        line = lines[address]
        calls = esp.calls[address]
        assert line.status == final, (label, line.status, line.error)
        if final == "sent":
            assert esp.accepted[address] == 1, label
            assert len(calls) == len(behaviours) + 1
            assert line.error == "" and line.provider_message_id.startswith("fake-")
            # Back-off: 1, 2, 4 … minutes between tries.
            assert backoff_minutes(calls) == [2**i for i in range(len(behaviours))], label
        else:
            assert esp.accepted[address] == 0, label
            assert words in line.error, (label, line.error)
            if len(behaviours) == 1:
                assert len(calls) == 1, f"{label}: a permanent refusal is not retried"
            else:
                # Retried for 24 hours, at most an hour apart, then given up.
                gaps = backoff_minutes(calls)
                assert gaps[:6] == [1, 2, 4, 8, 16, 32] and set(gaps[6:]) == {60}, gaps
                assert timedelta(hours=23) < calls[-1] - calls[0] <= timedelta(hours=24)
                assert line.error.startswith(f"gave up after {len(calls)} attempts: ")
        injected += min(len(behaviours), len(calls))
    sent = [label for label, (_, final, _) in SCENARIOS.items() if final == "sent"]
    assert sum(esp.accepted.values()) == len(sent)
    assert max(esp.accepted.values()) == 1
    record(
        "email provider failures (5xx, 429, timeouts, refused, 4xx)",
        faults=injected,
        lines=len(SCENARIOS),
        lost=0,
        duplicated=sum(count - 1 for count in esp.accepted.values()),
    )


def test_provider_that_accepts_then_times_out_is_not_sent_twice(client, esp, clock):
    demo = seed_demo()
    address = demo_address(1, "late-answer")
    esp.script(address, "accepted-timeout")
    body = message([demo_notification(1, "late-answer")])
    client.post(demo_path(demo), body, content_type="text/xml; charset=utf-8", HTTP_SOAPACTION='""')
    line = Recipient.objects.get()
    if line.next_attempt_at:
        clock(line.next_attempt_at + timedelta(seconds=1))
        sweep_due()
    assert esp.accepted[address] == 1
    line.refresh_from_db()
    assert line.get_status_display() == "Failed"
    assert line.error.startswith("send outcome unknown")


# --- Twilio ---------------------------------------------------------------------------------

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
# label -> (Twilio's answers in turn, final status, words of the error)
SMS_SCENARIOS: dict[str, tuple[list[str], str, str]] = {
    "unavailable-once": (["503"], "sent", ""),
    "connect-timeout": (["connect-timeout"], "sent", ""),
    "refused-connection": (["refused"], "sent", ""),
    "rate-limited": (["429", "429"], "sent", ""),
    "mixed-outage": (["503", "connect-timeout", "500"], "sent", ""),
    "invalid-number": (["21211"], "failed", "is not a valid phone number"),
    "replied-stop": (["21610"], "failed", "Twilio error 21610"),
    # Twilio may have taken it: failed as "outcome unknown", never sent a second time.
    "read-timeout": (["read-timeout"], "failed", "send outcome unknown"),
    "down-all-day": (["503"] * 100, "failed", "Twilio HTTP 503"),
}
TWILIO_ERRORS = {
    "21211": (400, "The 'To' number is not a valid phone number."),
    "21610": (400, "Attempt to send to unsubscribed recipient"),
}


@pytest.mark.skipif(
    importlib.util.find_spec("distributions.channels.sms_twilio") is None,
    reason="the SMS channel does not exist yet",
)
def test_twilio_failures_are_retried_with_back_off_then_fail_with_its_message(
    client, settings, clock
):
    from tests.distributions.builders import make_survey
    from tests.distributions.sms_builders import make_sms_workflow
    from tests.factories import make_user

    settings.SMS_BACKEND = "distributions.channels.sms_twilio.TwilioBackend"
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = "twilio-token-for-fault-tests"
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    phones = {label: f"+1415555{number:04d}" for number, label in enumerate(SMS_SCENARIOS)}
    scripts = {phones[label]: list(plan) for label, (plan, _, _) in SMS_SCENARIOS.items()}
    calls: dict[str, list] = {phone: [] for phone in phones.values()}
    accepted: Counter = Counter()

    def twilio(request):
        to = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        phone = to["To"][0]
        calls[phone].append(timezone.now())
        behaviour = scripts[phone].pop(0) if scripts[phone] else "ok"
        if behaviour == "connect-timeout":
            raise requests.exceptions.ConnectTimeout("connect timeout to api.twilio.com")
        if behaviour == "refused":
            raise requests.exceptions.ConnectionError("Connection refused by api.twilio.com")
        if behaviour == "read-timeout":
            accepted[phone] += 1  # Twilio took it; its answer never came
            raise requests.exceptions.ReadTimeout("read timeout (15 s)")
        if behaviour in ("500", "503", "429"):
            return (int(behaviour), {}, "Service Unavailable")
        if behaviour in TWILIO_ERRORS:
            status, message = TWILIO_ERRORS[behaviour]
            body = {"code": int(behaviour), "message": message, "status": status}
            return (status, {"Content-Type": "application/json"}, json.dumps(body))
        accepted[phone] += 1
        sid = f"SM{len(calls[phone]):032d}"
        return (201, {"Content-Type": "application/json"}, json.dumps({"sid": sid}))

    owner = make_user(username="sms-owner")
    workflow = make_sms_workflow(owner=owner, survey=make_survey(owner=owner))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.add_callback(responses.POST, TWILIO_MESSAGES, callback=twilio)
        notifications = [
            {"id": f"04l8a00000S{number:06d}AAR",
             "fields": {"Id": f"5008a0000S{number:06d}AB", "CaseNumber": f"{number:08d}",
                        "ContactEmail": f"sms{number}@example.org", "ContactPhone": phone,
                        "First_Name__c": "Ada", "Last_Name__c": f"Texter {number}"}}
            for number, phone in enumerate(phones.values())
        ]  # fmt: skip
        response = client.post(
            f"/events/salesforce/{workflow.event.token}/",
            message(notifications),
            content_type="text/xml; charset=utf-8",
        )
        assert response.status_code == 200
        for _ in range(200):
            due = (
                Recipient.objects.filter(status="pending", next_attempt_at__isnull=False)
                .order_by("next_attempt_at")
                .values_list("next_attempt_at", flat=True)
                .first()
            )
            if due is None:
                break
            clock(due + timedelta(seconds=1))
            sweep_due()
    lines = {line.to_address: line for line in Recipient.objects.all()}
    injected = 0
    for label, (plan, final, words) in SMS_SCENARIOS.items():
        phone = phones[label]
        line = lines[phone]
        assert line.status == final, (label, line.status, line.error)
        assert words in line.error, (label, line.error)
        assert accepted[phone] <= 1, label
        if final == "sent":
            assert accepted[phone] == 1 and len(calls[phone]) == len(plan) + 1
            assert backoff_minutes(calls[phone]) == [2**i for i in range(len(plan))], label
        elif len(plan) == 1:
            assert len(calls[phone]) == 1, f"{label}: not retried"
        else:
            gaps = backoff_minutes(calls[phone])
            assert gaps[:6] == [1, 2, 4, 8, 16, 32] and set(gaps[6:]) == {60}, gaps
        injected += min(len(plan), len(calls[phone]))
    record(
        "Twilio failures (5xx, 429, timeouts, refused, 4xx, 21610)",
        faults=injected,
        lines=len(SMS_SCENARIOS),
        lost=0,
        duplicated=sum(max(0, count - 1) for count in accepted.values()),
    )


def test_provider_that_accepts_then_drops_the_connection_is_not_sent_twice(client, esp, clock):
    """Like a read timeout: the request was sent whole, so it may have been taken."""
    demo = seed_demo()
    address = demo_address(1, "dropped")
    esp.script(address, "accepted-disconnect")
    body = message([demo_notification(1, "dropped")])
    client.post(demo_path(demo), body, content_type="text/xml; charset=utf-8")
    line = Recipient.objects.get()
    if line.next_attempt_at:
        clock(line.next_attempt_at + timedelta(seconds=1))
        sweep_due()
    assert esp.accepted[address] == 1
    line.refresh_from_db()
    assert line.error.startswith("send outcome unknown")
