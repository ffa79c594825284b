"""The workflow engine: executes one run — conditions, then each task through the registry."""

import copy
import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from contacts.models import MailingList
from contacts.normalize import normalize_phone
from core.job_memo import memoized
from core.piped_text import render
from xmflows import task_types
from xmflows.conditions import ConditionError, evaluate_conditions
from xmflows.models import (
    Event,
    OnFailure,
    Run,
    RunStatus,
    RunTrigger,
    TaskRun,
    TaskRunStatus,
)
from xmflows.task_types import TaskContext, TaskError

logger = logging.getLogger(__name__)


# A run Salesforce's message queued, whose workflow was disabled before a worker took
# it: an admin who disables a workflow means "send nothing more". The message stays
# stored, so nothing is lost: a replay (an admin's explicit act) processes it.
WORKFLOW_DISABLED = (
    "the workflow was disabled before this run started: nothing was done "
    "(enable the workflow, then replay this run to process the message)"
)


def backoff(attempt: int) -> timedelta:
    """1, 2, 4 … minutes, at most an hour between tries."""
    return timedelta(minutes=min(60, 2 ** max(0, attempt - 1)))


def _claim(run_id: int) -> Run | None:
    """Mark the run running, unless it is finished, waiting, or running elsewhere.

    One conditional UPDATE decides, so two workers given the same run cannot both
    claim it (the database re-checks the condition under its row lock), and SQLite's
    single writer is held for one statement instead of a read-then-write transaction.
    """
    now = timezone.now()
    stuck_since = now - timedelta(seconds=settings.XMFLOWS_STUCK_AFTER_SECONDS)
    claimable = Q(status=RunStatus.QUEUED) | (
        Q(status=RunStatus.RUNNING) & (Q(started_at__isnull=True) | Q(started_at__lte=stuck_since))
    )
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = Run.objects.filter(claimable & due, pk=run_id).update(
        status=RunStatus.RUNNING, started_at=now, attempts=F("attempts") + 1, next_attempt_at=None
    )
    if not claimed:
        return None
    return Run.objects.select_related("workflow", "notification").get(pk=run_id)


def _declared_fields(workflow_id: int) -> list[str]:
    """The fields the workflow's event says the outbound message sends (one read per job)."""
    return memoized(
        ("event_fields", workflow_id),
        lambda: list(
            Event.objects.filter(workflow_id=workflow_id).values_list("fields", flat=True).first()
            or []
        ),
    )


def context_for(run: Run, *, dry_run: bool = False) -> TaskContext:
    payload = run.notification.payload
    fields = dict(payload.get("fields") or {})
    # Salesforce leaves a null field out of the message (samples/README.md): a field the
    # event declares but the message lacks is null, not unknown ("is empty" warnings).
    for name in _declared_fields(run.workflow_id):
        fields.setdefault(name, None)
    return TaskContext(
        run_id=run.pk,
        workflow_id=run.workflow_id,
        owner_id=run.workflow.owner_id,
        object_type=payload.get("object_type", ""),
        notification_id=payload.get("notification_id", ""),
        record_id=payload.get("record_id"),
        organization_id=payload.get("organization_id", ""),
        fields=fields,
        state=dict(run.state or {}),
        dry_run=dry_run,
    )


def condition_fields(ctx: TaskContext) -> dict[str, str | None]:
    # The notification's own facts win over a record field of the same name.
    return {**ctx.fields, **ctx.event_facts()}


def run_execute(*, run_id: int) -> str | None:
    """Execute a run if it still needs executing; safe to call twice. Returns its status."""
    run = _claim(run_id)
    if run is None:
        return None
    ctx = context_for(run)
    # Only a run no task of which has started yet (also one a dead worker had claimed):
    # one resumed after a temporary failure, or retried by an admin, finishes what it
    # started; a replay is an admin's explicit request.
    if (
        not run.workflow.enabled
        and run.trigger != RunTrigger.REPLAY
        and not TaskRun.objects.filter(run=run).exists()
    ):
        email, phone = _mapped_contact(run, ctx)
        _finish(run, RunStatus.SKIPPED, WORKFLOW_DISABLED, email=email, phone=phone)
        return RunStatus.SKIPPED
    try:
        result = evaluate_conditions(run.workflow.conditions, condition_fields(ctx))
    except ConditionError as error:
        # Conditions edited by hand (admin) into an invalid shape: say so, do not loop.
        _finish(run, RunStatus.FAILED, f"the workflow's conditions are invalid: {error}")
        return RunStatus.FAILED
    if not result.passed:
        email, phone = _mapped_contact(run, ctx)
        _finish(run, RunStatus.SKIPPED, result.reason, email=email, phone=phone)
        return RunStatus.SKIPPED
    failures: list[str] = []
    # The workflow's definition, read once per job (core.job_memo).
    tasks = memoized(
        ("workflow_tasks", run.workflow_id),
        lambda: list(run.workflow.tasks.order_by("position")),
    )
    # One read for the verdicts of earlier attempts (task runs exist only once a claim
    # has counted an attempt, so a first attempt has none to read); a task run seen for
    # the first time is inserted together with the task's own writes (_execute_task),
    # not before it: two write transactions fewer per task, which SQLite's single
    # writer feels.
    task_runs = (
        {task_run.position: task_run for task_run in run.task_runs.all()}
        if run.attempts > 1
        else {}
    )
    for index, task in enumerate(tasks):
        task_run = task_runs.get(task.position) or TaskRun(
            run=run, position=task.position, type=task.type
        )
        if task_run.status == TaskRunStatus.SUCCEEDED:
            continue
        if task_run.status == TaskRunStatus.FAILED:
            # Failed before and not reset by a retry: keep the verdict.
            failures.append(f"task {task.position + 1} ({_label(task.type)}): {task_run.error}")
            if run.workflow.on_failure == OnFailure.STOP:
                _mark_not_run(run, tasks[index + 1 :])
                break
            continue
        verdict = _execute_task(run, task, task_run, ctx)
        if verdict == "retry":
            return RunStatus.QUEUED
        if verdict == "failed":
            failures.append(f"task {task.position + 1} ({_label(task.type)}): {task_run.error}")
            if run.workflow.on_failure == OnFailure.STOP:
                _mark_not_run(run, tasks[index + 1 :])
                break
    if failures:
        email, phone = _mapped_contact(run, ctx)
        # A task that saved the contact left its email on the run: that one stays.
        email = "" if run.email else email
        _finish(run, RunStatus.FAILED, "; ".join(failures), email=email, phone=phone)
        return RunStatus.FAILED
    _finish(run, RunStatus.SUCCEEDED, "")
    return RunStatus.SUCCEEDED


def _label(task_type: str) -> str:
    """How a run's reason names a task: as the builder does ("XM Directory: Distribute
    survey"), its key when the type has no label or is not installed."""
    registered = task_types.get(task_type)
    return (registered.label if registered else "") or task_type


def _execute_task(run: Run, task, task_run: TaskRun, ctx: TaskContext) -> str:
    task_type = task_types.get(task.type)
    now = timezone.now()
    task_run.attempts += 1
    task_run.started_at = task_run.started_at or now
    task_run.type = task.type
    if task_type is None:
        return _fail_task(task_run, f"unknown task type {task.type!r}: its module is not installed")
    state_before = copy.deepcopy(ctx.state)
    try:
        # The task's writes and the record of its success commit together: a crash
        # leaves the task pending, never half-done-but-recorded.
        with transaction.atomic():
            outcome = task_type(task.config).run(ctx)
            task_run.status = TaskRunStatus.SUCCEEDED
            task_run.output = {**outcome.output, "warnings": list(outcome.warnings)}
            task_run.error = ""
            task_run.finished_at = timezone.now()
            task_run.save()
            email = outcome.email[:254] if outcome.email else run.email
            if ctx.state != state_before or email != run.email:
                run.state = ctx.state
                run.email = email
                run.save(update_fields=["state", "email"])
        return "succeeded"
    except TaskError as error:
        ctx.state = state_before
        if error.output:
            task_run.output = error.output
        if error.temporary:
            return _retry_later(run, task_run, error.message)
        return _fail_task(task_run, error.message)
    except DatabaseError as error:
        ctx.state = state_before
        logger.warning(
            "run %s task %s: database error, will retry: %s", run.pk, task.position, error
        )
        return _retry_later(run, task_run, f"database error: {error}")
    except Exception as error:  # a bug in a task type must not kill the worker
        ctx.state = state_before
        logger.exception("run %s task %s crashed", run.pk, task.position)
        return _fail_task(task_run, f"internal error: {type(error).__name__}: {error}")


def _fail_task(task_run: TaskRun, message: str) -> str:
    task_run.status = TaskRunStatus.FAILED
    task_run.error = message
    task_run.finished_at = timezone.now()
    task_run.save()
    return "failed"


def _retry_later(run: Run, task_run: TaskRun, message: str) -> str:
    now = timezone.now()
    window = timedelta(seconds=settings.XMFLOWS_RETRY_WINDOW_SECONDS)
    next_at = now + backoff(task_run.attempts)
    # Measured from the run's creation, or from a manual retry (services.run_retry).
    if next_at > (run.retried_at or run.created_at) + window:
        return _fail_task(
            task_run, f"gave up after {task_run.attempts} attempts over {window}: {message}"
        )
    task_run.status = TaskRunStatus.WAITING_RETRY
    task_run.error = f"temporary failure, retrying at {next_at:%Y-%m-%d %H:%M:%S} UTC: {message}"
    task_run.save()
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.QUEUED, next_attempt_at=next_at, reason=task_run.error
    )
    return "retry"


def _mark_not_run(run: Run, remaining) -> None:
    for task in remaining:
        TaskRun.objects.update_or_create(
            run=run,
            position=task.position,
            defaults={
                "type": task.type,
                "status": TaskRunStatus.NOT_RUN,
                "error": "not run: an earlier task failed and the workflow stops on failure",
            },
        )


def _mapped_contact(run: Run, ctx: TaskContext) -> tuple[str, str]:
    """The email and phone number the workflow would have used, rendered from the
    first task that maps each: a run skipped on its conditions, or failed before a
    contact was saved, has no contact or line to find it by, yet "why did this person
    get no survey?" is asked by email or by number."""
    email = phone = ""
    configs = run.workflow.tasks.order_by("position").values_list("config", flat=True)
    for config in configs:
        mapping = (config or {}).get("contact") or {}
        if not email and mapping.get("email"):
            address = render(mapping["email"], ctx.render_context()).text.strip()
            email = address[:254] if "@" in address else ""
        if not phone and mapping.get("phone"):
            phone = _mapped_phone(mapping["phone"], config.get("mailing_list"), ctx)
        if email and phone:
            break
    return email, phone


def _mapped_phone(template: str, mailing_list_id, ctx: TaskContext) -> str:
    """E.164, read as the task's directory would read it ("" when not a number)."""
    number = render(template, ctx.render_context()).text.strip()
    if not number:
        return ""
    country = (
        MailingList.objects.filter(pk=mailing_list_id)
        .values_list("directory__default_country", flat=True)
        .first()
    )
    try:
        return normalize_phone(number, country or "US")
    except ValueError:
        return ""


def _finish(run: Run, status: str, reason: str, *, email: str = "", phone: str = "") -> None:
    now = timezone.now()
    changes = {"status": status, "reason": reason, "finished_at": now, "next_attempt_at": None}
    if email:
        changes["email"] = email
    if phone:
        changes["phone"] = phone
    Run.objects.filter(pk=run.pk).update(**changes)
    if status == RunStatus.FAILED and run.workflow.notify_owner_on_failure:
        _notify_owner(run, reason)


def _notify_owner(run: Run, reason: str) -> None:
    owner = run.workflow.owner
    if not owner.email:
        return
    try:
        send_mail(
            subject=f"[xmflows] Workflow '{run.workflow.name}' failed (run {run.pk})",
            message=(
                f"Run {run.pk} of workflow '{run.workflow.name}' failed.\n\n{reason}\n\n"
                f"Details: {settings.PUBLIC_BASE_URL}/reports/workflows/runs/{run.pk}/\n"
            ),
            from_email=None,
            recipient_list=[owner.email],
        )
    except Exception:  # the failure is already recorded; a mail problem must not hide it
        logger.exception("could not email the owner about failed run %s", run.pk)
