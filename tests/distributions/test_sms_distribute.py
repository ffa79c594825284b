"""The distribute task with channels sms and sms_survey: from a Salesforce case to a text in
the outbox, and every reason it refuses or warns."""

import csv
import io
import re

import pytest

from contacts.models import Contact
from distributions.models import OutboxMessage, Recipient
from tests.distributions.builders import make_survey
from tests.distributions.sms_builders import (
    PHONE,
    SMS_MAPPING,
    make_sms_workflow,
    send_sms_case,
    sms_task,
)
from tests.factories import make_contact, make_directory, make_mailing_list
from xmflows.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)

OUTBOX_SMS_BACKEND = "distributions.channels.sms_outbox.OutboxBackend"


@pytest.fixture
def outbox_sms(settings):
    """The development default: texts land in the outbox, Twilio is not configured."""
    settings.SMS_BACKEND = OUTBOX_SMS_BACKEND
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""


def _csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))


def test_salesforce_case_to_a_text_in_the_outbox(client, admin_user, api_client, outbox_sms):
    workflow = make_sms_workflow(owner=admin_user)
    run = send_sms_case(client, workflow, ContactPhone="(415) 555-0100")
    task = run.task_runs.get()
    assert task.status == "succeeded", task.error
    line = Recipient.objects.get()
    link = f"http://testserver/s/{line.link.token}/"
    case_number = line.message.snapshot["event_fields"]["CaseNumber"]
    expected = f"Hi Jonas, how did we do on case {case_number}? {link}"

    # The contact's phone was normalised to E.164 and the text went to it.
    assert Contact.objects.get().phone == PHONE
    outbox = api_client.get("/api/v1/outbox/", {"channel": "sms", "to": PHONE}).json()
    assert outbox["count"] == 1
    text = outbox["results"][0]
    assert text["body"] == expected  # the personal link as a plain URL
    assert text["channel"] == "sms"
    assert not OutboxMessage.objects.filter(channel="email").exists()

    assert task.output["to"] == PHONE
    assert task.output["text"] == expected
    assert (task.output["segments"], task.output["encoding"]) == (1, "GSM-7")
    assert task.output["survey_link"] == link
    assert line.get_status_display() == "Sent"
    assert line.provider_message_id == OutboxMessage.objects.get().provider_message_id

    # The outbox page shows it to staff.
    client.force_login(admin_user)
    page = client.get("/outbox/", {"channel": "sms"})
    assert page.status_code == 200
    assert link in page.content.decode()

    # The history CSV has the same columns as for email, with the channel and phone.
    rows = _csv_rows(client.get(f"/distributions/{line.distribution_id}/history.csv"))
    assert len(rows) == 1
    # CONTRACT.md §6: a cell starting with "+" gets a leading "'" (no formula), E.164 too.
    assert (rows[0]["Channel"], rows[0]["Phone"], rows[0]["Status"]) == ("sms", f"'{PHONE}", "Sent")
    assert rows[0]["Survey Link"] == link
    assert rows[0]["Email"] == "jonas.berg@example.org"


def test_sms_needs_no_verified_email_sender(client, admin_user, outbox_sms):
    run = send_sms_case(client, make_sms_workflow(owner=admin_user))
    assert run.task_runs.get().status == "succeeded"


def test_a_missing_phone_fails_the_task_clearly(client, admin_user, outbox_sms):
    run = send_sms_case(client, make_sms_workflow(owner=admin_user), ContactPhone=None)
    task = run.task_runs.get()
    assert task.status == "failed"
    assert task.error == "phone is required but rendered empty from '${event://ContactPhone}'"
    assert not Recipient.objects.exists()


def test_an_unreadable_phone_fails_the_task_clearly(client, admin_user, outbox_sms):
    run = send_sms_case(client, make_sms_workflow(owner=admin_user), ContactPhone="12")
    task = run.task_runs.get()
    assert task.status == "failed"
    assert task.error == "cannot read phone number '12' for country US"
    assert not OutboxMessage.objects.exists()


def test_an_unreadable_optional_email_does_not_stop_the_text(client, admin_user, outbox_sms):
    run = send_sms_case(client, make_sms_workflow(owner=admin_user), ContactEmail="jonas.berg@")
    task = run.task_runs.get()
    assert task.status == "succeeded", task.error
    assert (
        "not a valid email address: 'jonas.berg@'; this email is left out of the contact"
        in (task.output["warnings"])
    )
    assert Recipient.objects.get().get_status_display() == "Sent"
    assert OutboxMessage.objects.get().to == PHONE
    # The run report shows the warning next to the task.
    client.force_login(admin_user)
    page = client.get(f"/reports/workflows/runs/{run.pk}/").content.decode()
    assert "this email is left out of the contact" in page


def test_a_long_text_is_sent_with_a_segments_warning(client, admin_user, outbox_sms, settings):
    settings.XMFLOWS_SMS_MAX_SEGMENTS = 2
    text = "Hi ${m://FirstName}, " + "we value your opinion. " * 20 + "${l://SurveyURL}"
    run = send_sms_case(client, make_sms_workflow(owner=admin_user, message={"text": text}))
    task = run.task_runs.get()
    assert task.status == "succeeded"
    assert task.output["segments"] == 4
    warnings = [w for w in task.output["warnings"] if "segments" in w]
    assert len(warnings) == 1
    assert warnings[0].startswith("the SMS text is 4 segments (")
    assert "XMFLOWS_SMS_MAX_SEGMENTS" in warnings[0]
    assert OutboxMessage.objects.get().body.startswith("Hi Jonas, we value")


def test_the_same_text_to_the_same_number_within_12_hours_is_skipped(
    client, admin_user, outbox_sms
):
    workflow = make_sms_workflow(
        owner=admin_user, message={"text": "Hi ${m://FirstName}: ${l://SurveyURL}"}
    )
    send_sms_case(client, workflow)
    second = send_sms_case(client, workflow)
    output = second.task_runs.get().output
    first_line = Recipient.objects.order_by("id").first()
    assert output["recipient_status"] == "Skipped"
    assert output["reason"] == (
        "the same message was sent to this number within 12 hours "
        f"(distribution {first_line.distribution_id})"
    )
    assert OutboxMessage.objects.count() == 1


def test_a_number_opted_out_in_another_directory_is_not_texted(client, admin_user, outbox_sms):
    # STOP comes from the phone: whichever directory holds the number, it stays opted out.
    make_contact(
        directory=make_directory(name="Other directory"),
        phone=PHONE,
        sms_opted_out=True,
        sms_opted_out_source="SMS STOP",
    )
    run = send_sms_case(client, make_sms_workflow(owner=admin_user))
    output = run.task_runs.get().output
    assert output["recipient_status"] == "Opted Out"
    assert output["reason"].startswith("this number opted out of SMS")
    assert "SMS STOP" in output["reason"]
    assert not OutboxMessage.objects.exists()


def test_an_opted_out_contact_is_refused_at_send_time_too(client, admin_user, outbox_sms):
    # Scheduled for later; the person replies STOP meanwhile.
    workflow = make_sms_workflow(owner=admin_user, send_delay_minutes=30)
    send_sms_case(client, workflow)
    line = Recipient.objects.get()
    assert line.get_status_display() == "Scheduled"
    Contact.objects.update(sms_opted_out=True, sms_opted_out_source="SMS STOP")
    Recipient.objects.update(scheduled_for=line.created_at)
    from distributions.services import recipient_send

    assert recipient_send(recipient_id=line.pk) == "opted_out"
    line.refresh_from_db()
    assert line.get_status_display() == "Opted Out"
    assert line.error.startswith("contact opted out of SMS")
    assert not OutboxMessage.objects.exists()


def test_sms_survey_lines_say_their_channel_in_the_csv(client, admin_user, api_client, outbox_sms):
    workflow = make_sms_workflow(owner=admin_user, channel="sms_survey")
    send_sms_case(client, workflow)
    line = Recipient.objects.get()
    assert line.channel == "sms_survey"
    # Opening and first question, both in the outbox.
    assert OutboxMessage.objects.filter(channel="sms", to=PHONE).count() == 2
    client.force_login(admin_user)
    rows = _csv_rows(client.get(f"/surveys/{line.survey_id}/distribution-history.csv"))
    assert [(row["Channel"], row["Phone"]) for row in rows] == [("sms_survey", f"'{PHONE}")]
    distribution = api_client.get("/api/v1/distributions/", {"channel": "sms_survey"}).json()
    assert distribution["count"] == 1


# --- Configuration (HTTP 400 on save) ---------------------------------------------------


def _definition(task: dict) -> dict:
    return {
        "name": "Survey text",
        "event": {"type": "salesforce_outbound_message", "object": "Case"},
        "tasks": [task],
    }


def test_an_sms_task_needs_a_phone_mapping_but_no_email(api_client, admin_user):
    task = sms_task(survey=make_survey(owner=admin_user), mailing_list=make_mailing_list())
    task["contact"] = {**task["contact"], "email": ""}
    saved = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert saved.status_code == 201, saved.json()
    assert saved.json()["tasks"][0]["message"] == {"text": task["message"]["text"]}

    task["contact"] = {**task["contact"], "phone": ""}
    refused = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert refused.status_code == 400
    assert "phone" in refused.json()["tasks"][0]["contact"]


@pytest.mark.parametrize("text", ["   ", ""], ids=["spaces", "blank"])
def test_an_empty_text_is_refused(api_client, admin_user, text):
    task = sms_task(
        survey=make_survey(owner=admin_user),
        mailing_list=make_mailing_list(),
        channel="sms_survey",
        message={"text": text},
    )
    refused = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert refused.status_code == 400
    assert refused.json()["tasks"][0]["message"] == {"text": ["the SMS text must not be empty"]}


# --- Sent once ----------------------------------------------------------------------------


def test_running_the_send_job_again_sends_once(client, admin_user, outbox_sms):
    from distributions import jobs
    from distributions.services import recipients_sweep

    send_sms_case(client, make_sms_workflow(owner=admin_user))
    line = Recipient.objects.get()
    assert jobs.send_recipient(line.pk) == "already sent"
    assert recipients_sweep() == 0
    assert OutboxMessage.objects.count() == 1


def test_a_send_interrupted_after_the_outbox_took_it_is_not_repeated(
    client, admin_user, outbox_sms
):
    from datetime import timedelta

    from django.utils import timezone

    from distributions.services import recipient_send

    send_sms_case(client, make_sms_workflow(owner=admin_user))
    line = Recipient.objects.get()
    # The worker stopped after the provider call, before recording it.
    Recipient.objects.filter(pk=line.pk).update(
        status="pending",
        provider_message_id="",
        sent_at=None,
        sending_started_at=timezone.now() - timedelta(hours=1),
    )
    assert recipient_send(recipient_id=line.pk) == "sent (found after an interruption)"
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert line.provider_message_id == OutboxMessage.objects.get().provider_message_id


def test_the_opt_out_page_of_a_text_speaks_of_text_messages(client, admin_user, outbox_sms):
    send_sms_case(client, make_sms_workflow(owner=admin_user))
    line = Recipient.objects.get()
    path = line.message.snapshot["links"]["OptOutURL"].removeprefix("http://testserver")
    page = client.get(path).content.decode()
    assert "Unsubscribe the number ending in 0100 from survey invitations by text message?" in page
    assert "email" not in page.split("<main")[1]
    done = client.post(path).content.decode()
    assert "You will not receive further survey invitations by text message." in done
    contact = Contact.objects.get()
    assert (contact.sms_opted_out, contact.email_opted_out) == (True, False)
    line.refresh_from_db()
    assert line.get_status_display() == "Opted Out"


def test_the_why_page_finds_the_runs_of_a_phone_number(client, admin_user, outbox_sms):
    texted = send_sms_case(client, make_sms_workflow(owner=admin_user), ContactEmail=None)
    send_sms_case(client, make_sms_workflow(owner=admin_user), ContactPhone="+14155550199")
    client.force_login(admin_user)
    for typed in ("(415) 555-0100", "+1 415 555 0100", "415.555.0100"):
        page = client.get("/reports/workflows/why/", {"q": typed}).content.decode()
        assert re.findall(r'data-run="(\d+)"', page) == [str(texted.pk)], typed
    page = client.get("/reports/workflows/why/", {"q": "+1 212 555 0123"}).content.decode()
    assert "No run of +1 212 555 0123." in page
    assert "Runs are found by a phone number through the texts and emails sent with it" in page
    # A local number of another country cannot be read: the page says how to type it.
    page = client.get("/reports/workflows/why/", {"q": "020 7946 0122"}).content.decode()
    assert "looks like a phone number, but not one that can be read" in page
    assert "with + and the country code" in page
    # A record id of digits only is still a record id.
    page = client.get("/reports/workflows/why/", {"q": "500800000012345"}).content.decode()
    assert "Runs are found by the Salesforce record id" in page


def test_the_why_page_finds_a_text_by_its_number_after_the_contact_changed_it(
    client, admin_user, outbox_sms
):
    run = send_sms_case(client, make_sms_workflow(owner=admin_user), ContactEmail=None)
    Contact.objects.update(phone="+14155550188")  # the person has a new number since
    client.force_login(admin_user)
    for typed in ("(415) 555-0100", "+1 415 555 0188"):
        page = client.get("/reports/workflows/why/", {"q": typed}).content.decode()
        assert re.findall(r'data-run="(\d+)"', page) == [str(run.pk)], typed
    listed = client.get("/reports/workflows/", {"q": "415-555-0100"}).content.decode()
    assert f"/reports/workflows/runs/{run.pk}/" in listed


def test_the_why_page_finds_a_run_skipped_on_its_conditions_by_the_number(
    client, admin_user, outbox_sms
):
    # Skipped before any contact or line: the run keeps the number it would have texted.
    workflow = make_sms_workflow(owner=admin_user)
    Workflow.objects.filter(pk=workflow.pk).update(
        conditions={"rules": [{"field": "Priority", "op": "equals", "value": "Low"}]}
    )
    run = send_sms_case(client, workflow, ContactEmail=None)
    run.refresh_from_db()
    assert (run.status, run.phone) == ("skipped", "+14155550100")
    client.force_login(admin_user)
    for typed in ("(415) 555-0100", "+1 415 555 0100"):
        page = client.get("/reports/workflows/why/", {"q": typed}).content.decode()
        assert re.findall(r'data-run="(\d+)"', page) == [str(run.pk)], typed
        assert "condition not met" in page


def test_an_unreadable_email_with_nothing_else_to_recognise_the_person_fails(
    client, admin_user, outbox_sms
):
    """Without the email and with no external data reference the directory would
    match by phone alone, which a family shares: the run would rename someone else."""
    no_reference = {**SMS_MAPPING, "external_data_reference": ""}
    workflow = make_sms_workflow(owner=admin_user, contact=no_reference)
    send_sms_case(client, workflow, ContactEmail="jonas@example.org")
    run = send_sms_case(client, workflow, ContactEmail="anna@", First_Name__c="Anna")
    task = run.task_runs.get()
    assert (task.status, task.error) == ("failed", "not a valid email address: 'anna@'")
    contact = Contact.objects.get()
    assert (contact.first_name, contact.email) == ("Jonas", "jonas@example.org")
