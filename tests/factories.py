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
