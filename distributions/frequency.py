"""Contact frequency rules: may this contact receive one more survey invitation now?

Evaluated when an invitation line is sent (and, as an early answer, when an
immediate send's line is created), inside the caller's transaction and under a row
lock on the contact, so two sends to the same contact racing each other are
serialised: the second counts the first, which marked itself "sending" and
committed before calling the provider (distributions.services.recipient_send).
PostgreSQL serialises them on the contact row; SQLite's IMMEDIATE transactions
serialise every writer anyway.

The window of a rule is the last `period_days` x 24 hours before the send: a send
exactly that long ago is outside it (it no longer counts), one a second younger is
inside. A send counts from the moment it was handed to the provider (`sent_at`), or,
while it is being handed over or when its outcome is unknown, from the moment that
began (`sending_started_at`). Reminders and thank-yous are never counted or limited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from contacts.models import Contact
from core.job_memo import memoized
from distributions.models import (
    MAX_PERIOD_DAYS,
    FrequencyRule,
    FrequencyScope,
    MessageKind,
    Recipient,
)


@dataclass(frozen=True)
class RecentSends:
    count: int
    first: datetime | None
    last: datetime | None


def effective_period_days(period_days: int) -> int:
    """The period a rule is applied with: forms and the API refuse more than
    MAX_PERIOD_DAYS, but a rule stored before that limit (or written around it) is
    applied as the maximum rather than failing every send with an OverflowError."""
    return min(period_days, MAX_PERIOD_DAYS)


def window_start(*, now: datetime, period_days: int) -> datetime:
    """Sends strictly after this moment are inside the rule's window."""
    return now - timedelta(days=effective_period_days(period_days))


def rules_for(
    *, directory_id: int | None, mailing_list_id: int | None, survey_id: int | None
) -> list[FrequencyRule]:
    """The enabled rules that apply to a send, broadest scope first (read once per job)."""
    return memoized(
        ("frequency_rules", directory_id, mailing_list_id, survey_id),
        lambda: _rules_for(
            directory_id=directory_id, mailing_list_id=mailing_list_id, survey_id=survey_id
        ),
    )


def _rules_for(
    *, directory_id: int | None, mailing_list_id: int | None, survey_id: int | None
) -> list[FrequencyRule]:
    scopes = Q(pk__in=[])
    if directory_id is not None:
        scopes |= Q(scope=FrequencyScope.DIRECTORY, directory_id=directory_id)
    if mailing_list_id is not None:
        scopes |= Q(scope=FrequencyScope.MAILING_LIST, mailing_list_id=mailing_list_id)
    if survey_id is not None:
        scopes |= Q(scope=FrequencyScope.SURVEY, survey_id=survey_id)
    return list(
        FrequencyRule.objects.filter(scopes, enabled=True)
        .select_related("directory", "mailing_list", "survey")
        .order_by("scope", "id")
    )


def recent_sends(
    *,
    rule: FrequencyRule,
    contact_id: int,
    now: datetime,
    exclude_line_id: int | None = None,
) -> RecentSends:
    """The contact's invitations inside the rule's window that the rule counts."""
    since = window_start(now=now, period_days=rule.period_days)
    lines = Recipient.objects.filter(contact_id=contact_id, kind=MessageKind.INVITATION).filter(
        Q(sent_at__gt=since) | Q(sent_at__isnull=True, sending_started_at__gt=since)
    )
    if exclude_line_id is not None:
        lines = lines.exclude(pk=exclude_line_id)
    if rule.scope == FrequencyScope.MAILING_LIST:
        lines = lines.filter(distribution__mailing_list_id=rule.mailing_list_id)
    elif rule.scope == FrequencyScope.SURVEY:
        lines = lines.filter(survey_id=rule.survey_id)
    moments = [
        sent_at or started
        for sent_at, started in lines.values_list("sent_at", "sending_started_at")
    ]
    if not moments:
        return RecentSends(0, None, None)
    return RecentSends(len(moments), min(moments), max(moments))


def describe(rule: FrequencyRule, sends: RecentSends) -> str:
    """The skip reason: "frequency rule 'At most 1 survey per 30 days' (directory Demo
    directory): 1 survey sent on 2026-11-20"."""
    if sends.count == 1:
        summary = f"1 survey sent on {sends.last:%Y-%m-%d}"
    else:
        summary = (
            f"{sends.count} surveys sent in the last "
            f"{effective_period_days(rule.period_days)} days, "
            f"the last on {sends.last:%Y-%m-%d}"
        )
    return f"frequency rule '{rule.name}' ({rule.describe_scope()}): {summary}"


def frequency_skip_reason(
    *,
    contact_id: int | None,
    directory_id: int | None,
    mailing_list_id: int | None,
    survey_id: int | None,
    now: datetime,
    exclude_line_id: int | None = None,
    lock: bool = True,
) -> str | None:
    """Why one more invitation to this contact would break a rule, or None.

    Must run inside a transaction that then records the decision (marks the line
    sending, or skipped) before it commits: the contact's row lock taken here is
    what makes the count and the decision one step. `lock=False` is for previews,
    which decide nothing.
    """
    if contact_id is None:
        return None  # the contact was deleted: nothing to count against
    rules = rules_for(
        directory_id=directory_id, mailing_list_id=mailing_list_id, survey_id=survey_id
    )
    if not rules:
        return None
    if lock:
        # Taken only when a rule applies: sends without rules never wait for each other.
        list(Contact.objects.select_for_update().filter(pk=contact_id).values_list("pk"))
    for rule in rules:
        sends = recent_sends(
            rule=rule, contact_id=contact_id, now=now, exclude_line_id=exclude_line_id
        )
        if sends.count >= rule.max_sends:
            return describe(rule, sends)
    return None
