"""Builders for distribution tests: surveys, senders, a distributing workflow, case messages."""

from __future__ import annotations

import itertools
from typing import Any

from django.test import Client

from distributions.models import Recipient, VerifiedSender
from surveys.models import Survey, SurveyStatus
from surveys.services import survey_create
from tests.factories import make_contact, make_mailing_list, make_workflow, post_soap
from tests.soap_builders import build_outbound_message
from xmflows.models import Run, Workflow

SENDER = "surveys@example.com"
MAPPING = {
    "first_name": "${event://First_Name__c}",
    "last_name": "${event://Last_Name__c}",
    "email": "${event://ContactEmail}",
    "phone": "",
    "external_data_reference": "${event://ContactId}",
    "language": "",
}
EMBEDDED = {"CaseNumber": "${event://CaseNumber}", "Priority": "${event://Priority}"}
MESSAGE = {
    "from_name": "Customer Care",
    "from_email": SENDER,
    "reply_to": "care@example.com",
    "subject": "How did we do, ${m://FirstName}?",
    "body": (
        "<p>Hello ${m://FirstName}, case ${e://Field/CaseNumber}.</p>"
        "<p>${l://SurveyLink?d=Take the survey}</p>"
        "<p>${l://OptOutLink?d=Unsubscribe}</p>"
    ),
}
_numbers = itertools.count(1)


def make_survey(*, owner, status: str = SurveyStatus.ACTIVE, **overrides: Any) -> Survey:
    values: dict[str, Any] = {
        "name": "Customer satisfaction",
        "questions": [
            {"type": "nps", "text": "Recommend us, ${m://FirstName}?", "required": True},
            {"type": "text", "text": "Anything else?", "required": False},
        ],
        "embedded_data_fields": ["CaseNumber", "Priority"],
        "status": status,
    }
    values.update(overrides)
    return survey_create(owner=owner, **values)


def make_sender(address: str = SENDER) -> VerifiedSender:
    return VerifiedSender.objects.get_or_create(address=address)[0]


def distribute_task(*, survey: Survey, mailing_list, **overrides: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "type": "distribute_survey",
        "channel": "email",
        "survey": survey.pk,
        "mailing_list": mailing_list.pk,
        "contact": dict(MAPPING),
        "embedded_data": dict(EMBEDDED),
        "message": dict(MESSAGE),
        "send_delay_minutes": 0,
    }
    message = overrides.pop("message", None)
    if message:
        task["message"] = {**task["message"], **message}
    task.update(overrides)
    return task


def make_distribution_workflow(
    *, owner, survey: Survey | None = None, mailing_list=None, sender: bool = True, **task: Any
) -> Workflow:
    """A Case workflow whose only task emails `survey` (created active when not given)."""
    survey = survey or make_survey(owner=owner)
    mailing_list = mailing_list or make_mailing_list()
    if sender:
        make_sender()
    return make_workflow(
        owner=owner,
        tasks=[distribute_task(survey=survey, mailing_list=mailing_list, **task)],
    )


def case_message(**fields: str | None) -> bytes:
    """One closed Case with a fresh notification id (a new event, not a retry)."""
    number = next(_numbers)
    values: dict[str, str | None] = {
        "Id": f"5008a00003Dd{number:04d}AAB",
        "CaseNumber": f"0000{number:04d}",
        "ContactEmail": "jonas.berg@example.org",
        "ContactId": f"0038a00000Dd{number:02d}xAAB",
        "First_Name__c": "Jonas",
        "Last_Name__c": "Berg",
        "Priority": "High",
        "IsClosed": "true",
    }
    values.update(fields)
    notification = {"id": f"04l8a00000D{number:06d}AAR", "fields": values}
    return build_outbound_message([notification])


def send_case(client: Client, workflow: Workflow, **fields: str | None) -> Run:
    """POST one case to the workflow's event URL; jobs run inline; return its run."""
    before = set(Run.objects.filter(workflow=workflow).values_list("id", flat=True))
    response = post_soap(client, workflow, case_message(**fields))
    assert response.status_code == 200, response.content
    run = Run.objects.filter(workflow=workflow).exclude(id__in=before).get()
    return run


def task_of(run: Run, position: int = 0):
    return run.task_runs.get(position=position)


def only_line() -> Recipient:
    return Recipient.objects.get()


def make_line(distribution, status: str = "sent", **values: Any) -> Recipient:
    """A distribution line for a new contact, stored as given (no sending)."""
    contact = values.pop("contact", None) or make_contact()
    defaults: dict[str, Any] = {
        "survey_id": distribution.survey_id,
        "channel": distribution.channel,
        "contact": contact,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "status": status,
    }
    return Recipient.objects.create(distribution=distribution, **{**defaults, **values})
