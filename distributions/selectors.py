"""Reads on distributions: visibility, counts by status, history rows for the CSV, and
what an edit of senders or suppressions would clash with or break."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models import Case, Count, F, Func, Q, QuerySet, TextField, Value, When
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from distributions.csv_export import COLUMNS
from distributions.models import (
    Distribution,
    EmailSuppression,
    MessageKind,
    OutboxMessage,
    Recipient,
    RecipientStatus,
    VerifiedSender,
    sender_canonical,
    sender_keys,
    suppression_canonical,
)
from surveys.selectors import survey_list_visible

CSV_CHUNK_ROWS = 2000


def distributions_visible(*, user) -> QuerySet[Distribution]:
    """Distributions of the surveys the user may see (owner, collaborator, superuser)."""
    return Distribution.objects.filter(survey__in=survey_list_visible(user=user).values("pk"))


def recipients_visible(*, user) -> QuerySet[Recipient]:
    return Recipient.objects.filter(survey__in=survey_list_visible(user=user).values("pk"))


def status_counts(distribution_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """{distribution id: {status label: count}} in one query; absent statuses omitted."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    ids = list(distribution_ids)
    if not ids:
        return {}
    labels = dict(RecipientStatus.choices)
    rows = (
        Recipient.objects.filter(distribution_id__in=ids)
        .values_list("distribution_id", "status")
        .annotate(count=Count("id"))
        .order_by()
    )
    for distribution_id, status, count in rows:
        counts[distribution_id][labels.get(status, status)] = count
    return dict(counts)


def parse_status(value: str) -> list[str]:
    """Status codes from "Survey Finished", "finished" or a comma-separated list of them.

    Raises ValueError naming the unknown value.
    """
    by_label = {label.lower(): code for code, label in RecipientStatus.choices}
    codes: list[str] = []
    for part in (value or "").split(","):
        text = part.strip()
        if not text:
            continue
        key = text.lower()
        code = key if key in RecipientStatus.values else by_label.get(key)
        if code is None:
            labels = ", ".join(label for _, label in RecipientStatus.choices)
            raise ValueError(f"unknown status {text!r}; one of: {labels}")
        codes.append(code)
    return codes


# A date-time followed by " 02:00": an offset whose "+" a query string decoded.
_SPACED_OFFSET = re.compile(
    r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?) (\d\d(?::?\d\d)?)"
)


def parse_moment(value: str, *, upper: bool) -> datetime:
    """A date ("2026-11-27": its whole day) or a date-time; naive means UTC."""
    text = (value or "").strip()
    # "?since=2026-11-27T10:00:00+02:00" typed as is (curl, a URL bar): the query
    # string turned the offset's "+" into a space. No other reading of it exists.
    if spaced := _SPACED_OFFSET.fullmatch(text):
        text = f"{spaced[1]}+{spaced[2]}"
    # A bare date first: parse_datetime accepts "2026-11-27" too, as its midnight,
    # which would cut the whole day off an upper bound.
    try:
        day: date | None = parse_date(text)
        # An upper bound given as a date includes that whole day.
        moment = (
            datetime.combine(day, time.max if upper else time.min)
            if day is not None
            else parse_datetime(text)
        )
    except ValueError as error:
        # Well formed but impossible ("2026-13-45"): Python's own words say which part.
        raise ValueError(f"not a valid date or date-time: {text!r} ({error})") from error
    if moment is None:
        raise ValueError(f"not a date or date-time: {text!r}")
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return moment


class UTCStamp(Func):
    """A datetime column as 'YYYY-MM-DDTHH:MM:SSZ' text, formatted by the database.

    Parsing a million datetimes into Python objects only to print them again is most
    of an export's CPU time; databases format them for almost nothing.
    """

    output_field = models.CharField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler,
            connection,
            # %%%% leaves %% in the SQL, which the backend (and DEBUG's query log,
            # which formats the SQL with its parameters) reads as one literal %.
            template="strftime('%%%%Y-%%%%m-%%%%dT%%%%H:%%%%M:%%%%SZ', %(expressions)s)",
            **extra_context,
        )

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler,
            connection,
            template=(
                "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            ),
            **extra_context,
        )

    def as_sql(self, compiler, connection, template=None, **extra_context):
        # Other databases hand back a datetime, which the CSV formatter also accepts.
        template = template or "%(expressions)s"
        return super().as_sql(compiler, connection, template=template, **extra_context)


# The values of one CSV row, in COLUMNS order.
_ROW_FIELDS: tuple[Any, ...] = (
    F("distribution_id"),
    F("contact_id"),
    F("first_name"),
    F("last_name"),
    F("email"),
    F("phone"),
    F("external_data_reference"),
    F("channel"),
    F("status"),
    F("error"),
    UTCStamp("sent_at"),
    UTCStamp("delivered_at"),
    UTCStamp("opened_at"),
    UTCStamp("started_at"),
    UTCStamp("finished_at"),
    F("response_id"),
    F("link__token"),
    F("workflow_run_id"),
    F("record_id"),
)
assert len(_ROW_FIELDS) == len(COLUMNS)
ERROR_COLUMN = COLUMNS.index("Error")
# Lines that reached the person: when their link expired before they finished, the
# Error column says so (the contract's statuses are fixed, so the Status stays the
# one reached: Delivered, Opened, Survey Started …).
LINK_EXPIRY_SHOWN_FOR = (
    RecipientStatus.SENT,
    RecipientStatus.SOFT_BOUNCE,
    RecipientStatus.DELIVERED,
    RecipientStatus.OPENED,
    RecipientStatus.STARTED,
)


def error_with_link_expiry(now: datetime):
    """The Error column: the line's error, plus "link expired on <time>" when its
    personal link expired unfinished. Computed by the database in the export query
    (the expiry is a fact of the moment of the export, not a stored state)."""
    expired = Q(
        link__expires_at__lte=now,
        finished_at__isnull=True,
        status__in=LINK_EXPIRY_SHOWN_FOR,
    )
    note = Concat(Value("link expired on "), UTCStamp("link__expires_at"), output_field=TextField())
    return Case(
        When(expired & Q(error=""), then=note),
        When(expired, then=Concat(F("error"), Value("; "), note, output_field=TextField())),
        default=F("error"),
        output_field=TextField(),
    )


def history_rows(
    *,
    distribution_id: int | None = None,
    survey_id: int | None = None,
    statuses: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: list[str] | None = None,
) -> Iterator[tuple]:
    """History rows in COLUMNS order, streamed from the database in chunks.

    Filtered on one distribution or one survey (each an index range scan, ordered
    by line id) and optionally by status, by when the line was created and by
    message kind (invitation, reminder, thank_you: each its own row).
    """
    queryset = Recipient.objects.all()
    if distribution_id is not None:
        queryset = queryset.filter(distribution_id=distribution_id)
        queryset = queryset.order_by("distribution_id", "id")
    elif survey_id is not None:
        queryset = queryset.filter(survey_id=survey_id).order_by("survey_id", "id")
    else:
        raise ValueError("history_rows needs a distribution or a survey")
    if statuses:
        queryset = queryset.filter(status__in=statuses)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lte=until)
    if kinds:
        queryset = queryset.filter(kind__in=kinds)
    fields = list(_ROW_FIELDS)
    fields[ERROR_COLUMN] = error_with_link_expiry(timezone.now())
    names = [f"c{index}" for index in range(len(fields))]
    queryset = queryset.annotate(**dict(zip(names, fields, strict=True)))
    return queryset.values_list(*names).iterator(chunk_size=CSV_CHUNK_ROWS)


def parse_kinds(value: str) -> list[str]:
    """Message kinds from "reminder" or "invitation,thank_you"; ValueError names the
    unknown one."""
    kinds: list[str] = []
    for part in (value or "").split(","):
        text = part.strip().lower().replace("-", "_")
        if not text:
            continue
        if text not in MessageKind.values:
            raise ValueError(
                f"unknown kind {part.strip()!r}; one of: {', '.join(MessageKind.values)}"
            )
        kinds.append(text)
    return kinds


def survey_link_prefix() -> str:
    """What a link token is appended to in the CSV: surveys.services.survey_link_url."""
    return f"{settings.PUBLIC_BASE_URL}/s/"


def outbox_messages(*, to: str = "", channel: str = "") -> QuerySet[OutboxMessage]:
    queryset = OutboxMessage.objects.all()
    if to:
        address = to.strip()
        if address.isdigit() and to[:1] == " ":
            # "?to=+14155550111" typed as is: the query string turned its "+" into a
            # space. No address is digits alone, so the number was meant.
            address = "+" + address
        queryset = queryset.filter(to__iexact=address)
    if channel:
        queryset = queryset.filter(channel=channel)
    return queryset.order_by("-id")


# --- Verified senders and suppressions ------------------------------------------------------


def sender_duplicate_error(*, address: str, exclude_pk: int | None = None) -> str | None:
    """Why `address` cannot be added (or an entry renamed to it): the same sender, in
    its canonical form, is already listed. Shared by the API and the admin form."""
    canonical = sender_canonical(address)
    existing = VerifiedSender.objects.filter(address=canonical).exclude(pk=exclude_pk).first()
    if existing is None:
        return None
    if existing.verified:
        return f"{canonical} is already verified; there is no need to add it again"
    return (
        f"{canonical} is already listed, not verified; edit that entry and tick "
        "Verified instead of adding it again"
    )


def suppression_duplicate_error(*, address: str, exclude_pk: int | None = None) -> str | None:
    """Why `address` cannot be suppressed again: it already is (compared as
    distributions.services.suppression_find compares)."""
    canonical = suppression_canonical(address)
    existing = EmailSuppression.objects.filter(address=canonical).exclude(pk=exclude_pk).first()
    if existing is None:
        return None
    return (
        f"{canonical} is already suppressed ({existing.get_reason_display().lower()} "
        f"on {existing.created_at:%Y-%m-%d}); edit that entry instead of adding it again"
    )


def _email_tasks_senders() -> list[tuple[str, int, int, str]]:
    """(workflow name, workflow id, task number, From address) of every Distribute
    survey task that emails. Its reminders and thank-yous send from the same address (the
    invitation's envelope: distributions.campaign.render_follow_up)."""
    # Read through the app registry: distributions imports no xmflows code
    # (CONVENTIONS.md), yet the tasks are what a sender's deletion would break.
    task_model = apps.get_model("xmflows", "Task")
    tasks = (
        task_model.objects.filter(type="distribute_survey")
        .order_by("workflow__name", "workflow_id", "position")
        .values_list("workflow__name", "workflow_id", "position", "config")
    )
    found = []
    for workflow_name, workflow_id, position, config in tasks:
        # Texting tasks have no from_email (their message is only `text`).
        message = config.get("message") if isinstance(config, dict) else None
        from_email = message.get("from_email") if isinstance(message, dict) else None
        if isinstance(from_email, str) and from_email.strip():
            found.append((workflow_name, workflow_id, position + 1, from_email.strip()))
    return found


def senders_in_use(sender_ids: Iterable[int]) -> list[str]:
    """One sentence per verified sender among `sender_ids` that workflows still send
    from and that no other verified entry covers: deleting it would fail every later
    run with "sender address … is not verified". Empty when the deletion is safe.

    A From address is covered as the send-time check covers it
    (distributions.services.sender_is_verified): by itself or by its domain. Senders
    deleted together do not cover each other."""
    deleting = {int(pk) for pk in sender_ids}
    doomed = set(
        VerifiedSender.objects.filter(pk__in=deleting, verified=True).values_list(
            "address", flat=True
        )
    )
    if not doomed:
        return []
    uses: dict[str, list[str]] = defaultdict(list)
    addresses: dict[str, set[str]] = defaultdict(set)
    for workflow_name, workflow_id, number, from_email in _email_tasks_senders():
        keys = sender_keys(from_email)
        lost = [key for key in keys if key in doomed]
        if not lost:
            continue
        kept = VerifiedSender.objects.filter(address__in=keys, verified=True).exclude(
            pk__in=deleting
        )
        if kept.exists():
            continue
        for key in lost:
            uses[key].append(
                f"workflow '{workflow_name}' (id {workflow_id}), task {number}, sends "
                f"from {from_email}"
            )
            addresses[key].add(keys[0])
    reasons = []
    for address in sorted(uses):
        them = "it" if len(addresses[address]) == 1 else "them"
        where = "the workflow" if len(uses[address]) == 1 else "those workflows"
        reasons.append(
            f"cannot delete {address}: {'; '.join(uses[address])}; no other verified sender "
            f"covers {them}, so every run would fail. Change the From address in {where}, "
            f"or first verify {them} as another sender (the address or its domain)"
        )
    return reasons
