"""Task "XM Directory: Distribute survey": what it records and why it refuses."""

from datetime import timedelta

import pytest
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_set_opt_out
from distributions.models import (
    Distribution,
    EmailSuppression,
    OutboxMessage,
    Recipient,
    VerifiedSender,
)
from distributions.services import recipients_sweep
from surveys.models import SurveyCollaborator, SurveyStatus
from tests.distributions.builders import (
    distribute_task,
    make_distribution_workflow,
    make_sender,
    make_survey,
    send_case,
    task_of,
)
from tests.factories import make_contact, make_mailing_list, make_user, make_workflow
from xmflows import task_types
from xmflows.engine import context_for
from xmflows.models import TaskRun, Workflow

pytestmark = pytest.mark.django_db(transaction=True)


def _run_view(api_client, run) -> dict:
    return api_client.get(f"/api/v1/runs/{run.pk}/").json()


# --- Task failures: the run shows the reason and nothing is sent -------------------


def test_inactive_survey_fails_the_task_with_survey_is_not_active(client, api_client, admin_user):
    survey = make_survey(owner=admin_user, status=SurveyStatus.INACTIVE)
    workflow = make_distribution_workflow(owner=admin_user, survey=survey)
    run = send_case(client, workflow)
    shown = _run_view(api_client, run)
    assert shown["status"] == "failed"
    assert shown["tasks"][0]["status"] == "failed"
    assert shown["tasks"][0]["error"] == "survey is not active"
    assert "survey is not active" in shown["reason"]
    assert not Recipient.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_draft_survey_is_not_active_either(client, admin_user):
    survey = make_survey(owner=admin_user, status=SurveyStatus.DRAFT)
    run = send_case(client, make_distribution_workflow(owner=admin_user, survey=survey))
    assert task_of(run).error == "survey is not active"


def test_someone_elses_survey_without_distribute_permission_fails_naming_both(
    client, api_client, admin_user
):
    owner_of_survey = make_user(username="carol")
    survey = make_survey(owner=owner_of_survey, name="Carol's NPS")
    workflow = make_distribution_workflow(owner=admin_user, survey=survey)
    run = send_case(client, workflow)
    error = _run_view(api_client, run)["tasks"][0]["error"]
    assert "may not distribute survey 'Carol's NPS'" in error
    assert admin_user.username in error and "carol" in error
    assert not OutboxMessage.objects.exists()


def test_distribute_permission_lets_a_collaborator_send(client, admin_user):
    owner_of_survey = make_user(username="dave")
    survey = make_survey(owner=owner_of_survey)
    SurveyCollaborator.objects.create(survey=survey, user=admin_user, can_distribute=True)
    run = send_case(client, make_distribution_workflow(owner=admin_user, survey=survey))
    assert task_of(run).status == "succeeded"
    assert OutboxMessage.objects.count() == 1


def test_view_permission_alone_is_not_enough(client, admin_user):
    survey = make_survey(owner=make_user(username="erin"))
    SurveyCollaborator.objects.create(survey=survey, user=admin_user, can_view=True)
    run = send_case(client, make_distribution_workflow(owner=admin_user, survey=survey))
    assert "may not distribute" in task_of(run).error


def test_a_workflow_owned_by_someone_who_is_not_staff_changes_no_contact(client, api_client):
    # The task saves the contact it sends to, and the directory is changed by staff
    # only: even the owner of the survey may not rewrite contacts through a workflow.
    analyst = make_user(username="analyst", is_staff=False)
    mailing_list = make_mailing_list()
    contact = make_contact(
        directory=mailing_list.directory, email="jonas.berg@example.org", first_name="Jonas"
    )
    workflow = make_distribution_workflow(
        owner=analyst,
        survey=make_survey(owner=analyst),
        mailing_list=mailing_list,
        contact={"email": "${event://ContactEmail}", "first_name": "HACKED"},
    )
    run = send_case(client, workflow)
    task = task_of(run)
    assert task.status == "failed"
    assert task.error == (
        "the workflow's owner analyst may not change the contact directory: only staff "
        "members can (a staff member can copy the workflow and own the copy)"
    )
    contact.refresh_from_db()
    assert contact.first_name == "Jonas"
    assert not Recipient.objects.exists() and not OutboxMessage.objects.exists()


def test_unverified_sender_fails_the_task(client, api_client, admin_user):
    workflow = make_distribution_workflow(
        owner=admin_user, sender=False, message={"from_email": "ceo@unverified.example"}
    )
    VerifiedSender.objects.create(address="@example.com")  # another domain only
    run = send_case(client, workflow)
    shown = _run_view(api_client, run)
    assert shown["tasks"][0]["error"] == "sender address ceo@unverified.example is not verified"
    assert not OutboxMessage.objects.exists()


def test_a_verified_domain_covers_its_addresses(client, admin_user):
    workflow = make_distribution_workflow(
        owner=admin_user, sender=False, message={"from_email": "Care@Example.com"}
    )
    VerifiedSender.objects.create(address="example.com")
    run = send_case(client, workflow)
    assert task_of(run).status == "succeeded"


def test_a_sender_marked_unverified_does_not_count(client, admin_user):
    workflow = make_distribution_workflow(owner=admin_user, sender=False)
    VerifiedSender.objects.create(address="surveys@example.com", verified=False)
    run = send_case(client, workflow)
    assert task_of(run).error == "sender address surveys@example.com is not verified"


# --- Skipped lines: the task succeeds, the line and the output say why ----------------


def test_opted_out_contact_gets_an_opted_out_line_and_no_email(client, api_client, admin_user):
    mailing_list = make_mailing_list()
    contact = make_contact(directory=mailing_list.directory, email="jonas.berg@example.org")
    contact_set_opt_out(contact=contact, channel="email", opted_out=True, source="SMS STOP")
    workflow = make_distribution_workflow(owner=admin_user, mailing_list=mailing_list)
    run = send_case(client, workflow)
    task = _run_view(api_client, run)["tasks"][0]
    assert task["status"] == "succeeded"
    assert task["output"]["recipient_status"] == "Opted Out"
    assert task["output"]["reason"].startswith("contact opted out of email on ")
    line = Recipient.objects.get()
    assert line.get_status_display() == "Opted Out"
    assert line.error == task["output"]["reason"]
    assert line.link is None
    assert not OutboxMessage.objects.exists()


def test_hard_bounced_address_is_skipped_with_the_date(client, api_client, admin_user):
    EmailSuppression.objects.create(address="Jonas.Berg@example.org", reason="hard_bounce")
    run = send_case(client, make_distribution_workflow(owner=admin_user))
    output = _run_view(api_client, run)["tasks"][0]["output"]
    today = timezone.now().strftime("%Y-%m-%d")
    assert output["recipient_status"] == "Skipped"
    assert output["reason"] == f"address hard-bounced on {today}"
    assert Recipient.objects.get().error == f"address hard-bounced on {today}"
    assert not OutboxMessage.objects.exists()


def test_complained_address_is_skipped_too(client, admin_user):
    EmailSuppression.objects.create(address="jonas.berg@example.org", reason="complaint")
    run = send_case(client, make_distribution_workflow(owner=admin_user))
    assert task_of(run).output["reason"].startswith("address complained")


def test_same_message_within_12_hours_is_skipped_naming_the_distribution(
    client, api_client, admin_user
):
    workflow = make_distribution_workflow(owner=admin_user)
    # Two different cases, same person, same wording (same case number shown).
    first = send_case(client, workflow, CaseNumber="00001234")
    second = send_case(client, workflow, CaseNumber="00001234")
    first_distribution = task_of(first).output["distribution_id"]
    output = _run_view(api_client, second)["tasks"][0]["output"]
    assert output["recipient_status"] == "Skipped"
    assert output["reason"] == (
        "the same message was sent to this address within 12 hours "
        f"(distribution {first_distribution})"
    )
    assert OutboxMessage.objects.count() == 1


def test_a_different_message_is_not_a_duplicate(client, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    send_case(client, workflow, CaseNumber="00000001")
    send_case(client, workflow, CaseNumber="00000002")
    assert OutboxMessage.objects.count() == 2


def test_the_same_message_after_12_hours_is_sent_again(client, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    send_case(client, workflow, CaseNumber="00000007")
    Recipient.objects.update(sent_at=timezone.now() - timedelta(hours=12, minutes=1))
    send_case(client, workflow, CaseNumber="00000007")
    assert OutboxMessage.objects.count() == 2


# --- What a sent line holds -------------------------------------------------------------


def test_line_freezes_the_rendered_message_and_the_snapshot(client, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    run = send_case(client, workflow, CaseNumber="00004242", Priority="Low")
    line = Recipient.objects.select_related("link").get()
    assert line.get_status_display() == "Sent"
    assert line.subject == "How did we do, Jonas?"
    body = line.message.body_html
    assert "case 00004242" in body
    assert f'<a href="http://testserver/s/{line.link.token}/">Take the survey</a>' in body
    assert line.message.snapshot["links"]["OptOutURL"] == f"http://testserver/o/{line.link.token}/"
    assert line.record_id == run.record_id
    assert line.workflow_run_id == run.pk
    assert line.link.snapshot["embedded_data"] == {"CaseNumber": "00004242", "Priority": "Low"}
    assert line.link.snapshot["contact"]["FirstName"] == "Jonas"
    assert line.link.snapshot["event_fields"]["Priority"] == "Low"
    # A later change of the contact changes neither the line nor the link.
    Contact.objects.update(first_name="Someone else")
    line.refresh_from_db()
    line.link.refresh_from_db()
    assert line.subject == "How did we do, Jonas?"
    assert line.link.snapshot["contact"]["FirstName"] == "Jonas"
    output = task_of(run).output
    assert output["distribution_id"] == line.distribution_id
    assert output["recipient_id"] == line.pk
    assert output["contact_id"] == line.contact_id
    assert output["survey_link"] == f"http://testserver/s/{line.link.token}/"
    assert output["status"] == "Pending"  # what the task left; the send job followed


def test_the_transaction_of_an_earlier_task_is_in_the_snapshot(client, admin_user):
    mailing_list = make_mailing_list()
    make_contact(directory=mailing_list.directory, email="jonas.berg@example.org")
    survey = make_survey(owner=admin_user)
    make_sender()
    workflow = make_workflow(
        owner=admin_user,
        tasks=[
            {
                "type": "add_to_directory",
                "mode": "transaction",
                "mailing_list": mailing_list.pk,
                "contact": {"email": "${event://ContactEmail}"},
                "embedded_data": {"CaseNumber": "${event://CaseNumber}"},
            },
            distribute_task(survey=survey, mailing_list=mailing_list, embedded_data={}),
        ],
    )
    send_case(client, workflow, CaseNumber="00000555")
    line = Recipient.objects.select_related("link").get()
    assert line.link.snapshot["transaction"] == {"CaseNumber": "00000555"}


def test_unknown_placeholders_are_warnings_in_the_output(client, admin_user):
    workflow = make_distribution_workflow(
        owner=admin_user, message={"subject": "Hi ${m://FirstName}, ${event://Nope__c}"}
    )
    run = send_case(client, workflow)
    warnings = task_of(run).output["warnings"]
    assert any("${event://Nope__c}" in warning for warning in warnings)
    assert Recipient.objects.get().subject == "Hi Jonas,"


def test_missing_email_fails_the_task_naming_the_field(client, admin_user):
    run = send_case(client, make_distribution_workflow(owner=admin_user), ContactEmail=None)
    assert (
        task_of(run).error == "email is required but rendered empty from '${event://ContactEmail}'"
    )
    assert not Distribution.objects.exists()


def test_a_send_delay_schedules_the_line_and_the_sweeper_sends_it_when_due(client, admin_user):
    run = send_case(client, make_distribution_workflow(owner=admin_user, send_delay_minutes=120))
    assert task_of(run).status == "succeeded"
    line = Recipient.objects.get()
    assert line.get_status_display() == "Scheduled"
    assert line.scheduled_for > timezone.now() + timedelta(minutes=119)
    assert task_of(run).output["recipient_status"] == "Scheduled"
    assert recipients_sweep() == 0  # not due yet
    assert not OutboxMessage.objects.exists()
    assert recipients_sweep(now=line.scheduled_for + timedelta(seconds=1)) == 1
    Recipient.objects.update(scheduled_for=timezone.now() - timedelta(seconds=1))
    recipients_sweep()
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert OutboxMessage.objects.count() == 1


def test_link_expiry_is_set_on_the_personal_link(client, admin_user):
    send_case(client, make_distribution_workflow(owner=admin_user, link_expiry_days=7))
    link = Recipient.objects.select_related("link").get().link
    assert timedelta(days=6, hours=23) < link.expires_at - timezone.now() <= timedelta(days=7)


def test_a_retried_run_does_not_create_a_second_line(client, api_client, admin_user):
    survey = make_survey(owner=admin_user, status=SurveyStatus.INACTIVE)
    run = send_case(client, make_distribution_workflow(owner=admin_user, survey=survey))
    assert task_of(run).status == "failed"
    survey.status = SurveyStatus.ACTIVE
    survey.save()
    api_client.post(f"/api/v1/runs/{run.pk}/retry/")
    api_client.post(f"/api/v1/runs/{run.pk}/retry/")  # refused: no longer failed
    assert TaskRun.objects.get(run=run).status == "succeeded"
    assert Recipient.objects.count() == 1
    assert OutboxMessage.objects.count() == 1


# --- Configuration (HTTP 400 on save) ---------------------------------------------------


def _definition(task: dict) -> dict:
    return {
        "name": "Survey email",
        "event": {"type": "salesforce_outbound_message", "object": "Case"},
        "tasks": [task],
    }


@pytest.mark.parametrize("channel", ["sms", "sms_survey"])
def test_sms_channels_refuse_an_email_message_clearly(api_client, admin_user, channel):
    # The SMS channels take `message.text` (tests/distributions/test_sms_distribute.py).
    task = distribute_task(survey=make_survey(owner=admin_user), mailing_list=make_mailing_list())
    task["channel"] = channel
    response = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert response.status_code == 400
    errors = response.json()["tasks"][0]["message"]
    assert errors["text"] == ["This field is required."]
    # The email's keys are named as what they are here: unknown.
    assert errors["subject"] == ["unknown key; expected one of: text"]


def test_an_unverified_sender_is_refused_on_save(api_client, admin_user):
    # Saved, it would fail every run with "not verified"; the builder says the same.
    task = distribute_task(survey=make_survey(owner=admin_user), mailing_list=make_mailing_list())
    task["message"]["from_email"] = "ceo@elsewhere.test"
    response = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert response.status_code == 400
    assert response.json()["tasks"][0]["message"]["from_email"] == [
        "ceo@elsewhere.test is not a verified sender; a staff member adds it (or its "
        "domain) under Admin → Verified senders first"
    ]
    make_sender("ceo@elsewhere.test")
    response = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert response.status_code == 201, response.json()


def test_every_problem_of_a_task_is_reported_at_once(api_client, admin_user):
    make_sender()
    task = distribute_task(survey=make_survey(owner=admin_user), mailing_list=make_mailing_list())
    task["mailing_list"] = 999999
    task["contact"] = {**task["contact"], "last_name": "", "email": ""}
    response = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert response.status_code == 400
    errors = response.json()["tasks"][0]
    assert set(errors) == {"mailing_list", "contact"}
    assert set(errors["contact"]) == {"last_name", "email"}


def test_a_misspelled_option_is_refused_not_dropped(api_client, admin_user):
    # Dropped silently, these would send at once, never expire and remind on the
    # wrong condition: a definition edited by hand must say what it does not know.
    task = distribute_task(survey=make_survey(owner=admin_user), mailing_list=make_mailing_list())
    task["send_delay_minute"] = 60
    task["reminder"] = {"after_days": 3, "subject": "r", "body": "b", "whn": "not_finished"}
    task["contact"]["emial"] = "${e://ContactEmail}"
    definition = {**_definition(task), "condition": {"rules": []}}
    response = api_client.post("/api/v1/workflows/", definition, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert errors["condition"][0].startswith("unknown key; expected one of: ")
    task_errors = errors["tasks"][0]
    assert task_errors["send_delay_minute"][0].startswith("unknown key; expected one of: ")
    assert "send_delay_minutes" in task_errors["send_delay_minute"][0]
    assert task_errors["reminder"]["whn"][0].startswith("unknown key")
    assert task_errors["contact"]["emial"][0].startswith("unknown key")
    assert not Workflow.objects.exists()


def test_unknown_survey_is_refused(api_client, admin_user):
    task = distribute_task(survey=make_survey(owner=admin_user), mailing_list=make_mailing_list())
    task["survey"] = 999999
    response = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert response.status_code == 400
    assert response.json()["tasks"][0]["survey"] == ["survey 999999 does not exist"]


def test_an_unmapped_email_is_refused(api_client, admin_user):
    make_sender()
    task = distribute_task(survey=make_survey(owner=admin_user), mailing_list=make_mailing_list())
    task["contact"] = {**task["contact"], "email": ""}
    response = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert response.status_code == 400
    assert "email" in response.json()["tasks"][0]["contact"]


def test_negative_delay_and_bad_sender_are_refused(api_client, admin_user):
    task = distribute_task(
        survey=make_survey(owner=admin_user),
        mailing_list=make_mailing_list(),
        send_delay_minutes=-5,
        message={"from_email": "not an address"},
    )
    response = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert response.status_code == 400
    errors = response.json()["tasks"][0]
    assert "send_delay_minutes" in errors
    assert "from_email" in errors["message"]


def test_a_valid_definition_round_trips_through_export(api_client, admin_user):
    make_sender()
    task = distribute_task(survey=make_survey(owner=admin_user), mailing_list=make_mailing_list())
    created = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert created.status_code == 201, created.json()
    exported = api_client.get(f"/api/v1/workflows/{created.json()['id']}/export/").json()
    saved = exported["tasks"][0]
    assert saved["type"] == "distribute_survey"
    assert saved["message"]["subject"] == task["message"]["subject"]
    assert saved["send_delay_minutes"] == 0


def test_preview_renders_the_email_and_writes_nothing(client, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    run = send_case(client, workflow)
    task = workflow.tasks.get()
    lines_before = Recipient.objects.count()
    preview = task_types.get("distribute_survey")(task.config).preview(
        context_for(run, dry_run=True)
    )
    assert preview["subject"] == "How did we do, Jonas?"
    assert preview["to"] == "jonas.berg@example.org"
    # The same message just went to this address: the preview says it would be skipped.
    assert preview["action"].startswith("would record the line as Skipped: the same message")
    assert Recipient.objects.count() == lines_before
    task_type = task_types.get("distribute_survey")
    survey = make_survey(owner=admin_user, status=SurveyStatus.INACTIVE, name="Closed")
    closed = task_type({**task.config, "survey": survey.pk}).preview(context_for(run, dry_run=True))
    assert closed["error"] == "survey is not active"


@pytest.mark.django_db(transaction=True)
def test_a_declared_field_salesforce_left_out_is_empty_not_unknown(client, admin_user):
    from tests.distributions.builders import distribute_task, make_sender, make_survey
    from tests.factories import make_mailing_list, make_workflow

    make_sender()
    task = distribute_task(
        survey=make_survey(owner=admin_user),
        mailing_list=make_mailing_list(),
        message={"subject": "Case ${event://Region__c} ${event://Nowhere__c}"},
    )
    workflow = make_workflow(
        owner=admin_user,
        tasks=[task],
        event={"type": "salesforce_outbound_message", "object": "Case", "fields": ["Region__c"]},
    )
    run = send_case(client, workflow)  # the message carries no Region__c: null, omitted
    warnings = run.task_runs.get().output["warnings"]
    assert any("${event://Region__c}" in w and "is empty" in w for w in warnings), warnings
    assert not any("${event://Region__c}" in w and "unknown" in w for w in warnings)
    assert any("${event://Nowhere__c}" in w and "names an unknown field" in w for w in warnings)
