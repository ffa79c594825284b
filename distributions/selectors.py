"""Reads on distributions: visibility, counts by status, history rows for the CSV."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Case, Count, F, Func, Q, QuerySet, TextField, Value, When
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from distributions.csv_export import COLUMNS
from distributions.models import (
    Distribution,
    MessageKind,
    OutboxMessage,
    Recipient,
    RecipientStatus,
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


def parse_moment(value: str, *, upper: bool) -> datetime:
    """A date ("2026-11-27": its whole day) or a date-time; naive means UTC."""
    text = (value or "").strip()
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
