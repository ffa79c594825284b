"""The demo workflow that seed_demo creates: closed Case → contact (→ survey email)."""

from typing import Any

from contacts.models import Directory, MailingList
from distributions.models import VerifiedSender
from surveys.models import Survey, SurveyStatus
from surveys.services import survey_create, survey_update
from xmflows.models import Event, Workflow
from xmflows.services import workflow_create, workflow_update

DEMO_WORKFLOW_NAME = "Demo: closed case survey"
DEMO_EVENT_FIELDS = [
    "Id",
    "CaseNumber",
    "ClosedDate",
    "ContactEmail",
    "ContactId",
    "ContactPhone",
    "First_Name__c",
    "Last_Name__c",
    "IsClosed",
    "Priority",
    "Status",
    "Subject",
]


def demo_definition(**task_ids: Any) -> dict[str, Any]:
    return {
        "name": DEMO_WORKFLOW_NAME,
        "enabled": True,
        "event": {
            "type": "salesforce_outbound_message",
            "object": "Case",
            "organization_id": None,
            "fields": DEMO_EVENT_FIELDS,
        },
        "conditions": {},
        "tasks": demo_tasks(**task_ids),
    }


DEMO_DIRECTORY_NAME = "Demo directory"
DEMO_MAILING_LIST_NAME = "Demo customers"
# CONTRACT.md §3: who the contact is, from the Case's fields. Shared by every demo task
# that saves the contact (add_to_directory, distribute_survey).
DEMO_CONTACT_MAPPING: dict[str, str] = {
    "first_name": "${event://First_Name__c}",
    "last_name": "${event://Last_Name__c}",
    "email": "${event://ContactEmail}",
    "phone": "${event://ContactPhone}",
    "external_data_reference": "${event://ContactId}",
    "language": "",
}
DEMO_EMBEDDED_DATA: dict[str, str] = {
    "CaseNumber": "${event://CaseNumber}",
    "Priority": "${event://Priority}",
}


def demo_add_to_directory_task(*, mailing_list_id: int) -> dict[str, Any]:
    return {
        "type": "add_to_directory",
        "mode": "embedded_data",
        "mailing_list": mailing_list_id,
        "contact": dict(DEMO_CONTACT_MAPPING),
        "embedded_data": dict(DEMO_EMBEDDED_DATA),
    }


DEMO_SURVEY_NAME = "Demo: customer satisfaction"
DEMO_SENDER_EMAIL = "surveys@example.com"
DEMO_SENDER_DOMAIN = "@example.com"
DEMO_SURVEY_QUESTIONS: list[dict[str, Any]] = [
    {
        "type": "nps",
        "text": "How likely are you to recommend us to a friend, ${m://FirstName}?",
        "required": True,
    },
    {"type": "text", "text": "What could we do better?", "required": False},
]
DEMO_SURVEY_EMBEDDED_DATA_FIELDS = ["CaseNumber", "Priority"]
DEMO_EMAIL_MESSAGE: dict[str, str] = {
    "from_name": "Customer Care",
    "from_email": DEMO_SENDER_EMAIL,
    "reply_to": "",
    "subject": "How did we do, ${m://FirstName}?",
    "body": (
        "<p>Hello ${m://FirstName},</p>\n"
        "<p>Your case ${e://Field/CaseNumber} is closed. Would you tell us how we did? "
        "It takes one minute.</p>\n"
        "<p>${l://SurveyLink?d=Take the survey}</p>\n"
        '<p style="font-size:12px;color:#666">${l://OptOutLink?d=Unsubscribe}</p>'
    ),
}


def demo_distribute_survey_task(*, mailing_list_id: int, survey_id: int) -> dict[str, Any]:
    return {
        "type": "distribute_survey",
        "channel": "email",
        "survey": survey_id,
        "mailing_list": mailing_list_id,
        "contact": dict(DEMO_CONTACT_MAPPING),
        "embedded_data": dict(DEMO_EMBEDDED_DATA),
        "message": dict(DEMO_EMAIL_MESSAGE),
        "send_delay_minutes": 0,
    }


def demo_tasks(*, mailing_list_id: int | None = None, **ids: Any) -> list[dict[str, Any]]:
    """The demo workflow's tasks, in order; each app appends its own from the ids that
    demo_seed gathered (a task whose ids are missing is left out)."""
    tasks: list[dict[str, Any]] = []
    # 1. Save the contact into the demo mailing list (contacts app).
    if mailing_list_id is not None:
        tasks.append(demo_add_to_directory_task(mailing_list_id=mailing_list_id))
    # 2. Email the survey invitation (surveys/distributions apps).
    if mailing_list_id is not None and ids.get("survey_id") is not None:
        tasks.append(
            demo_distribute_survey_task(mailing_list_id=mailing_list_id, survey_id=ids["survey_id"])
        )
    return tasks


def demo_seed_directory() -> dict[str, int]:
    """The demo directory and mailing list, created once."""
    directory, _ = Directory.objects.get_or_create(name=DEMO_DIRECTORY_NAME)
    mailing_list, _ = MailingList.objects.get_or_create(
        directory=directory, name=DEMO_MAILING_LIST_NAME
    )
    return {"mailing_list_id": mailing_list.pk}


def demo_seed_survey(*, owner) -> dict[str, Any]:
    """The verified demo sender and the active demo survey, created once; a survey
    an admin deactivated or edited is put back as the demo needs it."""
    sender, _ = VerifiedSender.objects.get_or_create(address=DEMO_SENDER_EMAIL)
    if not sender.verified:
        sender.verified = True
        sender.save(update_fields=["verified"])
    # The whole demo domain too, so any example.com From address works out of the box
    # (the API documentation's example workflow sends from support@example.com).
    VerifiedSender.objects.update_or_create(address=DEMO_SENDER_DOMAIN, defaults={"verified": True})
    survey = Survey.objects.filter(owner=owner, name=DEMO_SURVEY_NAME).first()
    if survey is None:
        survey = survey_create(
            owner=owner,
            name=DEMO_SURVEY_NAME,
            questions=DEMO_SURVEY_QUESTIONS,
            embedded_data_fields=DEMO_SURVEY_EMBEDDED_DATA_FIELDS,
            status=SurveyStatus.ACTIVE,
        )
    elif survey.status != SurveyStatus.ACTIVE or list(survey.embedded_data_fields or []) != list(
        DEMO_SURVEY_EMBEDDED_DATA_FIELDS
    ):
        # Questions are left alone: responses already recorded refer to them.
        survey = survey_update(
            survey=survey,
            data={
                "embedded_data_fields": DEMO_SURVEY_EMBEDDED_DATA_FIELDS,
                "status": SurveyStatus.ACTIVE,
            },
        )
    return {"survey_id": survey.pk, "sender_email": sender.address}


def demo_seed(*, owner) -> dict[str, Any]:
    # Ids of the demo objects each app seeds; they fill the tasks and the JSON output.
    ids: dict[str, Any] = {}
    ids.update(demo_seed_directory())
    ids.update(demo_seed_survey(owner=owner))
    definition = demo_definition(**ids)
    workflow = Workflow.objects.filter(owner=owner, name=DEMO_WORKFLOW_NAME).first()
    if workflow is None:
        workflow = workflow_create(owner=owner, definition=definition)
    else:
        workflow = workflow_update(workflow=workflow, user=owner, definition=definition)
    event = Event.objects.get(workflow=workflow)
    return {"workflow_id": workflow.pk, "event_url": event.url, **ids}
