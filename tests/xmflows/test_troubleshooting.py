"""Troubleshooting aids (SPEC F9): the event test button, dry run, replay."""

import pytest

from contacts.models import Contact, MailingList
from distributions.models import Distribution, OutboxMessage, Recipient, VerifiedSender
from surveys.models import SurveyStatus
from tests.conftest import fixture_bytes
from tests.factories import (
    make_contact,
    make_mailing_list,
    make_survey,
    make_user,
    make_workflow,
    post_soap,
)
from xmflows.models import Delivery, DeliveryOutcome, Run, RunTrigger

pytestmark = pytest.mark.django_db(transaction=True)

SENDER = "surveys@example.com"
MAPPING = {
    "first_name": "${event://First_Name__c}",
    "last_name": "${event://Last_Name__c}",
    "email": "${event://ContactEmail}",
    "phone": "",
    "external_data_reference": "",
    "language": "",
}


@pytest.fixture(autouse=True)
def outbox_backend(settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"


@pytest.fixture
def owner():
    return make_user(username="owner")


def survey_workflow(owner, *, conditions=None, survey=None, **overrides):
    VerifiedSender.objects.get_or_create(address=SENDER)
    survey = survey or make_survey(owner=owner)
    task = {
        "type": "distribute_survey",
        "channel": "email",
        "survey": survey.pk,
        "mailing_list": make_mailing_list().pk,
        "contact": dict(MAPPING),
        "embedded_data": {"CaseNumber": "${event://CaseNumber}", "Rec": "${event://RecordId}"},
        "message": {
            "from_name": "Care",
            "from_email": SENDER,
            "reply_to": "",
            "subject": "How did we do, ${m://FirstName}?",
            "body": "<p>Case ${e://Field/CaseNumber}</p><p>${l://SurveyLink?d=Go}</p>",
        },
        "send_delay_minutes": 0,
    }
    return make_workflow(
        owner=owner,
        conditions=conditions or {},
        tasks=[task],
        event={"object": "Case", "fields": ["CaseNumber"]},
        **overrides,
    )


CLOSED = {"match": "all", "rules": [{"field": "IsClosed", "op": "equals", "value": "true"}]}


# --- Event test -----------------------------------------------------------------------


def test_event_test_posts_a_sample_through_the_endpoint_and_shows_its_run(client, owner):
    workflow = survey_workflow(owner, conditions=CLOSED)
    client.force_login(owner)
    response = client.post(f"/workflows/{workflow.pk}/test-event/")
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/reports/workflows/runs/{run.pk}/"
    assert run.trigger == RunTrigger.TEST
    delivery = Delivery.objects.get()
    assert delivery.outcome == DeliveryOutcome.ACCEPTED
    assert delivery.user_agent.startswith("xmflows event test")
    payload = run.notification.payload
    assert payload["object_type"] == "Case"
    fields = payload["fields"]
    # Declared, and referenced by the tasks, with values that fit their names …
    assert fields["ContactEmail"] == "test.contact@example.com"
    assert (fields["First_Name__c"], fields["Last_Name__c"]) == ("Test", "Contact")
    assert fields["CaseNumber"].isdigit()
    # … and made to meet the workflow's conditions, so the test shows the tasks at work.
    assert fields["IsClosed"] == "true"
    # The notification's own facts are not record fields: none is invented for them.
    assert "RecordId" not in fields and "ObjectType" not in fields
    run.refresh_from_db()
    assert run.status == "succeeded", run.reason
    assert OutboxMessage.objects.get().to == "test.contact@example.com"

    page = client.get(response["Location"]).content.decode()
    assert "Test message" in page and "went through the event URL" in page

    # A second test is a new notification, never swallowed as a duplicate.
    client.post(f"/workflows/{workflow.pk}/test-event/")
    assert Run.objects.count() == 2


def test_event_test_on_a_restricted_org_uses_that_org(client, owner):
    workflow = survey_workflow(owner)
    event = workflow.event
    event.organization_id = "00D8a000000XyZaEAK"
    event.save()
    client.force_login(owner)
    client.post(f"/workflows/{workflow.pk}/test-event/")
    assert Run.objects.get().notification.payload["organization_id"] == "00D8a000000XyZaEAK"


def test_event_test_of_a_disabled_workflow_says_why_it_was_refused(client, owner):
    workflow = survey_workflow(owner, enabled=False)
    client.force_login(owner)
    response = client.post(f"/workflows/{workflow.pk}/test-event/", follow=True)
    assert not Run.objects.exists()
    assert "The endpoint refused the sample message: event disabled" in response.content.decode()
    assert "This workflow is disabled: tick Enabled in its editor" in response.content.decode()
    assert Delivery.objects.get().outcome == DeliveryOutcome.REJECTED


def test_only_the_owner_or_staff_may_test_an_event(client, owner):
    workflow = survey_workflow(owner)
    client.force_login(make_user(username="someone", is_staff=False))
    assert client.post(f"/workflows/{workflow.pk}/test-event/").status_code == 403
    assert client.get(f"/workflows/{workflow.pk}/test-event/").status_code == 405
    client.force_login(make_user(username="admin", is_staff=True))
    assert client.post(f"/workflows/{workflow.pk}/test-event/").status_code == 302
    assert Run.objects.count() == 1


# --- Dry run ----------------------------------------------------------------------------


def counts():
    return {
        "runs": Run.objects.count(),
        "outbox": OutboxMessage.objects.count(),
        "contacts": Contact.objects.count(),
        "distributions": Distribution.objects.count(),
        "lines": Recipient.objects.count(),
    }


def test_dry_run_shows_what_the_current_workflow_would_do_and_sends_nothing(client, owner):
    workflow = survey_workflow(owner, conditions=CLOSED)
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    run = Run.objects.get()
    # The workflow changes after the message came: the dry run uses it as it is now.
    task = workflow.tasks.get()
    task.config["message"]["subject"] = "Thanks ${m://FirstName}, case ${e://Field/CaseNumber}"
    task.save()
    before = counts()
    client.force_login(owner)
    page = client.get(f"/reports/workflows/runs/{run.pk}/dry-run/").content.decode()
    assert counts() == before
    assert "Met: the tasks would run." in page
    assert "IsClosed" in page and "passes" in page
    assert "Thanks Jonas, case 00003101" in page
    assert "jonas.berg@example.org" in page
    # A new subject is a new message: the 12-hour duplicate rule would not stop it.
    assert "Would send" in page
    assert 'id="replay"' in page


def test_dry_run_explains_a_condition_that_fails_and_a_task_that_would(client, owner):
    inactive = make_survey(owner=owner, status=SurveyStatus.INACTIVE)
    workflow = survey_workflow(
        owner,
        survey=inactive,
        conditions={
            "match": "all",
            "rules": [
                {"field": "Status", "op": "equals", "value": "Open"},
                {"field": "Priority", "op": "is_not_empty"},
            ],
        },
    )
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    run = Run.objects.get()
    before = counts()
    client.force_login(owner)
    page = client.get(f"/reports/workflows/runs/{run.pk}/dry-run/").content.decode()
    assert counts() == before
    assert "Not met: the run would be skipped" in page
    assert "Status equals" in page and "fails" in page
    # Operators as people read them, not their keys.
    assert "<td>is not empty</td>" in page and "is_not_empty" not in page
    assert "Would fail: survey is not active" in page


def test_dry_run_rolls_back_a_preview_that_writes(client, owner, task_probe, monkeypatch):
    """The guard around previews: even a task type whose preview writes leaves nothing."""
    from xmflows import task_types

    probe_type = task_types.get("test_probe")

    def writing_preview(self, ctx):
        make_user(username="written-by-a-preview")
        return {"action": "wrote"}

    monkeypatch.setattr(probe_type, "preview", writing_preview, raising=False)
    workflow = make_workflow(owner=owner, tasks=[{"type": "test_probe", "label": "a"}])
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    client.force_login(owner)
    page = client.get(f"/reports/workflows/runs/{Run.objects.get().pk}/dry-run/").content.decode()
    assert "Wrote" in page
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="written-by-a-preview").exists()


# --- Replay -------------------------------------------------------------------------------


def test_replay_creates_a_new_run_of_the_same_notification(client, owner):
    workflow = survey_workflow(owner)
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    original = Run.objects.get()
    client.force_login(owner)
    response = client.post(f"/reports/workflows/runs/{original.pk}/replay/")
    replay = Run.objects.exclude(pk=original.pk).get()
    assert response["Location"] == f"/reports/workflows/runs/{replay.pk}/"
    assert replay.trigger == RunTrigger.REPLAY
    assert replay.notification_id == original.notification_id
    assert replay.record_id == original.record_id
    assert replay.status == "succeeded"
    # It ran for real, and met the 12-hour duplicate rule: a second line, skipped.
    lines = list(Recipient.objects.order_by("id").values_list("workflow_run_id", "status"))
    assert lines == [(original.pk, "sent"), (replay.pk, "skipped")]
    assert OutboxMessage.objects.count() == 1
    page = client.get(response["Location"]).content.decode()
    assert "Replay" in page and "the same message was sent to this address within 12 hours" in page


def test_replay_is_for_the_owner_or_staff_and_only_by_post(client, owner):
    workflow = survey_workflow(owner)
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    run = Run.objects.get()
    client.force_login(make_user(username="someone", is_staff=False))
    assert client.post(f"/reports/workflows/runs/{run.pk}/replay/").status_code == 403
    client.force_login(owner)
    assert client.get(f"/reports/workflows/runs/{run.pk}/replay/").status_code == 405
    assert client.post("/reports/workflows/runs/999999/replay/").status_code == 404
    assert Run.objects.count() == 1


def test_dry_run_of_a_transaction_workflow_matches_what_a_replay_does(client, owner):
    """The transaction task's preview passes its data on, as the run does: ${tx://…} is
    known, and the message compared by the 12-hour rule is the one a replay sends."""
    owner.is_staff = True  # its transaction task changes the directory: staff only
    owner.save(update_fields=["is_staff"])
    workflow = survey_workflow(owner)
    distribute = workflow.tasks.get()
    mailing_list_id = distribute.config["mailing_list"]
    make_contact(
        mailing_lists=[MailingList.objects.get(pk=mailing_list_id)],
        first_name="Jonas",
        last_name="Berg",
        email="jonas.berg@example.org",
    )
    distribute.config["message"]["subject"] = "Your order ${tx://Field/OrderNo}"
    distribute.position = 1
    distribute.save()
    workflow.tasks.create(
        position=0,
        type="add_to_directory",
        config={
            "mode": "transaction",
            "mailing_list": mailing_list_id,
            "contact": {"email": "${event://ContactEmail}"},
            "embedded_data": {"OrderNo": "${event://CaseNumber}"},
        },
    )
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    run = Run.objects.get()
    assert run.status == "succeeded", run.reason
    assert OutboxMessage.objects.get().subject == "Your order 00003101"

    client.force_login(owner)
    page = client.get(f"/reports/workflows/runs/{run.pk}/dry-run/").content.decode()
    assert "Your order 00003101" in page
    assert "names an unknown field" not in page
    # The invitation went minutes ago: a replay would be stopped by the 12-hour rule,
    # and the dry run says so instead of "Would send".
    assert "the same message was sent to this address within 12 hours" in page
    assert "Would send" not in page


def test_dry_run_knows_a_contact_an_earlier_task_would_create(client, owner):
    owner.is_staff = True  # its first task changes the directory: staff only
    owner.save(update_fields=["is_staff"])
    mailing_list = make_mailing_list()
    save = {
        "type": "add_to_directory",
        "mailing_list": mailing_list.pk,
        "contact": dict(MAPPING),
        "embedded_data": {},
    }
    add_transaction = {
        **save,
        "mode": "transaction",
        "contact": {"email": "${event://ContactEmail}"},
        "embedded_data": {"Case": "${event://CaseNumber}"},
    }
    workflow = make_workflow(owner=owner, tasks=[save, add_transaction])
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    run = Run.objects.get()
    assert run.status == "succeeded", run.reason
    Contact.objects.all().delete()  # gone since: the replay would create it again
    client.force_login(owner)
    page = client.get(f"/reports/workflows/runs/{run.pk}/dry-run/").content.decode()
    assert "Would create" in page
    assert "Would add a transaction to the contact task 1 would create" in page
    assert "Would fail" not in page
    assert "<h4>Transaction data</h4>" in page


def test_dry_run_says_which_tasks_a_stopping_failure_would_keep_from_running(client, owner):
    inactive = make_survey(owner=owner, status=SurveyStatus.INACTIVE)
    workflow = survey_workflow(owner, survey=inactive)
    workflow.tasks.create(
        position=1,
        type="add_to_directory",
        config={
            "mailing_list": make_mailing_list().pk,
            "contact": dict(MAPPING),
            "embedded_data": {},
        },
    )
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    client.force_login(owner)
    page = client.get(f"/reports/workflows/runs/{Run.objects.get().pk}/dry-run/").content.decode()
    assert "Would fail: survey is not active" in page
    assert "Would not run: task 1 would fail and the workflow stops on failure." in page
