"""Reads for the workflow pages and reports: filtered, keyset-paginated run and delivery lists."""

from dataclasses import dataclass
from datetime import date, datetime, time

from django.db.models import Q, QuerySet
from django.utils import timezone

from xmflows.models import Delivery, DeliveryOutcome, Notification, Run, RunStatus, Workflow

PAGE_SIZE = 50


@dataclass
class Page:
    items: list
    next_before: int | None  # id to pass as ?before= for the next (older) page


def _day_start(value: date) -> datetime:
    return timezone.make_aware(datetime.combine(value, time.min))


def _day_end(value: date) -> datetime:
    return timezone.make_aware(datetime.combine(value, time.max))


def run_list(
    *,
    workflow_id: int | None = None,
    status: str | None = None,
    since: date | None = None,
    until: date | None = None,
    search: str = "",
    before: int | None = None,
    page_size: int = PAGE_SIZE,
) -> Page:
    """Newest first. Keyset pagination on id (`before`) stays fast at millions of rows,
    where OFFSET would scan everything it skips."""
    queryset: QuerySet[Run] = Run.objects.select_related("workflow", "notification__delivery")
    if workflow_id:
        queryset = queryset.filter(workflow_id=workflow_id)
    if status in RunStatus.values:
        queryset = queryset.filter(status=status)
    if since:
        queryset = queryset.filter(created_at__gte=_day_start(since))
    if until:
        queryset = queryset.filter(created_at__lte=_day_end(until))
    search = search.strip()
    if search:
        # A Salesforce id or an email address: both are indexed columns of the run.
        queryset = queryset.filter(Q(record_id=search) | Q(email__iexact=search))
    if before:
        queryset = queryset.filter(id__lt=before)
    items = list(queryset.order_by("-id")[: page_size + 1])
    next_before = items[page_size - 1].pk if len(items) > page_size else None
    return Page(items=items[:page_size], next_before=next_before)


def delivery_list(
    *, outcome: str | None = None, workflow_id: int | None = None, before: int | None = None
) -> Page:
    queryset = Delivery.objects.select_related("workflow")
    if outcome in DeliveryOutcome.values:
        queryset = queryset.filter(outcome=outcome)
    if workflow_id:
        queryset = queryset.filter(workflow_id=workflow_id)
    if before:
        queryset = queryset.filter(id__lt=before)
    items = list(queryset.order_by("-id")[: PAGE_SIZE + 1])
    next_before = items[PAGE_SIZE - 1].pk if len(items) > PAGE_SIZE else None
    return Page(items=items[:PAGE_SIZE], next_before=next_before)


def run_detail(*, run_id: int) -> Run | None:
    return (
        Run.objects.select_related("workflow", "workflow__owner", "notification__delivery")
        .prefetch_related("task_runs")
        .filter(pk=run_id)
        .first()
    )


def event_fields_seen(*, workflow: Workflow, sample_size: int = 50) -> list[str]:
    """Field names declared on the event plus those seen in its latest messages."""
    names: list[str] = list(workflow.event.fields or [])
    payloads = (
        Notification.objects.filter(event=workflow.event)
        .order_by("-id")
        .values_list("payload", flat=True)[:sample_size]
    )
    for payload in payloads:
        for name in (payload or {}).get("fields", {}):
            if name not in names:
                names.append(name)
    return names


def workflow_list(*, user, mine: bool) -> QuerySet[Workflow]:
    queryset = Workflow.objects.select_related("owner", "event").order_by("-id")
    return queryset.filter(owner=user) if mine else queryset.exclude(owner=user)
