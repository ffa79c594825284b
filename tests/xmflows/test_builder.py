"""The workflow builder form: saving, round trips, validation errors beside their fields,
no-script buttons, owner-only editing, CSRF, the {a} menu and the piped-text preview."""

import html
import json
import re

import pytest
from django.test import Client

from distributions.models import OutboxMessage, Recipient, VerifiedSender
from tests.conftest import fixture_bytes
from tests.factories import (
    event_path,
    make_mailing_list,
    make_survey,
    make_user,
    make_workflow,
    post_soap,
)
from tests.html_forms import form_fields
from xmflows.models import Run, Workflow

pytestmark = pytest.mark.django_db(transaction=True)

SENDER = "surveys@example.com"


@pytest.fixture(autouse=True)
def outbox_backend(settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"


@pytest.fixture
def owner():
    return make_user(username="owner")


@pytest.fixture
def setup(owner):
    """A mailing list, an active survey and a verified sender: what the demo needs."""
    VerifiedSender.objects.get_or_create(address=SENDER)
    return {"mailing_list": make_mailing_list(), "survey": make_survey(owner=owner)}


def demo_post(setup, **changes) -> dict[str, str]:
    """The builder's fields for "closed case → survey email", as a browser posts them."""
    data = {
        "csrfmiddlewaretoken": "ignored-by-the-test-client",
        "op": "save",
        "name": "Closed case survey",
        "enabled": "on",
        "event.object": "Case",
        "event.organization_id": "",
        "event.fields": "First_Name__c\r\nLast_Name__c",
        "conditions.match": "all",
        "conditions.rules.0.field": "IsClosed",
        "conditions.rules.0.op": "equals",
        "conditions.rules.0.value": "true",
        "tasks.0.type": "distribute_survey",
        "tasks.0.survey": str(setup["survey"].pk),
        "tasks.0.channel": "email",
        "tasks.0.mailing_list": str(setup["mailing_list"].pk),
        "tasks.0.contact.first_name": "${event://First_Name__c}",
        "tasks.0.contact.last_name": "${event://Last_Name__c}",
        "tasks.0.contact.email": "${event://ContactEmail}",
        "tasks.0.contact.phone": "",
        "tasks.0.contact.external_data_reference": "${event://ContactId}",
        "tasks.0.contact.language": "",
        "tasks.0.embedded_data.0.name": "CaseNumber",
        "tasks.0.embedded_data.0.value": "${event://CaseNumber}",
        "tasks.0.embedded_data.1.name": "",
        "tasks.0.embedded_data.1.value": "",
        "tasks.0.message.from_name": "Customer Care",
        "tasks.0.message.from_email": SENDER,
        "tasks.0.message.reply_to": "",
        "tasks.0.message.subject": "How did we do, ${m://FirstName}?",
        "tasks.0.message.body": (
            "<p>Hello ${m://FirstName},</p>\r\n<p>${l://SurveyLink?d=Take the survey}</p>"
        ),
        "tasks.0.message.text": "",
        "tasks.0.send_delay_minutes": "0",
        "on_failure": "stop",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def errors_beside(html: str, input_id: str) -> list[str]:
    """The messages the page shows right under one input."""
    found = re.search(
        rf'<ul class="field-errors" id="{re.escape(input_id)}-errors"[^>]*>(.*?)</ul>', html, re.S
    )
    return re.findall(r"<li>(.*?)</li>", found.group(1)) if found else []


# --- Saving ------------------------------------------------------------------------------


def test_new_workflow_page_is_the_builder(client, owner):
    client.force_login(owner)
    page = client.get("/workflows/new/").content.decode()
    assert 'name="event.object"' in page and 'list="object-suggestions"' in page
    for name in ("Case", "Lead", "Opportunity", "Contact", "Account"):
        assert f'<option value="{name}">' in page
    assert 'id="task-template-distribute_survey"' in page
    assert 'id="task-template-add_to_directory"' in page
    assert 'value="add_task:distribute_survey"' in page  # works without the script too
    assert "/static/js/builder.js" in page
    assert "/workflows/new/json/" in page  # the JSON editor stays, as the advanced view


def test_builder_saves_the_demo_workflow_through_the_serializer(client, owner, setup):
    client.force_login(owner)
    response = client.post("/workflows/new/", demo_post(setup))
    assert response.status_code == 302, response.content.decode()[:2000]
    workflow = Workflow.objects.get(name="Closed case survey")
    assert response["Location"] == f"/workflows/{workflow.pk}/"
    assert workflow.owner == owner and workflow.enabled
    assert workflow.event.object_name == "Case"
    assert workflow.event.fields == ["First_Name__c", "Last_Name__c"]
    assert workflow.conditions == {
        "match": "all",
        "rules": [{"field": "IsClosed", "op": "equals", "value": "true"}],
    }
    (task,) = workflow.tasks.all()
    assert task.type == "distribute_survey"
    assert task.config["survey"] == setup["survey"].pk
    assert task.config["mailing_list"] == setup["mailing_list"].pk
    assert task.config["embedded_data"] == {"CaseNumber": "${event://CaseNumber}"}
    assert task.config["contact"]["email"] == "${event://ContactEmail}"
    # Textarea line breaks arrive as CRLF and are kept as LF.
    assert task.config["message"]["body"] == (
        "<p>Hello ${m://FirstName},</p>\n<p>${l://SurveyLink?d=Take the survey}</p>"
    )
    assert "text" not in task.config["message"]  # only the email channel's fields

    # And it works: the sample case goes through to an email in the outbox.
    assert (
        post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml")).status_code == 200
    )
    sent = OutboxMessage.objects.get()
    assert sent.to == "jonas.berg@example.org"
    assert sent.subject == "How did we do, Jonas?"


def test_an_sms_invitation_keeps_only_its_text(client, owner, setup):
    client.force_login(owner)
    data = demo_post(
        setup,
        **{
            "tasks.0.channel": "sms",
            "tasks.0.contact.email": "",
            "tasks.0.contact.phone": "${event://ContactPhone}",
            "tasks.0.message.text": "Hi ${m://FirstName}, how did we do? ${l://SurveyURL}",
        },
    )
    response = client.post("/workflows/new/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    config = Workflow.objects.get().tasks.get().config
    assert config["channel"] == "sms"
    assert config["message"] == {"text": "Hi ${m://FirstName}, how did we do? ${l://SurveyURL}"}
    page = client.get(response["Location"]).content.decode()
    # The page shows the SMS text and hides the email fields (also without the script).
    assert re.search(
        r'data-channel-group="email" hidden>\s*<label for="f-tasks-0-message-subject"', page
    )
    assert re.search(r'data-channel-group="sms">\s*<label for="f-tasks-0-message-text"', page)


def test_cards_and_rows_are_ordered_as_the_page_posts_them(client, owner, setup):
    """The script moves cards without renumbering: the post's order decides."""
    client.force_login(owner)
    data = demo_post(setup)
    add_task = {
        "tasks.1007.type": "add_to_directory",
        "tasks.1007.mode": "embedded_data",
        "tasks.1007.mailing_list": str(setup["mailing_list"].pk),
        "tasks.1007.contact.first_name": "${event://First_Name__c}",
        "tasks.1007.contact.last_name": "${event://Last_Name__c}",
        "tasks.1007.contact.email": "${event://ContactEmail}",
        "tasks.1007.embedded_data.1009.name": "Priority",
        "tasks.1007.embedded_data.1009.value": "${event://Priority}",
        "tasks.1007.embedded_data.1008.name": "CaseNumber",
        "tasks.1007.embedded_data.1008.value": "${event://CaseNumber}",
    }
    # The new card first, as if moved above the survey task.
    ordered = {**{k: v for k, v in data.items() if not k.startswith("tasks.")}, **add_task}
    ordered.update({k: v for k, v in data.items() if k.startswith("tasks.")})
    assert client.post("/workflows/new/", ordered).status_code == 302
    workflow = Workflow.objects.get()
    assert [task.type for task in workflow.tasks.order_by("position")] == [
        "add_to_directory",
        "distribute_survey",
    ]
    embedded = workflow.tasks.get(position=0).config["embedded_data"]
    assert list(embedded) == ["Priority", "CaseNumber"]


def test_edit_page_posts_back_the_same_definition(client, owner, setup):
    """Every setting survives a save from the builder, also keys it has no input for."""
    client.force_login(owner)
    assert client.post("/workflows/new/", demo_post(setup)).status_code == 302
    workflow = Workflow.objects.get()
    task = workflow.tasks.get()
    task.config["link_expiry_days"] = 14
    task.save()
    before = client.get(f"/api/v1/workflows/{workflow.pk}/export/").json()

    page = client.get(f"/workflows/{workflow.pk}/edit/").content.decode()
    fields = dict(form_fields(page, "builder"))
    assert fields["tasks.0.message.subject"] == "How did we do, ${m://FirstName}?"
    assert client.post(f"/workflows/{workflow.pk}/edit/", fields).status_code == 302
    after = client.get(f"/api/v1/workflows/{workflow.pk}/export/").json()
    assert after == before
    assert after["tasks"][0]["link_expiry_days"] == 14


def test_a_copy_names_the_survey_it_may_not_distribute_and_still_saves(client, owner, setup):
    # Another user copies the owner's workflow; the owner's survey is not shared with them.
    client.force_login(owner)
    assert client.post("/workflows/new/", demo_post(setup)).status_code == 302
    original = Workflow.objects.get()
    copier = make_user(username="copier", is_staff=False)
    client.force_login(copier)
    assert client.post(f"/workflows/{original.pk}/copy/").status_code == 302
    copy = Workflow.objects.get(owner=copier)
    page = client.get(f"/workflows/{copy.pk}/edit/").content.decode()
    survey = setup["survey"]
    assert "not shared with you to distribute" in html.unescape(page)
    fields = dict(form_fields(page, "builder"))
    assert fields["tasks.0.survey"] == str(survey.pk)  # still chosen, not blank
    fields["name"] = "My copy"
    assert client.post(f"/workflows/{copy.pk}/edit/", fields).status_code == 302
    copy.refresh_from_db()
    assert copy.name == "My copy"


def test_edit_page_shows_the_mapping_rows_in_the_order_they_were_saved(client, owner, setup):
    # Neither alphabetical nor PostgreSQL jsonb's order (shorter keys first).
    order = ["CaseNumber", "Zeta", "A"]
    rows = {}
    for number, name in enumerate(order):
        rows[f"tasks.0.embedded_data.{number}.name"] = name
        rows[f"tasks.0.embedded_data.{number}.value"] = "${event://CaseNumber}"
    client.force_login(owner)
    assert client.post("/workflows/new/", demo_post(setup, **rows)).status_code == 302

    page = client.get(f"/workflows/{Workflow.objects.get().pk}/edit/").content.decode()
    names = [
        value
        for name, value in form_fields(page, "builder")
        if re.fullmatch(r"tasks\.0\.embedded_data\.\d+\.name", name) and value
    ]
    assert names == order


def test_a_task_type_without_a_form_is_edited_as_json(client, owner, task_probe):
    client.force_login(owner)
    workflow = make_workflow(owner=owner, tasks=[{"type": "test_probe", "label": "a"}])
    page = client.get(f"/workflows/{workflow.pk}/edit/").content.decode()
    fields = dict(form_fields(page, "builder"))
    assert json.loads(fields["tasks.0.config_json"]) == {"label": "a"}
    fields["tasks.0.config_json"] = '{"label": "b"}'
    assert client.post(f"/workflows/{workflow.pk}/edit/", fields).status_code == 302
    assert workflow.tasks.get().config["label"] == "b"

    fields["tasks.0.config_json"] = "{not json"
    bad = client.post(f"/workflows/{workflow.pk}/edit/", fields)
    assert bad.status_code == 400
    assert errors_beside(bad.content.decode(), "f-tasks-0-config_json")[0].startswith(
        "not valid JSON"
    )


def saved_page_warnings(client, response) -> list[str]:
    assert response.status_code == 302, response.content.decode()[:2000]
    page = client.get(response["Location"]).content.decode()
    return [html.unescape(text) for text in re.findall(r'<li class="warning">(.*?)</li>', page)]


def test_a_condition_on_a_field_nobody_knows_is_saved_with_a_warning(client, owner, setup):
    client.force_login(owner)
    response = client.post(
        "/workflows/new/",
        demo_post(
            setup,
            **{
                "conditions.match": "any",
                "conditions.rules.0.field": "isclosed",  # Case's IsClosed, misspelt
                "conditions.rules.1.field": "Survey_Opt_In__c",  # nobody's field
                "conditions.rules.1.op": "is_not_empty",
                "conditions.rules.2.field": "First_Name__c",  # declared on the event
                "conditions.rules.2.op": "is_not_empty",
                "conditions.rules.3.field": "OrganizationId",  # an event fact
                "conditions.rules.3.op": "is_not_empty",
            },
        ),
    )
    warnings = saved_page_warnings(client, response)
    assert warnings == [
        "The condition on 'isclosed' tests a field that the event does not declare and no "
        "message has carried yet; until one does, the rule sees it as empty: Salesforce "
        "sends it as 'IsClosed' (names are case-sensitive).",
        "The condition on 'Survey_Opt_In__c' tests a field that the event does not declare "
        "and no message has carried yet; until one does, the rule sees it as empty: check "
        "the spelling, or list it in the event's fields.",
    ]
    workflow = Workflow.objects.get(name="Closed case survey")
    assert len(workflow.conditions["rules"]) == 4  # saved all the same

    # Once a message has carried the field, saving again warns about it no more.
    body = fixture_bytes("salesforce/case_closed.xml").replace(
        b"<sf:Priority>", b"<sf:Survey_Opt_In__c>true</sf:Survey_Opt_In__c><sf:Priority>"
    )
    assert b"Survey_Opt_In__c" in body
    assert post_soap(client, workflow, body).status_code == 200
    definition = json.loads(client.get(f"/api/v1/workflows/{workflow.pk}/export/").content)
    response = client.post(
        f"/workflows/{workflow.pk}/edit/json/", {"definition": json.dumps(definition)}
    )
    assert [w.split(":")[0] for w in saved_page_warnings(client, response)] == [
        "The condition on 'isclosed' tests a field that the event does not declare and no "
        "message has carried yet; until one does, the rule sees it as empty"
    ]


def test_known_condition_fields_save_without_a_warning(client, owner, setup):
    client.force_login(owner)
    assert saved_page_warnings(client, client.post("/workflows/new/", demo_post(setup))) == []


def test_saving_an_invitation_without_its_survey_link_says_so_beside_saved(client, owner, setup):
    client.force_login(owner)
    response = client.post(
        "/workflows/new/",
        demo_post(setup, **{"tasks.0.message.body": "<p>Hi ${m://FirstName}, thanks.</p>"}),
    )
    assert saved_page_warnings(client, response) == [
        "Saved, but 1 thing will make runs fail or misbehave: see “Check before it runs” below."
    ]
    page = html.unescape(client.get(response["Location"]).content.decode())
    assert "Task 1: the invitation holds no ${l://SurveyLink} or ${l://SurveyURL}" in page


def test_a_misspelled_event_field_is_named_when_the_workflow_is_saved(client, owner, setup):
    client.force_login(owner)
    response = client.post(
        "/workflows/new/",
        demo_post(setup, **{"tasks.0.message.subject": "Case ${event://CaseNumbr}"}),
    )
    assert saved_page_warnings(client, response) == [
        "Saved, but 1 thing will make runs fail or misbehave: see “Check before it runs” below."
    ]
    page = html.unescape(client.get(response["Location"]).content.decode())
    assert (
        "Task 1, subject: ${event://CaseNumbr} names a field this event neither lists nor "
        "has received, nor a standard Case field: it comes out empty (is it spelled right?)."
    ) in page
    # Standard fields, and the fields the event lists, are known: no notice for them.
    fine = client.post(
        "/workflows/new/",
        demo_post(
            setup,
            name="Spelled right",
            **{"tasks.0.message.subject": "Case ${event://CaseNumber} ${event://subject}"},
        ),
    )
    assert saved_page_warnings(client, fine) == []


def test_switching_a_task_to_sms_says_which_email_texts_were_not_kept(client, owner, setup):
    client.force_login(owner)
    response = client.post(
        "/workflows/new/",
        demo_post(
            setup,
            **{
                "tasks.0.channel": "sms",
                "tasks.0.message.text": "Hi ${m://FirstName}: ${l://SurveyURL}",
                "tasks.0.contact.phone": "${event://ContactPhone}",
            },
        ),
    )
    assert saved_page_warnings(client, response) == [
        "Task 1 sends by SMS, so what was typed for the other channel was not kept: from "
        "name, from email, subject, body."
    ]
    workflow = Workflow.objects.get(name="Closed case survey")
    assert workflow.tasks.get().config["message"] == {
        "text": "Hi ${m://FirstName}: ${l://SurveyURL}"
    }
    # Saved again as the page now shows it (the email fields empty): nothing is said.
    again = client.post(
        f"/workflows/{workflow.pk}/edit/",
        demo_post(
            setup,
            **{
                "tasks.0.channel": "sms",
                "tasks.0.message.text": "Hi ${m://FirstName}: ${l://SurveyURL}",
                "tasks.0.contact.phone": "${event://ContactPhone}",
                **{f"tasks.0.message.{key}": "" for key in ("from_name", "from_email")},
                **{f"tasks.0.message.{key}": "" for key in ("subject", "body")},
            },
        ),
    )
    assert saved_page_warnings(client, again) == []


# --- Validation errors beside their fields ---------------------------------------------------


FOLLOW_UPS_POST = {
    "tasks.0.send_at_next_working_hour": "on",
    "tasks.0.link_expiry_days": "14",
    "tasks.0.reminder.on": "on",
    "tasks.0.reminder.after_days": "3",
    "tasks.0.reminder.when": "not_finished",
    "tasks.0.reminder.subject": "A reminder, ${m://FirstName}",
    "tasks.0.reminder.body": "<p>${l://SurveyLink?d=Finish the survey}</p>",
    "tasks.0.reminder.text": "typed, then the channel became email",
    "tasks.0.thank_you.on": "on",
    "tasks.0.thank_you.subject": "Thank you, ${m://FirstName}",
    "tasks.0.thank_you.body": "<p>Thanks!</p>",
    "tasks.0.thank_you.text": "",
}


def test_timing_link_expiry_and_follow_ups_are_set_in_the_builder(client, owner, setup):
    client.force_login(owner)
    response = client.post("/workflows/new/", demo_post(setup, **FOLLOW_UPS_POST))
    assert response.status_code == 302, response.content.decode()[:3000]
    workflow = Workflow.objects.get()
    config = workflow.tasks.get().config
    assert config["send_at_next_working_hour"] is True
    assert config["link_expiry_days"] == 14
    # The email channel's texts only (the text typed before the channel changed is not
    # kept; the serializer stores every key of a follow-up, blank when unused).
    assert config["reminder"] == {
        "after_days": 3,
        "when": "not_finished",
        "subject": "A reminder, ${m://FirstName}",
        "body": "<p>${l://SurveyLink?d=Finish the survey}</p>",
        "text": "",
    }
    assert "typed" not in json.dumps(config["reminder"])
    assert config["thank_you"]["subject"] == "Thank you, ${m://FirstName}"

    # The edit page shows them set, and posting it back changes nothing.
    page = client.get(f"/workflows/{workflow.pk}/edit/").content.decode()
    fields = dict(form_fields(page, "builder"))
    assert fields["tasks.0.send_at_next_working_hour"] == "on"
    assert fields["tasks.0.reminder.on"] == "on" and fields["tasks.0.thank_you.on"] == "on"
    assert fields["tasks.0.reminder.after_days"] == "3"
    assert fields["tasks.0.reminder.when"] == "not_finished"
    assert fields["tasks.0.link_expiry_days"] == "14"
    before = client.get(f"/api/v1/workflows/{workflow.pk}/export/").json()
    assert client.post(f"/workflows/{workflow.pk}/edit/", fields).status_code == 302
    assert client.get(f"/api/v1/workflows/{workflow.pk}/export/").json() == before

    # Unticking removes a follow-up and the working-hours rule; a blank expiry is none.
    for name in ("tasks.0.thank_you.on", "tasks.0.send_at_next_working_hour"):
        del fields[name]
    fields["tasks.0.link_expiry_days"] = ""
    assert client.post(f"/workflows/{workflow.pk}/edit/", fields).status_code == 302
    config = workflow.tasks.get().config
    assert not config.get("thank_you") and not config.get("send_at_next_working_hour")
    assert config.get("link_expiry_days") is None
    assert config["reminder"]["after_days"] == 3


def test_a_builder_made_reminder_and_link_expiry_reach_the_distribution(client, owner, setup):
    client.force_login(owner)
    post = demo_post(setup, **FOLLOW_UPS_POST)
    del post["tasks.0.send_at_next_working_hour"]  # send now, whatever the hour
    assert client.post("/workflows/new/", post).status_code == 302
    workflow = Workflow.objects.get()
    assert (
        post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml")).status_code == 200
    )
    line = Recipient.objects.get()
    assert line.status == "sent", line.reason
    # The reminder is planned three days after the send, the link lives 14 days.
    assert line.reminder_due_at is not None
    assert abs((line.reminder_due_at - line.sent_at).total_seconds() - 3 * 86400) < 60
    assert abs((line.link.expires_at - line.sent_at).total_seconds() - 14 * 86400) < 60
    assert (
        line.distribution.follow_up_config["thank_you"]["subject"] == "Thank you, ${m://FirstName}"
    )


def test_follow_up_problems_are_shown_beside_their_inputs(client, owner, setup):
    client.force_login(owner)
    data = demo_post(
        setup,
        **{
            **FOLLOW_UPS_POST,
            "tasks.0.link_expiry_days": "0",
            "tasks.0.reminder.after_days": "",
            "tasks.0.reminder.subject": "  ",
            "tasks.0.thank_you.body": "",
        },
    )
    response = client.post("/workflows/new/", data)
    assert response.status_code == 400
    assert not Workflow.objects.exists()
    page = response.content.decode()
    assert "greater than or equal to 1" in errors_beside(page, "f-tasks-0-link_expiry_days")[0]
    assert errors_beside(page, "f-tasks-0-reminder-after_days") == ["This field is required."]
    assert errors_beside(page, "f-tasks-0-reminder-subject") == [
        "a reminder by email needs a subject"
    ]
    assert errors_beside(page, "f-tasks-0-thank_you-body") == ["a thank-you by email needs a body"]
    # What was typed is kept, boxes stay ticked.
    fields = dict(form_fields(page, "builder"))
    assert fields["tasks.0.reminder.on"] == "on" and fields["tasks.0.thank_you.on"] == "on"
    assert fields["tasks.0.thank_you.subject"] == "Thank you, ${m://FirstName}"


def test_an_sms_reminder_takes_its_text(client, owner, setup):
    client.force_login(owner)
    data = demo_post(
        setup,
        **{
            "tasks.0.channel": "sms",
            "tasks.0.contact.email": "",
            "tasks.0.contact.phone": "${event://ContactPhone}",
            "tasks.0.message.text": "Hi ${m://FirstName}: ${l://SurveyURL}",
            "tasks.0.reminder.on": "on",
            "tasks.0.reminder.after_days": "2",
            "tasks.0.reminder.when": "not_started",
            "tasks.0.reminder.subject": "an email subject, not used by a text",
            "tasks.0.reminder.text": "",
        },
    )
    response = client.post("/workflows/new/", data)
    assert response.status_code == 400
    page = response.content.decode()
    assert errors_beside(page, "f-tasks-0-reminder-text") == ["a reminder by SMS needs a text"]
    # The email texts of the follow-ups are hidden on a text's card, also without script.
    assert re.search(
        r'data-channel-group="email" hidden>\s*<label for="f-tasks-0-reminder-subject"', page
    )
    data["tasks.0.reminder.text"] = "Still time: ${l://SurveyURL}"
    response = client.post("/workflows/new/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    reminder = Workflow.objects.get().tasks.get().config["reminder"]
    assert (reminder["after_days"], reminder["when"]) == (2, "not_started")
    assert reminder["text"] == "Still time: ${l://SurveyURL}"
    assert reminder["subject"] == ""  # the email subject typed on a text's card is not kept


def test_validation_errors_are_shown_next_to_their_fields(client, owner, setup):
    client.force_login(owner)
    data = demo_post(
        setup,
        **{
            "name": "",
            "event.object": "Not an object!",
            "event.organization_id": "short",
            "conditions.rules.0.field": "",
            "conditions.rules.0.value": "true",
            "conditions.rules.1.field": "Status",
            "conditions.rules.1.op": "equals",
            "conditions.rules.1.value": "Closed",
            "tasks.0.mailing_list": "",
            "tasks.0.message.subject": "   ",
            "tasks.0.message.from_email": "not an address",
            "tasks.0.embedded_data.1.name": "CaseNumber",
            "tasks.0.embedded_data.1.value": "again",
            "tasks.0.embedded_data.2.name": "",
            "tasks.0.embedded_data.2.value": "${event://Priority}",
        },
    )
    response = client.post("/workflows/new/", data)
    assert response.status_code == 400
    assert not Workflow.objects.exists()
    page = response.content.decode()
    assert "The workflow was not saved." in page
    assert errors_beside(page, "f-name") == ["This field may not be blank."]
    assert "Salesforce object API name" in errors_beside(page, "f-event-object")[0]
    assert "organization id" in errors_beside(page, "f-event-organization_id")[0]
    assert errors_beside(page, "f-conditions-rules-0-field") == ["field is required"]
    assert errors_beside(page, "f-conditions-rules-1-field") == []
    assert errors_beside(page, "f-tasks-0-mailing_list") == ["This field is required."]
    assert errors_beside(page, "f-tasks-0-message-subject") == ["the subject must not be empty"]
    assert "valid email" in errors_beside(page, "f-tasks-0-message-from_email")[0]
    assert "mapped twice" in errors_beside(page, "f-tasks-0-embedded_data-1-name")[0]
    assert (
        "give the embedded data field a name"
        in errors_beside(page, "f-tasks-0-embedded_data-2-name")[0]
    )
    # The input carries the state too, and what was typed is kept.
    assert re.search(r'id="f-tasks-0-message-subject"[^>]*aria-invalid="true"', page)
    assert 'value="not an address"' in page


def test_a_required_contact_field_left_empty_is_marked(client, owner, setup):
    client.force_login(owner)
    response = client.post("/workflows/new/", demo_post(setup, **{"tasks.0.contact.email": ""}))
    assert response.status_code == 400
    assert errors_beside(response.content.decode(), "f-tasks-0-contact-email") == [
        "this field is required: map it to an event field"
    ]


def test_errors_of_an_unavailable_channel_go_beside_the_channel(client, owner, setup):
    client.force_login(owner)
    response = client.post("/workflows/new/", demo_post(setup, **{"tasks.0.channel": "bogus"}))
    assert response.status_code == 400
    assert errors_beside(response.content.decode(), "f-tasks-0-channel")


def test_buttons_work_without_the_script(client, owner, setup):
    """Add, move and remove are submit buttons the server handles; nothing is saved."""
    client.force_login(owner)
    data = demo_post(setup, op="add_task:add_to_directory")
    page = client.post("/workflows/new/", data).content.decode()
    fields = dict(form_fields(page, "builder"))
    assert fields["tasks.0.type"] == "distribute_survey"
    assert fields["tasks.1.type"] == "add_to_directory"
    assert not Workflow.objects.exists()

    fields["op"] = "move_task_up:1"
    page = client.post("/workflows/new/", fields).content.decode()
    fields = dict(form_fields(page, "builder"))
    assert (fields["tasks.0.type"], fields["tasks.1.type"]) == (
        "add_to_directory",
        "distribute_survey",
    )
    fields["op"] = "add_embedded:1"
    fields = dict(form_fields(client.post("/workflows/new/", fields).content.decode(), "builder"))
    assert "tasks.1.embedded_data.1.name" in fields
    fields["op"] = "remove_task:0"
    fields = dict(form_fields(client.post("/workflows/new/", fields).content.decode(), "builder"))
    assert fields["tasks.0.type"] == "distribute_survey" and "tasks.1.type" not in fields
    fields["op"] = "add_rule"
    fields = dict(form_fields(client.post("/workflows/new/", fields).content.decode(), "builder"))
    assert "conditions.rules.1.field" in fields
    fields["op"] = "remove_rule:0"
    fields = dict(form_fields(client.post("/workflows/new/", fields).content.decode(), "builder"))
    # Both rules gone: the one removed, and the blank one (an untouched row is dropped).
    assert "conditions.rules.0.field" not in fields
    assert not Workflow.objects.exists()


# --- Owner-only, read-only view, CSRF ---------------------------------------------------------


def test_non_owner_gets_a_read_only_view_and_is_refused_on_the_server(client, owner, setup):
    client.force_login(owner)
    client.post("/workflows/new/", demo_post(setup))
    workflow = Workflow.objects.get()
    other = make_user(username="other", is_staff=False)
    client.force_login(other)
    page = client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert '<fieldset class="builder" disabled>' in page
    assert 'value="How did we do, ${m://FirstName}?"' in page
    assert f'href="/workflows/{workflow.pk}/edit/"' not in page
    assert 'id="copy-workflow"' in page
    assert 'id="test-event"' not in page  # not staff, not the owner

    assert client.get(f"/workflows/{workflow.pk}/edit/").status_code == 403
    refused = client.post(f"/workflows/{workflow.pk}/edit/", demo_post(setup, name="Hijacked"))
    assert refused.status_code == 403
    assert "only the workflow's owner can edit it; copy it instead" in html.unescape(
        refused.content.decode()
    )
    json_refused = client.post(
        f"/workflows/{workflow.pk}/edit/json/", {"definition": json.dumps({"name": "x"})}
    )
    assert json_refused.status_code == 403
    assert client.post(f"/workflows/{workflow.pk}/test-event/").status_code == 403
    workflow.refresh_from_db()
    assert workflow.name == "Closed case survey"

    assert client.post(f"/workflows/{workflow.pk}/copy/").status_code == 302
    copy = Workflow.objects.get(owner=other)
    assert client.get(f"/workflows/{copy.pk}/edit/").status_code == 200


def test_forms_need_the_csrf_token_but_the_salesforce_endpoint_does_not(owner, setup):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    workflow = make_workflow(owner=owner)
    assert browser.post("/workflows/new/", demo_post(setup)).status_code == 403
    assert browser.post(f"/workflows/{workflow.pk}/edit/", demo_post(setup)).status_code == 403
    assert browser.post(f"/workflows/{workflow.pk}/disable/").status_code == 403
    assert browser.post(f"/workflows/{workflow.pk}/test-event/").status_code == 403
    assert (
        browser.post(
            "/workflows/piped-text-preview/", "{}", content_type="application/json"
        ).status_code
        == 403
    )
    assert not Run.objects.exists()
    assert (
        post_soap(browser, workflow, fixture_bytes("salesforce/case_closed.xml")).status_code == 200
    )

    # With the token the page gives, the same post goes through.
    page = browser.get("/workflows/new/").content.decode()
    token = dict(form_fields(page, "builder"))["csrfmiddlewaretoken"]
    assert (
        browser.post("/workflows/new/", demo_post(setup, csrfmiddlewaretoken=token)).status_code
        == 302
    )


# --- The {a} menu and the preview --------------------------------------------------------


def test_dynamic_text_menu_lists_event_contact_embedded_and_link_placeholders(client, owner):
    client.force_login(owner)
    seen = make_workflow(owner=owner, name="Another Case workflow")
    post_soap(client, seen, fixture_bytes("salesforce/case_closed.xml"))
    response = client.get(
        "/workflows/dynamic-text-menu/",
        {"object": "Case", "fields": "Region__c", "embedded": "Store Region"},
    )
    entries = response.json()["entries"]
    placeholders = {(entry["group"], entry["placeholder"]) for entry in entries}
    assert ("Event", "${event://Region__c}") in placeholders  # declared
    assert ("Event", "${event://First_Name__c}") in placeholders  # seen on another Case event
    assert ("Event", "${event://ContactEmail}") in placeholders  # standard Case field
    assert ("Event", "${event://RecordId}") in placeholders
    assert ("Contact", "${m://FirstName}") in placeholders
    assert ("Embedded data", "${e://Field/Store Region}") in placeholders
    assert ("Links", "${l://SurveyLink?d=Take%20the%20survey}") in placeholders
    assert client.post("/workflows/dynamic-text-menu/").status_code == 405


def test_edit_page_embeds_the_menu_with_fields_seen(client, owner):
    client.force_login(owner)
    workflow = make_workflow(owner=owner)
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    page = client.get(f"/workflows/{workflow.pk}/edit/").content.decode()
    menu = json.loads(
        re.search(
            r'<script id="dynamic-text-menu-data" type="application/json">(.*?)</script>',
            page,
            re.S,
        ).group(1)
    )
    assert {"group": "Event", "label": "CaseNumber", "placeholder": "${event://CaseNumber}"} in (
        menu["entries"]
    )


def test_piped_text_preview_renders_against_a_stored_payload(client, owner):
    client.force_login(owner)
    workflow = make_workflow(owner=owner)
    post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    run = Run.objects.get()
    outbox_before = OutboxMessage.objects.count()
    response = client.post(
        "/workflows/piped-text-preview/",
        {
            "run": run.pk,
            "contact": {
                "first_name": "${event://First_Name__c}",
                "email": "${event://ContactEmail}",
            },
            "embedded_data": {"CaseNumber": "${event://CaseNumber}"},
            "message": {
                "subject": "How did we do, ${m://FirstName}? (${event://Nope__c})",
                "body": "<p>Case ${e://Field/CaseNumber}: ${event://Subject}</p>"
                "${l://SurveyLink?d=Go}",
            },
        },
        content_type="application/json",
    )
    assert response.status_code == 200
    data = response.json()
    assert data["message"]["subject"] == "How did we do, Jonas? ()"
    assert data["message"]["body"].startswith(
        "<p>Case 00003101: Parcel arrived damaged</p><a href="
    )
    assert "/s/preview-link/" in data["message"]["body"]
    assert data["contact"]["Email"] == "jonas.berg@example.org"
    assert any("Nope__c" in warning for warning in data["warnings"])
    assert OutboxMessage.objects.count() == outbox_before
    assert Run.objects.count() == 1

    missing = client.post(
        "/workflows/piped-text-preview/", {"run": 999999}, content_type="application/json"
    )
    assert missing.status_code == 404
    bad = client.post(
        "/workflows/piped-text-preview/", "[not json", content_type="application/json"
    )
    assert bad.status_code == 400


def test_builder_offers_this_workflows_latest_payloads_for_the_preview(client, owner, setup):
    client.force_login(owner)
    client.post("/workflows/new/", demo_post(setup))
    workflow = Workflow.objects.get()
    post_soap(client, event_path(workflow), fixture_bytes("salesforce/case_closed.xml"))
    run = Run.objects.get()
    page = client.get(f"/workflows/{workflow.pk}/edit/").content.decode()
    assert f'<option value="{run.pk}">Run #{run.pk} · 5008a00002Ab01aAAB' in page


def test_the_mapping_is_called_transaction_data_in_transaction_mode(client, owner, setup):
    task = {
        "type": "add_to_directory",
        "mode": "transaction",
        "mailing_list": setup["mailing_list"].pk,
        "contact": {"email": "${event://ContactEmail}"},
        "embedded_data": {"Product": "${event://Product__c}"},
    }
    workflow = make_workflow(owner=owner, tasks=[task])
    client.force_login(owner)
    page = client.get(f"/workflows/{workflow.pk}/edit/").content.decode()
    assert re.search(r'<div data-mode-text="transaction">\s*<h4>Transaction data</h4>', page)
    assert re.search(r'<div data-mode-text="embedded_data" hidden>\s*<h4>Embedded data</h4>', page)
    assert "looked up, never created, and added to the list if not on it yet (transaction" in page
    # The fields only a saved contact needs are not marked required, and the table
    # and its button speak of transaction fields.
    assert page.count('title="required" data-mode-text="embedded_data" hidden>*</abbr>') == 3
    assert '<span data-mode-text="transaction">Transaction field name</span>' in page
    assert '<span data-mode-text="transaction">+ Add transaction field</span>' in page
    assert "In transaction mode the contact is only looked up" in page
    # In embedded data mode, the same card marks them required again.
    task["mode"] = "embedded_data"
    task["contact"] = {"first_name": "a", "last_name": "b", "email": "c"}
    saved = make_workflow(owner=owner, tasks=[task])
    page = client.get(f"/workflows/{saved.pk}/edit/").content.decode()
    # (this card's three, and those of the blank card the page copies for a new task)
    assert page.count('title="required" data-mode-text="embedded_data">*</abbr>') == 6
    assert '<span data-mode-text="embedded_data">Embedded data field name</span>' in page


def test_a_number_typed_wrong_is_said_and_kept_not_dropped(client, owner, setup):
    client.force_login(owner)
    data = demo_post(setup, **{**FOLLOW_UPS_POST, "tasks.0.link_expiry_days": "7e"})
    response = client.post("/workflows/new/", data)
    assert response.status_code == 400
    assert not Workflow.objects.exists()
    page = response.content.decode()
    assert errors_beside(page, "f-tasks-0-link_expiry_days") == ["A valid integer is required."]
    assert dict(form_fields(page, "builder"))["tasks.0.link_expiry_days"] == "7e"
    # A text input the browser cannot empty (type=number sends "" for "7e").
    assert 'inputmode="numeric" id="f-tasks-0-link_expiry_days"' in page
