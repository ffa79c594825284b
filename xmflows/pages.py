"""Pages for workflows and workflow reports: thin views over selectors and services."""

import json
from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_POST

from core.pages import forbidden
from core.params import id_or_none
from xmflows import selectors
from xmflows.builder_form import state_from_definition
from xmflows.builder_pages import builder_context
from xmflows.models import DeliveryOutcome, RunStatus, Workflow
from xmflows.services import (
    NotOwnerError,
    RetryRefused,
    can_operate,
    can_see_secrets,
    run_retry,
    without_links,
    workflow_copy,
    workflow_delete,
    workflow_export,
    workflow_update,
)


def _int_param(request: HttpRequest, name: str) -> int | None:
    """An id from the query string; None when blank or not an id (the caller says so
    where it matters)."""
    return id_or_none(request.GET.get(name))


@login_required
def workflow_list_page(request: HttpRequest) -> HttpResponse:
    mine = request.GET.get("show") != "others"
    workflows = selectors.workflow_list(user=request.user, mine=mine)[:500]
    return render(request, "xmflows/workflow_list.html", {"workflows": workflows, "mine": mine})


@login_required
def workflow_detail_page(request: HttpRequest, workflow_id: int) -> HttpResponse:
    """The workflow as the builder shows it, read-only (for everyone: non-owners get
    Copy instead of Edit), with its event URL, test button and recent runs."""
    workflow = get_object_or_404(Workflow.objects.select_related("owner", "event"), pk=workflow_id)
    recent = selectors.run_list(workflow_id=workflow.pk, page_size=10).items
    # Sets run.explanation for the run table.
    selectors.run_explanations(recent, user=request.user)
    definition = workflow_export(workflow=workflow)
    context = builder_context(
        request,
        state=state_from_definition(definition),
        errors={},
        workflow=workflow,
        readonly=True,
    )
    context.update(
        {
            "is_owner": workflow.owner_id == request.user.pk,
            "can_operate": can_operate(workflow=workflow, user=request.user),
            "definition": json.dumps(definition, indent=2),
            "recent_runs": recent,
            "fields_seen": selectors.event_fields_seen(workflow=workflow),
        }
    )
    return render(request, "xmflows/workflow_detail.html", context)


@login_required
@require_POST
def workflow_action_page(request: HttpRequest, workflow_id: int, action: str) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=workflow_id)
    if action == "copy":
        copied = workflow_copy(workflow=workflow, user=request.user)
        messages.success(request, "Copied. This copy is yours and has its own event URL.")
        return redirect("workflow-detail", workflow_id=copied.pk)
    try:
        if action in {"enable", "disable"}:
            workflow_update(
                workflow=workflow, user=request.user, definition={"enabled": action == "enable"}
            )
            messages.success(request, f"Workflow {action}d.")
            return redirect("workflow-detail", workflow_id=workflow.pk)
        if action == "delete":
            workflow_delete(workflow=workflow, user=request.user)
            messages.success(request, "Workflow deleted.")
            return redirect("workflow-list")
    except NotOwnerError as error:
        return forbidden(request, str(error))
    raise Http404("unknown action")


def _date_param(request: HttpRequest, name: str, problems: list[str]) -> date | None:
    text = (request.GET.get(name) or "").strip()
    if not text:
        return None
    try:
        value = parse_date(text)
    except ValueError:  # well formed, impossible: 2026-13-45
        value = None
    if value is None:
        problems.append(f"{name}: {text!r} is not a date (YYYY-MM-DD); not applied")
    return value


@login_required
def run_list_page(request: HttpRequest) -> HttpResponse:
    # A filter that cannot be read is said, not silently dropped: the list would
    # otherwise look filtered while showing everything.
    problems: list[str] = []
    since = _date_param(request, "since", problems)
    until = _date_param(request, "until", problems)
    status = request.GET.get("status") or None
    if status is not None and status not in RunStatus.values:
        problems.append(
            f"status: unknown status {status!r} (one of {', '.join(RunStatus.values)}); not applied"
        )
        status = None
    workflow_id = _int_param(request, "workflow")
    if request.GET.get("workflow") and workflow_id is None:
        problems.append(f"workflow: {request.GET['workflow']!r} is not a workflow id; not applied")
    page = selectors.run_list(
        workflow_id=workflow_id,
        status=status,
        since=since,
        until=until,
        search=request.GET.get("q", ""),
        before=_int_param(request, "before"),
    )
    # Sets run.explanation for the run table.
    selectors.run_explanations(page.items, user=request.user)
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "page": page,
        "workflows": Workflow.objects.order_by("name").only("id", "name"),
        "statuses": RunStatus.choices,
        "filters": request.GET,
        "query": query.urlencode(),
        "filter_problems": problems,
    }
    return render(request, "xmflows/run_list.html", context)


@login_required
def run_detail_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_detail(run_id=run_id)
    if run is None:
        raise Http404(selectors.run_gone(run_id))
    explanation = selectors.run_explanations([run], user=request.user)[run.pk]
    if not can_see_secrets(user=request.user, owner_id=run.workflow.owner_id):
        # Shown, not saved: the personal links stay the owner's and staff's to see.
        for task_run in explanation.task_runs:
            task_run.output = without_links(task_run.output)
    payload = run.notification.payload
    context = {
        "run": run,
        "payload": payload,
        "fields": list((payload.get("fields") or {}).items()),  # as Salesforce sent them
        "task_runs": explanation.task_runs,
        "recipients": [
            {"line": line, "url": explanation.line_urls.get(line.pk, "")}
            for line in explanation.recipients
        ],
        "explanation": explanation,
        # Salesforce's retries of this notification: acknowledged, never run again.
        "again": selectors.redeliveries([run]).get(run.pk, []),
        "contact_ids": sorted(
            {
                task.output["contact_id"]
                for task in explanation.task_runs
                if isinstance(task.output, dict) and task.output.get("contact_id")
            }
        ),
        "can_retry": run.status == RunStatus.FAILED
        and can_operate(workflow=run.workflow, user=request.user),
        "can_operate": can_operate(workflow=run.workflow, user=request.user),
    }
    return render(request, "xmflows/run_detail.html", context)


@login_required
@require_POST
def run_retry_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_detail(run_id=run_id)
    if run is None:
        raise Http404(selectors.run_gone(run_id))
    if not can_operate(workflow=run.workflow, user=request.user):
        return forbidden(request, "only the workflow's owner or a staff member can retry a run")
    try:
        run_retry(run=run)
        messages.success(request, "Retry queued: the failed tasks run again.")
    except RetryRefused as error:
        messages.error(request, str(error))
    return redirect("run-detail", run_id=run.pk)


@login_required
def delivery_list_page(request: HttpRequest) -> HttpResponse:
    page = selectors.delivery_list(
        outcome=request.GET.get("outcome") or None,
        workflow_id=_int_param(request, "workflow"),
        before=_int_param(request, "before"),
    )
    query = request.GET.copy()
    query.pop("before", None)
    return render(
        request,
        "xmflows/delivery_list.html",
        {
            "page": page,
            "filters": request.GET,
            "outcomes": DeliveryOutcome.choices,
            "query": query.urlencode(),
        },
    )


@login_required
def queue_page(request: HttpRequest) -> HttpResponse:
    """The background queue (SPEC F9): what waits, what runs, what failed, and whether
    a worker is taking the work at all."""
    return render(request, "xmflows/queue.html", {"queue": selectors.queue_overview()})
