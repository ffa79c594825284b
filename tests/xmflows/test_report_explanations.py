"""The workflow reports explain every outcome (SPEC F8): for each way a run can end,
the run's page, the "why not sent?" answer and the run list say what happened and
why, in words, with the exact reason."""

import html
import re
from datetime import time, timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf

from contacts.models import Directory
from distributions.channels.sms import SmsBackend, SmsSendError
from distributions.models import FrequencyRule, OutboxMessage, Recipient, VerifiedSender
from distributions.services import delivery_event_record, recipient_send
from surveys.models import SurveyStatus
from tests.factories import make_contact, make_mailing_list, make_survey, make_user, make_workflow
from tests.factories import post_soap as post
from tests.soap_builders import build_outbound_message
from xmflows.engine import run_execute
from xmflows.models import Delivery, Run, RunStatus, RunTrigger, TaskRun, TaskRunStatus

pytestmark = pytest.mark.django_db(transaction=True)

SENDER = "surveys@example.com"
MEMORY_SMS = "distributions.channels.sms_memory.MemoryBackend"


@pytest.fixture(autouse=True)
def outbox_backend(settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"


@pytest.fixture
def sms_outbox(settings):
    from distributions.channels import sms_memory

    settings.SMS_BACKEND = MEMORY_SMS
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    sms_memory.outbox.clear()
    yield sms_memory.outbox
    sms_memory.outbox.clear()


class ProviderDown(SmsBackend):
    """An SMS provider answering 503: a temporary failure, retried with back-off."""

    def send(self, message):
        raise SmsSendError("Twilio is down (HTTP 503)", temporary=True)


@pytest.fixture
def owner(client):
    user = make_user(username="owner")
    client.force_login(user)
    return user


@pytest.fixture
def mailing_list():
    return make_mailing_list()


def case(number: int, **fields) -> bytes:
    values = {
        "Id": f"5008a00009Zz{number:04d}AAB",
        "CaseNumber": f"0000{number:04d}",
        "ContactEmail": f"person{number}@example.org",
        "Phone": f"+1415555{number:04d}",
        "First_Name__c": "Alex",
        "Last_Name__c": f"Person {number}",
        "IsClosed": "true",
    }
    values.update(fields)
    return build_outbound_message([{"id": f"04l8a00000Q{number:06d}AAR", "fields": values}])


def distribute(survey, mailing_list, *, channel="email", **extra) -> dict:
    message = (
        {"text": "Hi ${m://FirstName}: ${l://SurveyURL}"}
        if channel != "email"
        else {
            "from_name": "Care",
            "from_email": SENDER,
            "reply_to": "",
            "subject": "Case ${event://CaseNumber}",
            "body": "<p>${l://SurveyLink?d=Go}</p>",
        }
    )
    return {
        "type": "distribute_survey",
        "channel": channel,
        "survey": survey.pk,
        "mailing_list": mailing_list.pk,
        "contact": {
            "first_name": "${event://First_Name__c}",
            "last_name": "${event://Last_Name__c}",
            "email": "${event://ContactEmail}",
            "phone": "${event://Phone}",
        },
        "embedded_data": {},
        "message": message,
        "send_delay_minutes": 0,
        **extra,
    }


def add_to_directory(mailing_list) -> dict:
    return {
        "type": "add_to_directory",
        "mode": "embedded_data",
        "mailing_list": mailing_list.pk,
        "contact": {
            "first_name": "${event://First_Name__c}",
            "last_name": "${event://Last_Name__c}",
            "email": "${event://ContactEmail}",
        },
        "embedded_data": {},
    }


def survey_workflow(owner, mailing_list, *, survey=None, tasks=None, **overrides):
    VerifiedSender.objects.get_or_create(address=SENDER)
    survey = survey or make_survey(owner=owner)
    return make_workflow(
        owner=owner, tasks=tasks or [distribute(survey, mailing_list)], **overrides
    )


def words(response) -> str:
    """A page as a reader sees it: text only, entities decoded, spaces collapsed."""
    assert response.status_code == 200
    body = re.sub(r"<(script|style).*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def run_page(client, run: Run) -> str:
    return words(client.get(f"/reports/workflows/runs/{run.pk}/"))


def headline(client, run: Run) -> str:
    """The run page's answer: its first line, before the list of findings."""
    page = client.get(f"/reports/workflows/runs/{run.pk}/").content.decode()
    found = re.search(r'<p class="headline">(.*?)</p>', page, flags=re.S)
    return html.unescape(found.group(1)).strip()


def why(client, query: str) -> str:
    return words(client.get("/reports/workflows/why/", {"q": query}))


def last_run() -> Run:
    return Run.objects.order_by("-id").first()


# --- Waiting lines say why they wait -------------------------------------------------


def test_a_text_waiting_after_a_provider_failure_says_why_and_then_that_it_was_sent(
    client, owner, mailing_list, sms_outbox, settings
):
    settings.SMS_BACKEND = f"{__name__}.ProviderDown"
    survey = make_survey(owner=owner)
    workflow = survey_workflow(
        owner, mailing_list, tasks=[distribute(survey, mailing_list, channel="sms")]
    )
    post(client, workflow, case(1))
    run = last_run()
    line = Recipient.objects.get()
    assert line.status == "pending" and line.next_attempt_at is not None
    # Not a bare "Pending": the provider's answer and when it is tried again.
    answer = headline(client, run)
    assert answer.startswith("Not sent yet: to +14155550001: Pending, not sent yet: ")
    assert "temporary failure (attempt 1), retrying at " in answer
    assert answer.endswith("Twilio is down (HTTP 503)")
    assert "Twilio is down (HTTP 503)" in why(client, "+14155550001")
    assert "Twilio is down (HTTP 503)" in words(client.get("/reports/workflows/"))

    # The provider is back and the back-off has elapsed: sent once, and said so.
    settings.SMS_BACKEND = MEMORY_SMS
    Recipient.objects.filter(pk=line.pk).update(next_attempt_at=timezone.now())
    assert recipient_send(recipient_id=line.pk) == "sent"
    assert [sent.to for sent in sms_outbox] == ["+14155550001"]
    assert headline(client, run) == "Sent"
    assert "Twilio is down" not in run_page(client, run).split("Input payload")[0]


def test_an_email_held_by_quiet_hours_names_them(client, owner, mailing_list):
    Directory.objects.filter(pk=mailing_list.directory_id).update(
        quiet_hours_start=time(0, 0), quiet_hours_end=time(23, 59)
    )
    post(client, survey_workflow(owner, mailing_list), case(2))
    answer = headline(client, last_run())
    assert answer.startswith("Not sent yet: to person2@example.org: Scheduled for ")
    assert "deferred by quiet hours (00:00-23:59 UTC) to " in answer
    assert "deferred by quiet hours" in why(client, "person2@example.org")
    assert not OutboxMessage.objects.exists()  # deferred, not dropped and not sent


def test_a_send_the_task_holds_back_says_what_holds_it(client, owner, mailing_list):
    tomorrow = timezone.now() + timedelta(days=1)
    Directory.objects.filter(pk=mailing_list.directory_id).update(
        working_days=[tomorrow.isoweekday()], default_time_zone="UTC"
    )
    survey = make_survey(owner=owner)
    held = distribute(survey, mailing_list, send_delay_minutes=30, send_at_next_working_hour=True)
    post(client, survey_workflow(owner, mailing_list, tasks=[held]), case(8))
    answer = headline(client, last_run())
    assert answer.startswith("Not sent yet: to person8@example.org: Scheduled for ")
    assert answer.endswith(
        "waiting for the task's send delay of 30 minutes and the next working hour "
        f"({tomorrow:%a} 09:00-17:00, UTC)"
    )
    assert "waiting for the task's send delay of 30 minutes" in why(client, "person8@example.org")

    delayed = distribute(survey, mailing_list, send_delay_minutes=1)
    post(client, survey_workflow(owner, mailing_list, tasks=[delayed]), case(9))
    assert headline(client, last_run()).endswith(
        "not sent yet: waiting for the task's send delay of 1 minute"
    )


# --- Salesforce retries ------------------------------------------------------------------


def test_the_run_page_says_when_salesforce_sent_the_notification_again(client, owner, mailing_list):
    workflow = survey_workflow(owner, mailing_list)
    post(client, workflow, case(3))
    post(client, workflow, case(3))  # Salesforce's retry of the same notification
    assert Run.objects.count() == 1
    assert OutboxMessage.objects.count() == 1
    retry = Delivery.objects.order_by("id").last()
    assert retry.duplicate_count == 1
    page = run_page(client, last_run())
    assert f"Salesforce sent this notification again 1 time: delivery #{retry.pk} (" in page
    assert "already received: acknowledged, not run again." in page
    assert "already received: acknowledged, not run again." in why(client, "person3@example.org")


# --- A workflow disabled while its runs wait ----------------------------------------------


def test_runs_queued_before_the_workflow_was_disabled_send_nothing_and_say_why(
    client, owner, mailing_list, real_broker, monkeypatch
):
    workflow = survey_workflow(owner, mailing_list)
    post(client, workflow, case(4))  # stored and queued; no worker has taken it yet
    monkeypatch.setattr(Conf, "SYNC", True)  # from here on, jobs run inline again
    run = last_run()
    assert run.status == RunStatus.QUEUED
    workflow.enabled = False
    workflow.save()
    # Claimed once already by a worker that died before any task began: still unbegun.
    Run.objects.filter(pk=run.pk).update(attempts=1)

    assert run_execute(run_id=run.pk) == RunStatus.SKIPPED
    assert not Recipient.objects.exists() and not OutboxMessage.objects.exists()
    assert headline(client, run) == (
        "Not sent: the workflow was disabled before this run started: nothing was done "
        "(enable the workflow, then replay this run to process the message)"
    )
    page = run_page(client, run)
    assert "No task ran: the run was skipped, for the reason above." in page
    assert "reloads itself" not in page
    assert "conditions" not in page.split("Input payload")[0]
    # Found by the address it would have gone to, as a run skipped on its conditions.
    assert "the workflow was disabled before this run started" in why(client, "person4@example.org")

    # The message was kept: once the workflow is enabled again, a replay sends it.
    workflow.enabled = True
    workflow.save()
    response = client.post(f"/reports/workflows/runs/{run.pk}/replay/")
    replay = Run.objects.get(trigger=RunTrigger.REPLAY)
    assert response.status_code == 302
    assert replay.status == RunStatus.SUCCEEDED
    assert OutboxMessage.objects.get().to == "person4@example.org"


def test_a_run_resumed_after_a_temporary_failure_finishes_though_the_workflow_was_disabled(
    owner, mailing_list, real_broker, client
):
    workflow = survey_workflow(owner, mailing_list)
    post(client, workflow, case(5))
    run = last_run()
    # Its first attempt began (a temporary failure of its task, say): what it started,
    # it finishes.
    Run.objects.filter(pk=run.pk).update(attempts=1)
    TaskRun.objects.create(
        run=run, position=0, type="distribute_survey", status=TaskRunStatus.WAITING_RETRY
    )
    workflow.enabled = False
    workflow.save()
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED


# --- Every other outcome, as the pages say it ---------------------------------------------


def test_each_outcome_of_an_email_invitation_is_explained(client, owner, mailing_list):
    make_contact(
        directory=mailing_list.directory,
        mailing_lists=[mailing_list],
        email="person11@example.org",
        email_opted_out=True,
    )
    conditions = {"match": "all", "rules": [{"field": "IsClosed", "op": "equals", "value": "true"}]}
    workflow = survey_workflow(owner, mailing_list, conditions=conditions)
    expected = {
        case(10, IsClosed="false"): (
            "Not sent: the workflow's conditions were not met — condition not met (all): "
            "IsClosed equals 'true' — actual value 'false'"
        ),
        case(11): "Not sent to person11@example.org: Opted Out: contact opted out of email",
        case(12, ContactEmail=None): (
            "Not sent: task 1 (XM Directory: Distribute survey) failed: email is required "
            "but rendered empty from '${event://ContactEmail}'"
        ),
        case(13, ContactEmail="not-an-email"): (
            "Not sent: task 1 (XM Directory: Distribute survey) failed: not a valid email "
            "address: 'not-an-email'"
        ),
    }
    for body, answer in expected.items():
        post(client, workflow, body)
        assert headline(client, last_run()) == answer

    FrequencyRule.objects.create(
        name="At most 1 survey per 30 days",
        scope="directory",
        directory_id=mailing_list.directory_id,
        max_sends=1,
        period_days=30,
    )
    post(client, workflow, case(14))
    assert headline(client, last_run()) == "Sent"
    post(client, workflow, case(15, ContactEmail="person14@example.org", CaseNumber="other"))
    today = timezone.now().strftime("%Y-%m-%d")
    assert headline(client, last_run()) == (
        "Not sent to person14@example.org: Skipped: frequency rule 'At most 1 survey per 30 "
        f"days' (directory {mailing_list.directory.name}): 1 survey sent on {today}"
    )
    assert OutboxMessage.objects.count() == 1


def test_each_outcome_of_a_text_invitation_is_explained(client, owner, mailing_list, sms_outbox):
    make_contact(
        directory=mailing_list.directory,
        mailing_lists=[mailing_list],
        email="person21@example.org",
        phone="+14155550021",
        sms_opted_out=True,
    )
    survey = make_survey(owner=owner)
    workflow = survey_workflow(
        owner, mailing_list, tasks=[distribute(survey, mailing_list, channel="sms")]
    )
    post(client, workflow, case(20, Phone=None))
    assert headline(client, last_run()) == (
        "Not sent: task 1 (XM Directory: Distribute survey) failed: phone is required but "
        "rendered empty from '${event://Phone}'"
    )
    post(client, workflow, case(21))
    assert headline(client, last_run()) == (
        "Not sent to +14155550021: Opted Out: contact opted out of SMS"
    )
    assert "contact opted out of SMS" in why(client, "+1 415 555 0021")
    assert sms_outbox == []


def test_sender_and_survey_changes_are_explained_at_the_task_and_at_the_send(
    client, owner, mailing_list
):
    survey = make_survey(owner=owner)
    delayed = survey_workflow(
        owner, mailing_list, tasks=[distribute(survey, mailing_list, send_delay_minutes=5)]
    )
    post(client, delayed, case(30))
    post(client, delayed, case(31))
    first, second = Recipient.objects.order_by("id")
    Recipient.objects.update(scheduled_for=timezone.now() - timedelta(minutes=1))
    VerifiedSender.objects.all().delete()
    recipient_send(recipient_id=first.pk)
    assert headline(client, Run.objects.get(pk=first.workflow_run_id)) == (
        "Not sent to person30@example.org: Failed: sender address surveys@example.com is "
        "no longer verified"
    )
    post(client, delayed, case(32))
    assert headline(client, last_run()) == (
        "Not sent: task 1 (XM Directory: Distribute survey) failed: sender address "
        "surveys@example.com is not verified"
    )
    VerifiedSender.objects.create(address=SENDER)
    survey.status = SurveyStatus.INACTIVE
    survey.save()
    recipient_send(recipient_id=second.pk)
    assert headline(client, Run.objects.get(pk=second.workflow_run_id)) == (
        "Not sent to person31@example.org: Skipped: survey is not active"
    )
    assert not OutboxMessage.objects.exists()


def test_a_task_failing_after_the_contact_was_saved_shows_both(client, owner, mailing_list):
    inactive = make_survey(owner=owner, status=SurveyStatus.INACTIVE)
    workflow = survey_workflow(
        owner,
        mailing_list,
        tasks=[add_to_directory(mailing_list), distribute(inactive, mailing_list)],
    )
    post(client, workflow, case(40))
    run = last_run()
    assert headline(client, run) == (
        "Not sent: task 2 (XM Directory: Distribute survey) failed: survey is not active"
    )
    page = run_page(client, run)
    assert re.search(r"1 XM Directory: Add to directory Succeeded Contact #\d+ \(created\)", page)
    assert "2 XM Directory: Distribute survey Failed survey is not active" in page


def test_a_bounce_after_the_send_is_shown_and_stops_the_next_invitation(
    client, owner, mailing_list
):
    workflow = survey_workflow(owner, mailing_list)
    post(client, workflow, case(50))
    sent = last_run()
    line = Recipient.objects.get()
    delivery_event_record(
        provider="test",
        event_id="bounce-1",
        message_id=line.provider_message_id,
        event_type="bounced",
        timestamp=None,
        reason="550 5.1.1 mailbox does not exist",
    )
    answer = why(client, "person50@example.org")
    assert re.search(
        r"sent to person50@example.org on [0-9-]+ [0-9:]+ UTC; now Hard Bounce: "
        r"550 5\.1\.1 mailbox does not exist",
        answer,
    )
    assert headline(client, sent) == "Sent"
    post(client, workflow, case(51, ContactEmail="person50@example.org"))
    today = timezone.now().strftime("%Y-%m-%d")
    assert headline(client, last_run()) == (
        f"Not sent to person50@example.org: Skipped: address hard-bounced on {today}"
    )
    assert OutboxMessage.objects.count() == 1


def test_a_run_still_queued_is_found_by_the_email_in_its_message(
    client, owner, mailing_list, real_broker
):
    """No worker has taken the run yet, so it has no contact email of its own: the
    search reads the messages of the runs still waiting."""
    workflow = survey_workflow(owner, mailing_list)
    post(client, workflow, case(6))
    post(client, workflow, case(7))
    run = Run.objects.get(record_id="5008a00009Zz0006AAB")
    assert run.status == RunStatus.QUEUED and run.email == ""
    # Its page reloads itself until the run ends.
    page = client.get(f"/reports/workflows/runs/{run.pk}/").content.decode()
    assert '<meta http-equiv="refresh" content="3">' in page
    answer = why(client, "Person6@Example.org")
    assert f"#{run.pk}" in answer
    assert "No run of" not in answer
    other = Run.objects.get(record_id="5008a00009Zz0007AAB")
    assert f"#{other.pk}" not in answer
    # A whole field's value, not a piece of one: an address that no message holds,
    # or part of one, finds nothing.
    assert "No run of" in why(client, "nobody@example.org")
    assert "No run of" in why(client, "erson6@example.org")
    assert "No run of" in why(client, "person6@example.or")
    # As the message stores it: non-ASCII characters escaped.
    post(client, workflow, case(11, ContactEmail="José.Núñez@example.org"))
    accented = Run.objects.get(record_id="5008a00009Zz0011AAB")
    assert f"#{accented.pk}" in why(client, "josé.núñez@example.org")
    # The run list's search too; the API's email filter stays exact.
    assert f"#{run.pk}" in words(client.get("/reports/workflows/", {"q": "person6@example.org"}))
    api = client.get("/api/v1/runs/", {"email": "person6@example.org"})
    assert api.status_code == 200 and api.json()["count"] == 0


def test_the_run_list_says_a_failed_tasks_error_once(client, owner, mailing_list):
    inactive = make_survey(owner=owner, status=SurveyStatus.INACTIVE)
    post(client, survey_workflow(owner, mailing_list, survey=inactive), case(10))
    run = last_run()
    assert run.status == RunStatus.FAILED
    listing = words(client.get("/reports/workflows/"))
    assert listing.count("survey is not active") == 1
    # The run's own page keeps both: the reason, and the finding with its task.
    assert "task 1 (XM Directory: Distribute survey) failed: survey is not active" in run_page(
        client, run
    )
