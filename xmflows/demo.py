"""The demo workflow that seed_demo creates: closed Case → contact (→ survey email)."""

from typing import Any

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


def demo_tasks(**ids: Any) -> list[dict[str, Any]]:
    # Filled in as the directory and survey apps provide their task types.
    return []


def demo_seed(*, owner) -> dict[str, Any]:
    definition = demo_definition()
    workflow = Workflow.objects.filter(owner=owner, name=DEMO_WORKFLOW_NAME).first()
    if workflow is None:
        workflow = workflow_create(owner=owner, definition=definition)
    else:
        workflow = workflow_update(workflow=workflow, user=owner, definition=definition)
    event = Event.objects.get(workflow=workflow)
    return {"workflow_id": workflow.pk, "event_url": event.url}
