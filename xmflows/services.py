"""Writes on workflows and runs: create/update from a definition, copy, export, retry,
replay, and the event test."""

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.piped_text import EVENT_FACTS, find_placeholders
from xmflows.intake import delivery_receive, enqueue_runs
from xmflows.models import (
    Delivery,
    Event,
    Run,
    RunStatus,
    RunTrigger,
    Task,
    TaskRun,
    TaskRunStatus,
    Workflow,
)
from xmflows.sample_message import build_sample_message
from xmflows.selectors import event_fields_seen


class NotOwnerError(PermissionError):
    message = "only the workflow's owner can edit it; copy it instead"


def _apply_definition(workflow: Workflow, definition: dict[str, Any]) -> None:
    event_def = definition.get("event") or {}
    # Through the instance's own accessor, so a caller that serializes `workflow`
    # afterwards (the API's PUT/PATCH response) sees the saved event, not a stale cache.
    try:
        event = workflow.event
    except Event.DoesNotExist:
        event = Event(workflow=workflow)
    event.type = event_def.get("type", event.type)
    event.object_name = event_def.get("object", event.object_name)
    # Only when given: a PATCH of the name must not lift the organization restriction.
    if "organization_id" in event_def:
        event.organization_id = event_def.get("organization_id") or ""
    if "fields" in event_def:
        event.fields = list(event_def.get("fields") or [])
    event.save()
    if "tasks" in definition:
        workflow.tasks.all().delete()
        Task.objects.bulk_create(
            [
                Task(
                    workflow=workflow,
                    position=position,
                    type=task["type"],
                    config={k: v for k, v in task.items() if k != "type"},
                )
                for position, task in enumerate(definition["tasks"])
            ]
        )


@transaction.atomic
def workflow_create(*, owner, definition: dict[str, Any]) -> Workflow:
    """`definition` has been validated by WorkflowSerializer (tasks' configs included)."""
    workflow = Workflow.objects.create(
        owner=owner,
        name=definition["name"],
        enabled=definition.get("enabled", True),
        conditions=definition.get("conditions") or {},
        on_failure=definition.get("on_failure", "stop"),
        notify_owner_on_failure=definition.get("notify_owner_on_failure", False),
    )
    _apply_definition(workflow, {"tasks": [], **definition})
    return workflow


@transaction.atomic
def workflow_update(*, workflow: Workflow, user, definition: dict[str, Any]) -> Workflow:
    if workflow.owner_id != user.pk:
        raise NotOwnerError(NotOwnerError.message)
    for attribute in ("name", "enabled", "conditions", "on_failure", "notify_owner_on_failure"):
        if attribute in definition:
            value = definition[attribute]
            setattr(workflow, attribute, value if value is not None else {})
    workflow.save()
    _apply_definition(workflow, definition)
    return workflow


def workflow_delete(*, workflow: Workflow, user) -> None:
    if workflow.owner_id != user.pk:
        raise NotOwnerError(NotOwnerError.message)
    workflow.delete()


def workflow_export(*, workflow: Workflow) -> dict[str, Any]:
    """The definition alone, importable as the body of POST /api/v1/workflows/."""
    event = workflow.event
    return {
        "name": workflow.name,
        "enabled": workflow.enabled,
        "event": {
            "type": event.type,
            "object": event.object_name,
            "organization_id": event.organization_id or None,
            "fields": list(event.fields or []),
        },
        "conditions": workflow.conditions or {},
        "on_failure": workflow.on_failure,
        "notify_owner_on_failure": workflow.notify_owner_on_failure,
        "tasks": [{"type": t.type, **t.config} for t in workflow.tasks.order_by("position")],
    }


@transaction.atomic
def workflow_copy(*, workflow: Workflow, user, name: str | None = None) -> Workflow:
    """A copy owned by `user`, with a new event URL (a new token is generated)."""
    definition = workflow_export(workflow=workflow)
    limit = Workflow._meta.get_field("name").max_length
    definition["name"] = name or f"Copy of {workflow.name}"[:limit]
    return workflow_create(owner=user, definition=definition)


class RetryRefused(ValueError):
    pass


@transaction.atomic
def run_retry(*, run: Run) -> Run:
    """Re-run a failed run's failed (and not-run) tasks; succeeded tasks are kept."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status != RunStatus.FAILED:
        raise RetryRefused(f"only failed runs can be retried; this run is {run.status}")
    TaskRun.objects.filter(
        run=run, status__in=[TaskRunStatus.FAILED, TaskRunStatus.NOT_RUN]
    ).update(status=TaskRunStatus.PENDING, error="")
    run.status = RunStatus.QUEUED
    run.reason = ""
    run.finished_at = None
    run.next_attempt_at = None
    run.enqueued_at = timezone.now()
    # A fresh retry window: the failure may have come long after the run was created.
    run.retried_at = run.enqueued_at
    run.save(
        update_fields=[
            "status",
            "reason",
            "finished_at",
            "next_attempt_at",
            "enqueued_at",
            "retried_at",
        ]
    )
    enqueue_runs([run.pk])
    return run


# Task output keys that hold a personal survey link: whoever holds one answers (or
# opts out) as that person.
LINK_OUTPUT_KEYS = frozenset({"survey_link"})


def can_see_secrets(*, user, owner_id: int | None) -> bool:
    """Whether `user` may see a workflow's bearer secrets: its event URL (whoever holds
    it can post events that send surveys) and the personal survey links its runs
    created. Staff and the workflow's owner may; other signed-in users (analysts,
    integrators' API tokens) read the workflow and its runs without them."""
    return bool(user.is_staff or (owner_id is not None and user.pk == owner_id))


def without_links(output):
    """A task run's output with its personal survey links blanked (None)."""
    if not isinstance(output, dict) or not LINK_OUTPUT_KEYS & output.keys():
        return output
    return {**output, **dict.fromkeys(LINK_OUTPUT_KEYS & output.keys())}


def can_operate(*, workflow: Workflow, user) -> bool:
    """Who may make a workflow run (retry, replay, event test): its owner, or staff.
    Editing stays the owner's alone (NotOwnerError)."""
    return bool(user.is_staff or workflow.owner_id == user.pk)


@transaction.atomic
def run_replay(*, run: Run) -> Run:
    """A new run (trigger "replay") of the same stored notification through the
    workflow as it is now, queued like any other. The original run is left as it was:
    it is the record of what happened."""
    source = Run.objects.select_related("workflow").get(pk=run.pk)
    replay = Run.objects.create(
        workflow_id=source.workflow_id,
        notification_id=source.notification_id,
        trigger=RunTrigger.REPLAY,
        status=RunStatus.QUEUED,
        record_id=source.record_id,
        enqueued_at=timezone.now(),
    )
    enqueue_runs([replay.pk])
    return replay


class EventTestRefused(ValueError):
    """The endpoint refused the sample; the message says why (as Salesforce is told)."""

    def __init__(self, message: str, *, delivery_id: int | None):
        super().__init__(message)
        self.delivery_id = delivery_id


@dataclass(frozen=True)
class EventTestResult:
    run_id: int
    delivery_id: int | None
    record_id: str
    fields: dict[str, str | None]


def _event_fields_referenced(workflow: Workflow) -> list[str]:
    """Event fields the workflow's tasks pipe in (${event://Name}), in order; not the
    notification's own facts (${event://RecordId} …), which no record field holds."""
    names: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            for placeholder in find_placeholders(value):
                if (
                    placeholder.kind == "event"
                    and placeholder.path not in EVENT_FACTS
                    and placeholder.path not in names
                ):
                    names.append(placeholder.path)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for task in workflow.tasks.order_by("position"):
        walk(task.config)
    return names


def workflow_event_test(*, workflow: Workflow, user) -> EventTestResult:
    """Build a sample outbound message for the workflow's event and pass it through
    the endpoint's own code (intake.delivery_receive: the checks, the storing, the
    deduplication, the queueing), marking its run as a test.

    Not an HTTP request to our own URL: a single-worker server would wait on itself.
    The sample carries the fields the event declares, has received, and the tasks
    refer to; its values satisfy the workflow's conditions where they can.
    """
    if not can_operate(workflow=workflow, user=user):
        raise NotOwnerError("only the workflow's owner or a staff member can test its event")
    event = workflow.event
    names = [*event_fields_seen(workflow=workflow), *_event_fields_referenced(workflow)]
    sample = build_sample_message(
        object_name=event.object_name,
        field_names=names,
        organization_id=event.organization_id or None,
        conditions=workflow.conditions,
    )
    result = delivery_receive(
        token=event.token,
        body=sample.body,
        body_bytes=len(sample.body),
        remote_addr=None,
        user_agent=f"xmflows event test by {user.get_username()}"[:300],
        trigger=RunTrigger.TEST,
    )
    if result.status != 200 or not result.run_ids:
        delivery = Delivery.objects.filter(pk=result.delivery_id).first()
        reason = delivery.reason if delivery else "the endpoint refused the sample message"
        raise EventTestRefused(reason, delivery_id=result.delivery_id)
    return EventTestResult(
        run_id=result.run_ids[0],
        delivery_id=result.delivery_id,
        record_id=sample.record_id,
        fields=sample.fields,
    )
