"""Reminders and thank-yous: follow-up messages of an invitation line.

Configured on the distribute task and kept on the invitation's distribution
(`follow_up_config`). Each follow-up is a distribution of its own (kind reminder or
thank_you, parent = the invitation distribution) with one line per contact, whose
`parent` is the invitation line. So every message has its own status, times,
provider id and error, goes through the one send path (marked "sending" before the
provider call, retried with back-off, tracked by webhooks), and appears in the
history CSV as its own row. A unique constraint on (parent line, kind) makes "never
twice" a database fact, whatever job runs twice.

Texts are rendered with piped text from the invitation line's frozen snapshot
(SPEC F4), so a reminder shows the same values and the same personal link as the
invitation did, whatever changed in the directory since. Follow-ups are exempt
from frequency rules (distributions.frequency counts and limits invitations only).

- Reminders: an invitation line carries `reminder_due_at` (state in the database;
  a periodic job, reminders_sweep, looks at the due ones). It is sent `after_days`
  days (of 24 hours) after the invitation was sent, if the respondent has not started
  ("not_started": never opened the link) or not finished ("not_finished") the
  survey, and the link has not expired; the condition is checked again right
  before the reminder is sent (distributions.send_checks).
- Thank-yous: when a respondent finishes (the surveys app's survey_finished
  signal), a job creates and sends the thank-you.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.queueing import enqueue
from core.piped_text import RenderContext, render
from distributions.channels.email import html_to_text
from distributions.models import (
    UNSENT,
    Distribution,
    DistributionChannel,
    MessageKind,
    Recipient,
)
from distributions.send_checks import REMINDER_NOT_STARTED, reminder_skip_reason
from distributions.services import (
    CONTACT_DELETED,
    EmailContent,
    distribution_create,
    recipient_create,
)
from surveys.models import SurveyLink

logger = logging.getLogger(__name__)

THANK_YOU_JOB = "distributions.jobs.create_thank_you"
# How long a reminder waits to be looked at again while its invitation is still
# scheduled or being retried (not sent yet, so "N days after it was sent" is unknown).
REMINDER_RECHECK = timedelta(hours=1)
SUBJECT_MAX = 998


# --- Configuration ------------------------------------------------------------------


def reminder_first_due(
    *, follow_up_config: dict[str, Any], planned_at: datetime
) -> datetime | None:
    """When an invitation planned for `planned_at` is first considered for its reminder
    (None: no reminder configured). Moved to sent_at + after_days once it is sent."""
    reminder = (follow_up_config or {}).get("reminder")
    if not reminder:
        return None
    return planned_at + timedelta(days=int(reminder["after_days"]))


# --- Rendering ----------------------------------------------------------------------


def _section(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    value = snapshot.get(name)
    return value if isinstance(value, dict) else {}


def snapshot_context(snapshot: dict[str, Any]) -> RenderContext:
    """The piped-text context frozen on an invitation line, with its personal links."""
    return RenderContext(
        event_fields=_section(snapshot, "event_fields"),
        event_facts=_section(snapshot, "event_facts"),
        contact=_section(snapshot, "contact"),
        embedded_data=_section(snapshot, "embedded_data"),
        transaction=_section(snapshot, "transaction"),
        links=_section(snapshot, "links"),
    )


def render_follow_up(
    *, config: dict[str, Any], snapshot: dict[str, Any], channel: str, envelope: Recipient
) -> tuple[EmailContent, list[str]]:
    """The follow-up's message: email subject and body, or SMS text, rendered from the
    invitation's snapshot; the sender envelope is the invitation's."""
    context = snapshot_context(snapshot)
    if channel == DistributionChannel.EMAIL:
        subject = render(config.get("subject") or "", context)
        body = render(config.get("body") or "", context, html=True)
        warnings = [*subject.warnings, *body.warnings]
        content = EmailContent(
            from_name=envelope.from_name,
            from_address=envelope.from_address,
            reply_to=envelope.reply_to,
            # One line: a newline piped into a header would be refused at send time.
            subject=" ".join(subject.text.split())[:SUBJECT_MAX],
            body_html=body.text,
            body_text=html_to_text(body.text),
        )
    else:
        # SMS: plain text, links as plain URLs (PIPED_TEXT.md).
        text = render(config.get("text") or "", context)
        warnings = list(text.warnings)
        content = EmailContent(
            from_name="",
            from_address=envelope.from_address,
            reply_to="",
            subject="",
            body_html="",
            body_text=text.text,
        )
    return content, list(dict.fromkeys(warnings))


# --- Creating follow-ups ------------------------------------------------------------


def _follow_up_distribution(
    parent: Distribution, kind: str, config: dict[str, Any]
) -> Distribution:
    """The one reminder (or thank-you) distribution of an invitation distribution."""
    existing = Distribution.objects.filter(parent=parent, kind=kind).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return distribution_create(
                survey=parent.survey,
                channel=parent.channel,
                workflow_run_id=parent.workflow_run_id,
                workflow_id=parent.workflow_id,
                created_by_id=parent.created_by_id,
                message=dict(config),
                kind=kind,
                parent=parent,
                mailing_list_id=parent.mailing_list_id,
            )
    except IntegrityError:  # another job created it a moment ago
        return Distribution.objects.get(parent=parent, kind=kind)


def follow_up_create(
    *, invitation: Recipient, kind: str, config: dict[str, Any]
) -> Recipient | None:
    """Create (and queue) the follow-up line of `invitation`; None if it already has one.

    Runs inside the caller's transaction; the send is queued for after its commit.
    """
    if Recipient.objects.filter(parent=invitation, kind=kind).exists():
        return None
    distribution = _follow_up_distribution(invitation.distribution, kind, config)
    content_row = getattr(invitation, "message", None)
    snapshot = dict((content_row.snapshot if content_row is not None else None) or {})
    content, warnings = render_follow_up(
        config=config, snapshot=snapshot, channel=invitation.channel, envelope=invitation
    )
    follow_up_settings = {"kind": kind}
    if kind == MessageKind.REMINDER:
        follow_up_settings["when"] = config.get("when") or REMINDER_NOT_STARTED
    try:
        with transaction.atomic():
            line = recipient_create(
                distribution=distribution,
                contact=invitation.contact,
                content=content,
                to_address=invitation.to_address,
                snapshot={**snapshot, "follow_up": follow_up_settings, "warnings": warnings},
                record_id=invitation.record_id,
                kind=kind,
                parent=invitation,
            )
    except IntegrityError:  # the unique (parent, kind): created concurrently
        return None
    # Who it went to, as the invitation had it (history stays true after the contact
    # changed).
    frozen = {
        name: getattr(invitation, name)
        for name in ("first_name", "last_name", "email", "phone", "external_data_reference")
    }
    if any(getattr(line, name) != value for name, value in frozen.items()):
        Recipient.objects.filter(pk=line.pk).update(**frozen)
        for name, value in frozen.items():
            setattr(line, name, value)
    return line


# --- Reminders ------------------------------------------------------------------------


def reminders_sweep(*, now: datetime | None = None, limit: int = 2000) -> int:
    """The periodic job: consider every invitation line whose reminder is due. Returns
    how many reminders were created (and queued)."""
    now = now or timezone.now()
    ids = list(
        Recipient.objects.filter(reminder_due_at__lte=now)
        .order_by("reminder_due_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    created = 0
    for line_id in ids:
        outcome = reminder_consider(line_id=line_id, now=now)
        logger.info("reminder of line %s: %s", line_id, outcome)
        created += outcome == "created"
    return created


def reminder_consider(*, line_id: int, now: datetime | None = None) -> str:
    """Create the reminder of one invitation line if it is due and still needed;
    otherwise postpone or drop its due time. Safe to run twice. Returns what it did."""
    now = now or timezone.now()
    with transaction.atomic():
        line = (
            Recipient.objects.select_for_update(of=("self",))
            .select_related("distribution", "link", "message", "contact")
            .filter(pk=line_id)
            .first()
        )
        if line is None or line.reminder_due_at is None or line.reminder_due_at > now:
            return "not due"
        config = (line.distribution.follow_up_config or {}).get("reminder")
        if line.kind != MessageKind.INVITATION or not config:
            return _reminder_settle(line, None, "no reminder configured")
        if line.contact_id is None:
            return _reminder_settle(line, None, f"not needed: {CONTACT_DELETED}")
        after = timedelta(days=int(config["after_days"]))
        if line.sent_at is None:
            if line.status in UNSENT:
                # Scheduled or retrying: look again later.
                later = max(now + REMINDER_RECHECK, (line.scheduled_for or now) + after)
                return _reminder_settle(line, later, "invitation not sent yet")
            return _reminder_settle(line, None, "invitation was never sent")
        due = line.sent_at + after
        if due > now:
            return _reminder_settle(line, due, "not due")
        reason = reminder_skip_reason(
            line,
            when=config.get("when") or REMINDER_NOT_STARTED,
            link_expires_at=line.link.expires_at if line.link is not None else None,
            now=now,
        )
        if reason is not None:
            return _reminder_settle(line, None, f"not needed: {reason}")
        _reminder_settle(line, None, "")
        created = follow_up_create(invitation=line, kind=MessageKind.REMINDER, config=config)
        return "created" if created is not None else "already reminded"


def _reminder_settle(line: Recipient, due: datetime | None, outcome: str) -> str:
    line.reminder_due_at = due
    line.save(update_fields=["reminder_due_at", "updated_at"])
    return outcome


# --- Thank-yous ------------------------------------------------------------------------


def thank_you_queue(*, link_id: int) -> None:
    """A respondent finished: queue the thank-you job (the receiver of survey_finished
    calls this; the job does the writing, so the respondent's request stays short)."""
    enqueue(THANK_YOU_JOB, link_id)


def thank_you_create(*, link_id: int) -> str:
    """Create and queue the thank-you of the link's invitation line, once."""
    with transaction.atomic():
        line = (
            Recipient.objects.select_for_update(of=("self",))
            .select_related("distribution", "message", "contact")
            .filter(link_id=link_id, kind=MessageKind.INVITATION)
            .first()
        )
        if line is None:
            return "no distribution line for this link"
        config = (line.distribution.follow_up_config or {}).get("thank_you")
        if not config:
            return "no thank-you configured"
        finished = line.finished_at or (
            SurveyLink.objects.filter(pk=link_id).values_list("finished_at", flat=True).first()
        )
        if finished is None:
            return "survey not finished"
        if line.contact_id is None:
            # Deleted from the directory: the respondent could still finish through
            # the link, but nothing more is sent to a person an admin removed.
            return f"no thank-you: {CONTACT_DELETED}"
        created = follow_up_create(invitation=line, kind=MessageKind.THANK_YOU, config=config)
        return "created" if created is not None else "already thanked"
