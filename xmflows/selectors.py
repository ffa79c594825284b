"""Reads for the workflow pages and reports: filtered, keyset-paginated run and delivery
lists, the fields an event is known to carry, and why a run sent what it sent."""

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet, Value
from django.db.models.functions import Lower
from django.utils import timezone

from contacts.models import Contact, Directory
from contacts.normalize import normalize_phone
from distributions.models import Recipient
from xmflows.models import (
    RUN_FINISHED,
    Delivery,
    DeliveryOutcome,
    Event,
    Notification,
    Run,
    RunStatus,
    RunTrigger,
    TaskRun,
    TaskRunStatus,
    Workflow,
)
from xmflows.salesforce_objects import standard_fields
from xmflows.soap import record_id_forms

PAGE_SIZE = 50


@dataclass
class Page:
    items: list
    next_before: int | None  # id to pass as ?before= for the next (older) page


def _day_start(value: date) -> datetime:
    return timezone.make_aware(datetime.combine(value, time.min))


def _day_end(value: date) -> datetime:
    return timezone.make_aware(datetime.combine(value, time.max))


# Runs get their id and their created_at in the same short transaction, so ids follow
# time but for runs stored at nearly the same moment by concurrent requests. Bounds
# taken this much wider than the dates can never cut off a run that is inside them.
ID_ORDER_SLACK = timedelta(minutes=5)


def _widened(moment: datetime, by: timedelta) -> datetime:
    """moment + by, or moment itself at the ends of the calendar (0001-01-01 and
    9999-12-31 are valid filter dates; nothing is stored beyond them)."""
    try:
        return moment + by
    except OverflowError:
        return moment


def _first_id_at_or_after(moment: datetime) -> int | None:
    return (
        Run.objects.filter(created_at__gte=moment)
        .order_by("created_at")
        .values_list("id", flat=True)
        .first()
    )


def _last_id_at_or_before(moment: datetime) -> int | None:
    return (
        Run.objects.filter(created_at__lte=moment)
        .order_by("-created_at")
        .values_list("id", flat=True)
        .first()
    )


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
    where OFFSET would scan everything it skips.

    Dates become id bounds as well (one step each on the created_at index): the
    (workflow, -id), (status, -id) and (workflow, status, -id) indexes then read only
    the period, instead of walking every newer run of a workflow to reach an old month.
    """
    queryset: QuerySet[Run] = Run.objects.select_related("workflow", "notification__delivery")
    if workflow_id:
        queryset = queryset.filter(workflow_id=workflow_id)
    if status in RunStatus.values:
        queryset = queryset.filter(status=status)
    if since:
        start = _day_start(since)
        queryset = queryset.filter(created_at__gte=start)
        lowest = _first_id_at_or_after(_widened(start, -ID_ORDER_SLACK))
        queryset = queryset.filter(id__gte=lowest) if lowest else queryset.none()
    if until:
        end = _day_end(until)
        queryset = queryset.filter(created_at__lte=end)
        highest = _last_id_at_or_before(_widened(end, ID_ORDER_SLACK))
        queryset = queryset.filter(id__lte=highest) if highest else queryset.none()
    search = search.strip()
    if search:
        queryset = runs_matching(queryset, search, unstarted=True)
    if before:
        queryset = queryset.filter(id__lt=before)
    items = list(queryset.order_by("-id")[: page_size + 1])
    next_before = items[page_size - 1].pk if len(items) > page_size else None
    return Page(items=items[:page_size], next_before=next_before)


_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{7,20}$")


def looks_like_phone(search: str) -> bool:
    """Digits and the usual punctuation, seven digits or more, and not a record id."""
    text = search.strip()
    if not _PHONE_LIKE.match(text) or len(re.sub(r"\D", "", text)) < 7:
        return False
    return not (text.isdigit() and len(text) in (15, 18))


def phone_forms(search: str) -> list[str]:
    """The E.164 forms a search for a phone number may mean ("(415) 555-0100" in each
    directory's default country); [] when it is not one. Fifteen or eighteen digits
    alone are read as a Salesforce record id, not a number."""
    text = search.strip()
    if not looks_like_phone(text):
        return []
    countries = {"US", *Directory.objects.values_list("default_country", flat=True).distinct()}
    forms = set()
    for country in sorted(countries):
        try:
            forms.add(normalize_phone(text, country))
        except ValueError:
            continue
    return sorted(forms)


def runs_matching(
    queryset: QuerySet[Run], search: str, *, unstarted: bool = False
) -> QuerySet[Run]:
    """Runs of a Salesforce record id, of an email address (any case), or of a phone
    number (through the distribution lines of its contacts, or the number a run that
    stopped before any line kept).

    Each is one indexed lookup: record ids never hold "@", emails always do, so the
    two never need an OR (which would keep the planner from using either index).
    The email goes through lower() on both sides, which the expression index
    run_email_lower serves on SQLite and PostgreSQL alike; email__iexact would not.
    """
    search = search.strip()
    if "@" in search:
        by_email = Q(email_lower=Lower(Value(search)))
        # The pages' searches (`unstarted`) also find the runs still waiting for a
        # worker by the address in their message; the API's filter stays exact.
        waiting = unstarted_runs_holding(search) if unstarted else []
        if waiting:
            by_email |= Q(pk__in=waiting)
        return queryset.alias(email_lower=Lower("email")).filter(by_email)
    numbers = phone_forms(search)
    if numbers:
        # A run keeps its contact's email, and its phone only when it stopped early:
        # the runs that texted (or would have texted) the number are found through
        # their distribution lines,
        # by the number a line was sent to (an SMS line keeps it, also once the
        # contact's number has changed) and by the contacts that have it now.
        lines = Recipient.objects.filter(workflow_run_id__isnull=False)
        # The exclude repeats the partial index's condition (recipient_phone): SQLite
        # uses such an index only when the query states its condition.
        texted = lines.filter(phone__in=numbers).exclude(phone="").values("workflow_run_id")
        of_contacts = lines.filter(
            contact_id__in=Contact.objects.filter(phone__in=numbers).values("pk")
        ).values("workflow_run_id")
        # And the runs that stopped before any line, which keep the number they would
        # have used (the exclude, as above, for the partial index run_phone).
        stopped = Run.objects.filter(phone__in=numbers).exclude(phone="").values("pk")
        return queryset.filter(Q(pk__in=texted) | Q(pk__in=of_contacts) | Q(pk__in=stopped))
    # The 15-character id finds the runs of its 18-character form, and back.
    return queryset.filter(record_id__in=record_id_forms(search))


# How many of the newest runs not started yet an email search reads the messages of.
UNSTARTED_SCAN_LIMIT = 1000


def unstarted_runs_holding(value: str) -> list[int]:
    """Ids of runs no worker has started yet whose Salesforce message has a field equal
    to `value` (any case).

    A run learns its contact's email when it runs, so while it waits in the queue (no
    worker running, or a backlog) an email search would not find it, and that is when
    an admin asks. Only the newest UNSTARTED_SCAN_LIMIT waiting runs are read (the
    partial index run_unfinished serves them; the filter repeats its condition). The
    value is searched for as the message stores it: a whole JSON string, quotes
    included, with its non-ASCII characters escaped, so "bob@example.co" does not find
    bob@example.com and "josé@example.org" finds itself."""
    newest = list(
        Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING], email="")
        .order_by("-id")
        .values_list("pk", flat=True)[:UNSTARTED_SCAN_LIMIT]
    )
    if not newest:
        return []
    return list(
        Run.objects.filter(pk__in=newest, notification__payload__icontains=json.dumps(value))
        .order_by("-id")
        .values_list("pk", flat=True)
    )


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


def _latest_payloads(workflow_ids: Iterable[int], per_workflow: int) -> list[dict]:
    # Through the runs' (workflow, -id) index: a handful of rows per workflow, however
    # many millions of notifications the table holds.
    notification_ids: list[int] = []
    for workflow_id in workflow_ids:
        notification_ids.extend(
            Run.objects.filter(workflow_id=workflow_id)
            .order_by("-id")
            .values_list("notification_id", flat=True)[:per_workflow]
        )
    if not notification_ids:
        return []
    return list(
        Notification.objects.filter(pk__in=notification_ids)
        .order_by("-id")
        .values_list("payload", flat=True)
    )


def _field_names(payloads: Iterable[dict], names: list[str]) -> list[str]:
    for payload in payloads:
        for name in (payload or {}).get("fields", {}):
            if name not in names:
                names.append(name)
    return names


def event_fields_seen(*, workflow: Workflow, sample_size: int = 50) -> list[str]:
    """Field names declared on the event plus those seen in its latest messages."""
    names: list[str] = list(workflow.event.fields or [])
    return _field_names(_latest_payloads([workflow.pk], sample_size), names)


def object_fields_known(
    *,
    object_name: str,
    declared: Iterable[str] = (),
    workflow: Workflow | None = None,
    max_workflows: int = 20,
) -> list[str]:
    """What the dynamic-text menu offers for an event on `object_name`: the fields the
    admin declared, those seen in messages to this workflow and to other workflows on
    the same object, then the object's common standard fields (so a new workflow on
    Case offers ContactEmail before any message has arrived)."""
    names = list(dict.fromkeys(name for name in declared if name))
    if workflow is not None:
        names = _field_names(_latest_payloads([workflow.pk], 50), names)
    object_name = (object_name or "").strip()
    # A name longer than the column is no event's (the form says so); SQLite cannot even
    # run a LIKE that long.
    if object_name and len(object_name) <= Event._meta.get_field("object_name").max_length:
        others = (
            Event.objects.filter(object_name__iexact=object_name)
            .exclude(workflow=workflow)
            .order_by("-workflow_id")
            .values_list("workflow_id", flat=True)[:max_workflows]
        )
        names = _field_names(_latest_payloads(others, 10), names)
        for name in standard_fields(object_name):
            if name not in names:
                names.append(name)
    return names


# What a condition may test besides the record's fields (TaskContext.event_facts).
EVENT_FACTS = ("ObjectType", "RecordId", "NotificationId", "OrganizationId")


def condition_field_warnings(*, workflow: Workflow) -> list[str]:
    """One sentence per condition field that no source knows: not declared on the
    event, not in any message received for the object, not a standard field of it, not
    an event fact. Such a rule is saved (the field may come with the next message), but
    a misspelt one would skip every run, so the builder says so after saving."""
    rules = (workflow.conditions or {}).get("rules") or []
    wanted = [rule.get("field") for rule in rules if isinstance(rule, dict)]
    wanted = [name for name in dict.fromkeys(wanted) if isinstance(name, str) and name]
    if not wanted:
        return []
    event = Event.objects.filter(workflow=workflow).first()
    known = [
        *object_fields_known(
            object_name=event.object_name if event else "",
            declared=(event.fields if event else None) or [],
            workflow=workflow,
        ),
        *EVENT_FACTS,
    ]
    by_lower = {name.lower(): name for name in reversed(known)}
    warnings = []
    for name in wanted:
        if name in known:
            continue
        near = by_lower.get(name.lower())
        hint = (
            f"Salesforce sends it as {near!r} (names are case-sensitive)"
            if near
            else "check the spelling, or list it in the event's fields"
        )
        warnings.append(
            f"The condition on {name!r} tests a field that the event does not declare "
            f"and no message has carried yet; until one does, the rule sees it as "
            f"empty: {hint}."
        )
    return warnings


def sample_runs(*, workflow: Workflow | None, object_name: str = "", limit: int = 10) -> list[Run]:
    """Stored payloads to preview messages with: this workflow's latest runs, else
    (a new workflow) the latest runs of workflows on the same object."""
    queryset = Run.objects.select_related("workflow", "notification")
    if workflow is not None:
        runs = list(queryset.filter(workflow=workflow).order_by("-id")[:limit])
        if runs:
            return runs
    if not object_name:
        return []
    workflow_ids = list(
        Event.objects.filter(object_name__iexact=object_name.strip())
        .order_by("-workflow_id")
        .values_list("workflow_id", flat=True)[:20]
    )
    runs: list[Run] = []
    for workflow_id in workflow_ids:
        runs.extend(queryset.filter(workflow_id=workflow_id).order_by("-id")[:limit])
    return sorted(runs, key=lambda run: -run.pk)[:limit]


def workflow_list(*, user, mine: bool) -> QuerySet[Workflow]:
    queryset = Workflow.objects.select_related("owner", "event").order_by("-id")
    return queryset.filter(owner=user) if mine else queryset.exclude(owner=user)


# --- "Why not sent?" -------------------------------------------------------------------

SENT_STATUSES = frozenset({"sent", "delivered", "opened", "started", "finished"})
WAITING_STATUSES = frozenset({"pending", "scheduled"})


@dataclass
class Finding:
    """One fact of a run's answer, with where to look closer."""

    kind: str  # "sent" | "problem" | "waiting" | "info"
    text: str
    link: str = ""
    link_text: str = ""
    # Said by the run's reason already (a failed task of a failed run): the run list,
    # which shows the reason beside the findings, leaves it out.
    in_reason: bool = False


@dataclass
class RunExplanation:
    headline: str
    kind: str
    findings: list[Finding] = field(default_factory=list)
    task_runs: list[TaskRun] = field(default_factory=list)
    recipients: list = field(default_factory=list)
    # Each line's Distributions tab, by line id; "" where the reader may not open it.
    line_urls: dict[int, str] = field(default_factory=dict)


def distribution_page_url(line) -> str:
    """A recipient line's place on its survey's Distributions tab."""
    return f"/surveys/{line.survey_id}/distributions/?distribution={line.distribution_id}"


def linkable_surveys(*, user, survey_ids: Iterable[int]) -> list[int]:
    """Which of these surveys' Distributions tabs `user` may open."""
    from surveys.selectors import survey_list_visible

    survey_ids = [survey_id for survey_id in survey_ids if survey_id is not None]
    if not survey_ids:
        return []
    visible = survey_list_visible(user=user).filter(pk__in=survey_ids)
    return list(visible.values_list("pk", flat=True))


def contact_admin_url(contact_id: int) -> str:
    return f"/admin/contacts/contact/{contact_id}/change/"


def task_label(task_type: str) -> str:
    """A task type's name as the builder shows it ("XM Directory: Distribute survey")."""
    from xmflows import task_types

    registered = task_types.get(task_type)
    return registered.label if registered else task_type


def _explain(
    run: Run, task_runs: list[TaskRun], lines: list, linkable: set[int] | None = None
) -> RunExplanation:
    findings: list[Finding] = []
    for task_run in task_runs:
        label = f"task {task_run.position + 1} ({task_label(task_run.type)})"
        if task_run.status == TaskRunStatus.FAILED:
            findings.append(
                Finding(
                    "problem",
                    f"{label} failed: {task_run.error}",
                    in_reason=run.status == RunStatus.FAILED,
                )
            )
        elif task_run.status == TaskRunStatus.WAITING_RETRY:
            findings.append(Finding("waiting", f"{label}: {task_run.error}"))
        elif task_run.status == TaskRunStatus.NOT_RUN:
            findings.append(Finding("info", f"{label} did not run: an earlier task failed"))
        for warning in (task_run.output or {}).get("warnings") or []:
            findings.append(Finding("info", f"{label} warning: {warning}"))
    sent = False
    line_urls: dict[int, str] = {}
    scheduled_because = {
        output["recipient_id"]: output["scheduled_because"]
        for output in (task_run.output or {} for task_run in task_runs)
        if output.get("scheduled_because") and output.get("recipient_id")
    }
    for line in lines:
        who = line.to_address or line.email or line.phone or f"contact {line.contact_id}"
        link_text = f"line #{line.pk} of distribution #{line.distribution_id}"
        if linkable is None or line.survey_id in linkable:
            link = distribution_page_url(line)
        else:  # the survey's Distributions tab would refuse them
            link, link_text = "", f"{link_text} (its survey is not shared with you)"
        line_urls[line.pk] = link
        status = line.get_status_display()
        # A reminder or thank-you goes to the same address as its invitation: named, so
        # two lines of one run do not read as the same message sent twice.
        what = "" if line.kind == "invitation" else f"{line.get_kind_display().lower()} "
        if line.status in SENT_STATUSES or line.sent_at:
            # Sent, whatever happened since (an unsubscribe, a bounce): say both.
            sent = True
            when = f" on {line.sent_at:%Y-%m-%d %H:%M} UTC" if line.sent_at else ""
            since = f": {line.error}" if line.error and line.status not in SENT_STATUSES else ""
            findings.append(
                Finding("sent", f"{what}sent to {who}{when}; now {status}{since}", link, link_text)
            )
        elif line.status in WAITING_STATUSES:
            when = (
                f" for {line.scheduled_for:%Y-%m-%d %H:%M} UTC"
                if line.status == "scheduled" and line.scheduled_for
                else ""
            )
            # Why it waits, when the line says (quiet hours, a provider failure retried),
            # else when its task does (a send delay, the next working hour).
            why = line.error or (scheduled_because.get(line.pk, "") if when else "")
            why = f": {why}" if why else ""
            findings.append(
                Finding(
                    "waiting", f"{what}to {who}: {status}{when}, not sent yet{why}", link, link_text
                )
            )
        else:
            reason = f": {line.error}" if line.error else ""
            findings.append(
                Finding("problem", f"{what}not sent to {who}: {status}{reason}", link, link_text)
            )

    if run.status == RunStatus.SKIPPED:
        # Skipped on its conditions, or because its workflow was disabled meanwhile.
        headline = (
            f"Not sent: the workflow's conditions were not met — {run.reason}"
            if run.reason.startswith("condition")
            else f"Not sent: {run.reason}"
        )
        return RunExplanation(
            headline=headline,
            kind="problem",
            findings=findings,
            task_runs=task_runs,
            recipients=lines,
            line_urls=line_urls,
        )
    if run.status in {RunStatus.QUEUED, RunStatus.RUNNING}:
        if run.next_attempt_at:
            headline = (
                "Not sent yet: a task failed temporarily and is retried at "
                f"{run.next_attempt_at:%Y-%m-%d %H:%M} UTC"
            )
        else:
            headline = f"Not sent yet: the run is {run.get_status_display().lower()}"
        kind = "waiting"
    elif sent:
        headline = "Sent"
        kind = "sent"
    elif any(f.kind == "problem" for f in findings):
        first = next(f for f in findings if f.kind == "problem").text
        headline = (
            first[0].upper() + first[1:] if first.startswith("not sent") else (f"Not sent: {first}")
        )
        kind = "problem"
    elif any(f.kind == "waiting" for f in findings):
        headline = "Not sent yet: " + next(f.text for f in findings if f.kind == "waiting")
        kind = "waiting"
    elif run.status == RunStatus.FAILED:
        headline = f"Not sent: the run failed — {run.reason}"
        kind = "problem"
    else:
        headline = (
            "Nothing to send: the run succeeded, and no task of this workflow distributes a survey"
        )
        kind = "info"
    return RunExplanation(
        headline=headline,
        kind=kind,
        findings=findings,
        task_runs=task_runs,
        recipients=lines,
        line_urls=line_urls,
    )


def run_explanations(runs: Iterable[Run], *, user=None) -> dict[int, RunExplanation]:
    """Why each run sent what it sent: its reason, its task errors and its recipient
    lines' statuses — two indexed queries for a whole page of runs. Each run also
    gets it as `run.explanation`, for the run tables. Given the `user` who reads it,
    a line links to its survey's Distributions tab only when they may open it."""
    from distributions.models import Recipient

    runs = list(runs)
    ids = [run.pk for run in runs]
    if not ids:
        return {}
    task_runs: dict[int, list[TaskRun]] = defaultdict(list)
    for task_run in TaskRun.objects.filter(run_id__in=ids).order_by("run_id", "position"):
        task_runs[task_run.run_id].append(task_run)
    lines: dict[int, list] = defaultdict(list)
    for line in Recipient.objects.filter(workflow_run_id__in=ids).order_by("id"):
        lines[line.workflow_run_id].append(line)
    linkable = None
    if user is not None:
        survey_ids = {line.survey_id for found in lines.values() for line in found}
        linkable = set(linkable_surveys(user=user, survey_ids=survey_ids))
    explanations = {
        run.pk: _explain(run, task_runs[run.pk], lines[run.pk], linkable) for run in runs
    }
    for run in runs:
        run.explanation = explanations[run.pk]
    return explanations


def lines_of_deleted_runs(search: str, *, user, limit: int = 10) -> list[Recipient]:
    """Distribution lines sent to this email address or phone number by runs that no
    longer exist (their workflow was deleted, or history cleaned up): the person may
    have been sent a survey that no run explains any more. Lines of surveys `user`
    may see only, newest first."""
    from surveys.selectors import survey_list_visible

    search = search.strip()
    if "@" in search:
        lines = Recipient.objects.alias(email_lower=Lower("email")).filter(
            email_lower=Lower(Value(search))
        )
    else:
        numbers = phone_forms(search)
        if not numbers:
            return []
        # The exclude repeats the partial index's condition (recipient_phone).
        lines = Recipient.objects.filter(phone__in=numbers).exclude(phone="")
    return list(
        lines.filter(
            workflow_run_id__isnull=False,
            survey_id__in=survey_list_visible(user=user).values("pk"),
        )
        .exclude(workflow_run_id__in=Run.objects.values("pk"))
        .select_related("survey")
        .order_by("-id")[:limit]
    )


def rejected_deliveries_mentioning(text: str, *, days: int = 30, limit: int = 10) -> list[Delivery]:
    """Refused messages of the last `days` whose kept excerpt holds `text` (a record
    id or an address): a refused message created no run to find it by. Bounded by the
    (outcome, received_at) index, so the text scan covers recent refusals only."""
    text = text.strip()
    if len(text) < 5:
        return []
    since = timezone.now() - timedelta(days=days)
    return list(
        Delivery.objects.select_related("workflow")
        .filter(
            outcome=DeliveryOutcome.REJECTED,
            received_at__gte=since,
            body_excerpt__contains=text,
        )
        .order_by("-received_at")[:limit]
    )


# --- The background queue, as the Queue page shows it (SPEC F9) ---------------------------

# Queued work older than this with no run started meanwhile means no worker is taking it.
IDLE_WORKERS_AFTER = timedelta(minutes=2)
# A schedule this late to run means no qcluster is running its scheduler.
LATE_SCHEDULE_AFTER = timedelta(minutes=3)


@dataclass
class QueueOverview:
    now: datetime
    broker: str  # "database" or "Redis"
    broker_reachable: bool
    broker_jobs: int | None  # jobs waiting in the broker; None when it cannot be asked
    runs_due: int  # queued runs a worker may take now
    oldest_due_at: datetime | None
    runs_waiting_retry: int
    next_retry_at: datetime | None
    runs_running: int
    runs_stuck: int  # running for longer than XMFLOWS_STUCK_AFTER_SECONDS
    runs_failed_24h: int
    last_run_started_at: datetime | None
    lines_scheduled: int
    next_scheduled_for: datetime | None
    lines_waiting_retry: int
    schedules: list = field(default_factory=list)  # django_q Schedule rows
    job_failures: list = field(default_factory=list)  # the latest failed jobs
    warnings: list[str] = field(default_factory=list)


def _broker_state() -> tuple[str, bool, int | None]:
    from django.conf import settings
    from django_q.brokers import get_broker

    kind = "Redis" if settings.Q_CLUSTER.get("redis") else "database"
    try:
        broker = get_broker()
        if not broker.ping():
            return kind, False, None
        return kind, True, int(broker.queue_size())
    except Exception:  # the page says the broker is unreachable; it must still render
        return kind, False, None


def queue_overview(*, now: datetime | None = None, failures: int = 20) -> QueueOverview:
    """Backlog and failures of the background work: runs and distribution lines
    waiting (the database rows are the truth, PITFALLS.md 1), the broker's own queue,
    the periodic jobs, the latest jobs that raised — and what looks wrong."""
    from django.conf import settings
    from django_q.models import Failure, Schedule

    from distributions.models import Recipient, RecipientStatus

    now = now or timezone.now()
    runs = Run.objects.all()
    due = runs.filter(status=RunStatus.QUEUED).exclude(next_attempt_at__gt=now)
    due_stats = due.aggregate(count=Count("id"), oldest=Min("created_at"))
    waiting = runs.filter(status=RunStatus.QUEUED, next_attempt_at__gt=now)
    waiting_stats = waiting.aggregate(count=Count("id"), soonest=Min("next_attempt_at"))
    running = runs.filter(status=RunStatus.RUNNING)
    stuck_since = now - timedelta(seconds=settings.XMFLOWS_STUCK_AFTER_SECONDS)
    # Of the runs received in the last 24 hours (an id range, then the exact time).
    day_ago = now - timedelta(days=1)
    first_id = _first_id_at_or_after(day_ago - ID_ORDER_SLACK)
    failed_recent = runs.filter(status=RunStatus.FAILED, created_at__gte=day_ago)
    lines = Recipient.objects.all()
    scheduled = lines.filter(status=RecipientStatus.SCHEDULED)
    retrying = lines.filter(status=RecipientStatus.PENDING, next_attempt_at__gt=now)
    broker, reachable, jobs = _broker_state()
    overview = QueueOverview(
        now=now,
        broker=broker,
        broker_reachable=reachable,
        broker_jobs=jobs,
        runs_due=due_stats["count"],
        oldest_due_at=due_stats["oldest"],
        runs_waiting_retry=waiting_stats["count"],
        next_retry_at=waiting_stats["soonest"],
        runs_running=running.count(),
        runs_stuck=running.filter(started_at__lt=stuck_since).count(),
        runs_failed_24h=0 if first_id is None else failed_recent.filter(id__gte=first_id).count(),
        last_run_started_at=_last_run_started(),
        lines_scheduled=scheduled.count(),
        next_scheduled_for=scheduled.aggregate(soonest=Min("scheduled_for"))["soonest"],
        lines_waiting_retry=retrying.count(),
        schedules=list(Schedule.objects.order_by("name")),
        job_failures=list(Failure.objects.order_by("-stopped")[:failures]),
    )
    overview.warnings = _queue_warnings(overview)
    return overview


def _last_run_started() -> datetime | None:
    """When a worker last started a run, near enough: the start of the newest run of
    each status but queued (one index seek each; a table scan for the true maximum
    would grow with the history)."""
    starts = [
        Run.objects.filter(status=status).order_by("-id").values_list("started_at", flat=True)[:1]
        for status in (RunStatus.RUNNING, *RUN_FINISHED)
    ]
    found = [moment for query in starts for moment in query if moment is not None]
    return max(found, default=None)


def _queue_warnings(overview: QueueOverview) -> list[str]:
    warnings: list[str] = []
    now = overview.now
    if not overview.broker_reachable:
        warnings.append(
            f"The {overview.broker} broker cannot be reached: new runs are stored but not "
            "queued until it is back (the sweeper queues them then)."
        )
    if overview.oldest_due_at and now - overview.oldest_due_at > IDLE_WORKERS_AFTER:
        last = overview.last_run_started_at
        if last is None or now - last > IDLE_WORKERS_AFTER:
            waited = _age(now - overview.oldest_due_at)
            warnings.append(
                f"{overview.runs_due} run(s) have waited up to {waited} and no worker has "
                "started a run since "
                + (f"{last:%Y-%m-%d %H:%M:%S} UTC" if last else "this database was created")
                + ": is a worker (manage.py qcluster) running?"
            )
    late = [
        schedule
        for schedule in overview.schedules
        # repeats 0: a one-off that is done; negative: for ever.
        if schedule.repeats != 0
        and schedule.next_run
        and now - schedule.next_run > LATE_SCHEDULE_AFTER
    ]
    if late:
        names = ", ".join(f"'{schedule.name}'" for schedule in late)
        warnings.append(
            f"Periodic job(s) {names} are overdue by up to "
            f"{_age(max(now - schedule.next_run for schedule in late))}: no worker "
            "(manage.py qcluster) is running their scheduler."
        )
    if overview.runs_stuck:
        warnings.append(
            f"{overview.runs_stuck} run(s) have been running for too long (a worker "
            "stopped mid-run?); the sweeper puts them back in the queue."
        )
    return warnings


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _tasks_naming(key: str, noun: str, ids: set[int]) -> list[str]:
    """One sentence per workflow task whose config names one of `ids` under `key`."""
    from xmflows.models import Task

    found = []
    tasks = Task.objects.select_related("workflow").order_by("workflow__name", "position")
    for task in tasks:
        value = (task.config or {}).get(key)
        if isinstance(value, int) and value in ids:
            found.append(
                f"workflow '{task.workflow.name}' (id {task.workflow_id}), task "
                f"{task.position + 1}, uses {noun} {value}"
            )
    return found


def tasks_using_mailing_lists(ids: set[int]) -> list[str]:
    """A contacts.deletion guard: deleting a list a task names would break every run."""
    return _tasks_naming("mailing_list", "mailing list", ids)


def tasks_using_surveys(ids: set[int]) -> list[str]:
    """A surveys.deletion guard: deleting a survey a task distributes would fail every
    run, and the workflow's export could not be imported again."""
    return _tasks_naming("survey", "survey", ids)


def redeliveries(runs: Iterable[Run], *, scan: int = 500) -> dict[int, list[Delivery]]:
    """For each run, the later deliveries in which Salesforce sent its notification
    again (acknowledged, never run twice), oldest first; from the latest `scan`
    deliveries with duplicates of the runs' workflows. A replay shares its original's
    notification but was never what Salesforce sent: it gets none."""
    runs = [run for run in runs if run.notification_id and run.trigger != RunTrigger.REPLAY]
    if not runs:
        return {}
    earliest = min(run.notification.received_at for run in runs)
    candidates = list(
        Delivery.objects.filter(
            workflow_id__in={run.workflow_id for run in runs},
            duplicate_count__gt=0,
            received_at__gte=earliest,
        ).order_by("-received_at")[:scan]
    )
    found: dict[int, list[Delivery]] = {}
    for run in runs:
        notification = run.notification
        found[run.pk] = sorted(
            (
                delivery
                for delivery in candidates
                if delivery.workflow_id == run.workflow_id
                and delivery.pk != notification.delivery_id
                and notification.notification_id in (delivery.duplicate_ids or [])
            ),
            key=lambda delivery: delivery.pk,
        )
    return found


def run_gone(run_id: int) -> str:
    """What a page says for a run id that is not (or no longer) there: distributions
    and CSV rows keep the id of the run that created them after the run is gone."""
    return (
        f"Run {run_id} does not exist (any more): deleting a workflow deletes its runs, "
        f"and runs older than {settings.XMFLOWS_HISTORY_DAYS} days are deleted "
        "(XMFLOWS_HISTORY_DAYS). The lines it sent keep their history."
    )
