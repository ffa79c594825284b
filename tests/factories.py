"""Builders `make_<model>(**overrides)` for tests."""

from typing import Any

from django.contrib.auth import get_user_model

from xmflows.models import Workflow
from xmflows.services import workflow_create


def make_user(**overrides: Any):
    username = overrides.pop("username", None) or f"user{get_user_model().objects.count() + 1}"
    password = overrides.pop("password", "pw-123456")
    defaults = {"email": f"{username}@example.com", "is_staff": True}
    defaults.update(overrides)
    return get_user_model().objects.create_user(username=username, password=password, **defaults)


def make_workflow(*, owner=None, **overrides: Any) -> Workflow:
    """A workflow on Case; `tasks`, `conditions`, `event` etc. override the definition."""
    owner = owner or make_user()
    definition: dict[str, Any] = {
        "name": "Closed case survey",
        "enabled": True,
        "event": {"type": "salesforce_outbound_message", "object": "Case", "organization_id": None},
        "conditions": {},
        "tasks": [],
    }
    definition.update(overrides)
    return workflow_create(owner=owner, definition=definition)


def event_path(workflow: Workflow) -> str:
    """The path part of the workflow's event URL, for the Django test client."""
    return f"/events/salesforce/{workflow.event.token}/"


def make_directory(**overrides: Any):
    from contacts.models import Directory

    defaults: dict[str, Any] = {"name": f"Directory {Directory.objects.count() + 1}"}
    defaults.update(overrides)
    return Directory.objects.create(**defaults)


def make_mailing_list(*, directory=None, **overrides: Any):
    from contacts.models import MailingList

    directory = directory or make_directory()
    defaults: dict[str, Any] = {"name": f"List {MailingList.objects.count() + 1}"}
    defaults.update(overrides)
    return MailingList.objects.create(directory=directory, **defaults)


def make_contact(*, directory=None, mailing_lists=(), **overrides: Any):
    """A contact saved as given (no normalisation: tests state exact stored values)."""
    from contacts.models import Contact

    directory = directory or (mailing_lists[0].directory if mailing_lists else make_directory())
    number = Contact.objects.count() + 1
    defaults: dict[str, Any] = {
        "first_name": "Ada",
        "last_name": f"Lovelace {number}",
        "email": f"ada{number}@example.org",
    }
    defaults.update(overrides)
    contact = Contact.objects.create(directory=directory, **defaults)
    if mailing_lists:
        contact.mailing_lists.set(mailing_lists)
    return contact


SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"


def case_notification(number: int, **fields: str | None) -> dict[str, Any]:
    """One Case notification for `tests.soap_builders.build_outbound_message`."""
    return {
        "id": f"04l8a00000N{number:06d}AAR",
        "fields": {"Id": f"5008a{number:010d}AAB", **fields},
    }


def post_soap(client, target: Workflow | str, body: bytes, **extra: Any):
    """POST a SOAP body as Salesforce does; `target` is a workflow or a path."""
    path = target if isinstance(target, str) else event_path(target)
    return client.post(path, body, content_type=SOAP_CONTENT_TYPE, HTTP_SOAPACTION='""', **extra)


def make_survey(*, owner=None, questions=None, **overrides: Any):
    """An active survey with one NPS and one text question (the demo's shape)."""
    from surveys.models import Survey, SurveyStatus
    from surveys.services import survey_create

    owner = owner or make_user()
    if questions is None:
        questions = [
            {"type": "nps", "text": "How likely are you to recommend us, ${m://FirstName}?"},
            {"type": "text", "text": "What could we do better?", "required": False},
        ]
    status = overrides.pop("status", SurveyStatus.ACTIVE)
    defaults: dict[str, Any] = {
        "name": f"Survey {Survey.objects.count() + 1}",
        "embedded_data_fields": ["CaseNumber", "Priority"],
    }
    defaults.update(overrides)
    return survey_create(owner=owner, questions=questions, status=status, **defaults)


def make_survey_link(*, survey=None, contact_id=None, snapshot=None, expires_at=None):
    """A personal link; `snapshot` sections default to a contact named Ada."""
    from surveys.services import survey_link_create

    survey = survey or make_survey()
    frozen: dict[str, Any] = {
        "contact": {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.org"},
        "embedded_data": {},
        "transaction": {},
        "event_fields": {},
    }
    frozen.update(snapshot or {})
    return survey_link_create(
        survey=survey, contact_id=contact_id, snapshot=frozen, expires_at=expires_at
    )
