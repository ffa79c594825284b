"""Writes on workflows and runs: create/update from a definition, copy, export, retry."""

from typing import Any

from django.db import transaction
from django.utils import timezone

from xmflows.intake import enqueue_runs
from xmflows.models import Event, Run, RunStatus, Task, TaskRun, TaskRunStatus, Workflow


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
    definition["name"] = name or f"Copy of {workflow.name}"
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
    run.save(update_fields=["status", "reason", "finished_at", "next_attempt_at", "enqueued_at"])
    enqueue_runs([run.pk])
    return run
