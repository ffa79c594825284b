"""Distribution reports: how far recipient lines got, per day and per channel, for a
survey, a workflow or everything a user may see (SPEC F7), as counts and rates.

Lines are grouped by the day they were created (a cohort): "of the lines created on
the 3rd, 80% were delivered" stays true as later events arrive, where counting events
by their own day would move a line between days. One GROUP BY query per report.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import models
from django.db.models import Count, Func, Q, QuerySet

from distributions.models import (
    UNSENT,
    DistributionChannel,
    MessageKind,
    Recipient,
    RecipientStatus,
)
from distributions.selectors import recipients_visible

MAX_DAYS = 366


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    # What the rate is a share of: "lines" (every line) or "sent".
    of: str


# The statuses SPEC F7 names, in funnel order. Reached milestones (sent … finished)
# are read from their timestamps, so a finished line also counts as sent, delivered
# and opened; the bad outcomes are read from the status.
METRICS: tuple[Metric, ...] = (
    Metric("sent", "Sent", "lines"),
    Metric("delivered", "Delivered", "sent"),
    Metric("opened", "Opened", "sent"),
    Metric("started", "Started", "sent"),
    Metric("finished", "Finished", "sent"),
    Metric("bounced", "Bounced", "sent"),
    Metric("failed", "Failed", "lines"),
    Metric("skipped", "Skipped", "lines"),
    Metric("opted_out", "Opted out", "lines"),
    # Pending or Scheduled: not gone yet (a send delay, quiet hours, a retry's wait).
    Metric("waiting", "Not sent yet", "lines"),
)
_BOUNCES = (RecipientStatus.SOFT_BOUNCE, RecipientStatus.HARD_BOUNCE)


class UTCDay(Func):
    """The UTC day of a datetime column, computed by the database.

    Django's TruncDate calls a Python function per row on SQLite; a million lines
    would spend seconds there. Datetimes are stored in UTC ("YYYY-MM-DD HH:MM:SS…"
    text on SQLite), so the day is their first ten characters.
    """

    output_field = models.CharField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler, connection, template="substr(%(expressions)s, 1, 10)", **extra_context
        )

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler,
            connection,
            template="to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            **extra_context,
        )

    def as_sql(self, compiler, connection, template=None, **extra_context):
        template = template or "CAST(%(expressions)s AS DATE)"
        return super().as_sql(compiler, connection, template=template, **extra_context)


def _aggregates() -> dict[str, Count]:
    return {
        "lines": Count("id"),
        "sent": Count("sent_at"),
        "delivered": Count("delivered_at"),
        "opened": Count("opened_at"),
        "started": Count("started_at"),
        "finished": Count("finished_at"),
        "bounced": Count("id", filter=Q(status__in=_BOUNCES)),
        "failed": Count("id", filter=Q(status=RecipientStatus.FAILED)),
        "skipped": Count("id", filter=Q(status=RecipientStatus.SKIPPED)),
        "opted_out": Count("id", filter=Q(status=RecipientStatus.OPTED_OUT)),
        "waiting": Count("id", filter=Q(status__in=UNSENT)),
    }


def _empty() -> dict[str, int]:
    return dict.fromkeys(["lines", *(metric.key for metric in METRICS)], 0)


def rate(counts: dict[str, int], metric: Metric) -> float | None:
    """The metric as a percentage of its base; None when the base is zero."""
    base = counts.get(metric.of, 0)
    return round(100.0 * counts.get(metric.key, 0) / base, 1) if base else None


@dataclass
class DistributionReport:
    since: date
    until: date
    days: list[date]
    by_day: dict[date, dict[str, int]]
    totals: dict[str, int]
    by_channel: dict[str, dict[str, int]]
    lines_by_day_and_channel: dict[str, list[int]] = field(default_factory=dict)
    # Invitations, reminders and thank-yous counted apart: a reminder is its own
    # line, and rates of invitations alone answer "how did the survey do".
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return METRICS

    def series(self, key: str) -> list[int]:
        return [self.by_day[day][key] for day in self.days]

    def rate_series(self, metric: Metric) -> list[float | None]:
        return [rate(self.by_day[day], metric) for day in self.days]


def report_recipients(
    *,
    user,
    survey_id: int | None = None,
    workflow_id: int | None = None,
    channel: str | None = None,
    kind: str | None = None,
) -> QuerySet[Recipient]:
    """The lines a report counts: visible to `user`, narrowed to a survey, the
    distributions of a workflow, a channel, a kind of message."""
    queryset = recipients_visible(user=user)
    if survey_id:
        queryset = queryset.filter(survey_id=survey_id)
    if workflow_id:
        queryset = queryset.filter(distribution__workflow_id=workflow_id)
    if channel in DistributionChannel.values:
        queryset = queryset.filter(channel=channel)
    if kind in MessageKind.values:
        queryset = queryset.filter(kind=kind)
    return queryset


def default_period(today: date | None = None) -> tuple[date, date]:
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=29), today


def distribution_report(
    *, recipients: QuerySet[Recipient], since: date, until: date
) -> DistributionReport:
    """Counts per day (every day of the period, zeros included), per channel, and in
    total, for the lines created from `since` to `until` (whole UTC days)."""
    if until < since:
        since, until = until, since
    # At most MAX_DAYS days, ending on `until` (date.min at the start of the calendar).
    since = max(since, date.fromordinal(max(1, until.toordinal() - (MAX_DAYS - 1))))
    start = datetime.combine(since, time.min, tzinfo=UTC)
    end = datetime.combine(until, time.max, tzinfo=UTC)  # 9999-12-31 has no next day
    rows = (
        recipients.filter(created_at__gte=start, created_at__lte=end)
        .annotate(day=UTCDay("created_at"))
        .values("day", "channel", "kind")
        .annotate(**_aggregates())
        .order_by()
    )
    days = [since + timedelta(days=offset) for offset in range((until - since).days + 1)]
    by_day: dict[date, dict[str, int]] = {day: _empty() for day in days}
    by_channel: dict[str, dict[str, int]] = defaultdict(_empty)
    by_kind: dict[str, dict[str, int]] = defaultdict(_empty)
    lines_by_channel: dict[str, dict[date, int]] = defaultdict(dict)
    totals = _empty()
    for row in rows:
        day = date.fromisoformat(str(row["day"])[:10])
        if day not in by_day:
            continue
        for key in totals:
            count = row[key] or 0
            by_day[day][key] += count
            by_channel[row["channel"]][key] += count
            by_kind[row["kind"]][key] += count
            totals[key] += count
        per_channel = lines_by_channel[row["channel"]]
        per_channel[day] = per_channel.get(day, 0) + (row["lines"] or 0)
    return DistributionReport(
        since=since,
        until=until,
        days=days,
        by_day=by_day,
        totals=totals,
        by_channel=dict(by_channel),
        by_kind={kind: by_kind[kind] for kind in MessageKind.values if kind in by_kind},
        lines_by_day_and_channel={
            channel: [counts.get(day, 0) for day in days]
            for channel, counts in sorted(lines_by_channel.items())
        },
    )
