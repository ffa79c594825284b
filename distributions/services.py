"""Writes on distributions: create lines, send them once, record provider and survey events.

The recipient line is the source of truth (PITFALLS.md 1, 2, 8): jobs and webhooks
may run twice, late or out of order, and each function here reads the line's state
under a lock before changing it, so a second call is harmless.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from config.queueing import enqueue
from contacts.models import Contact
from contacts.services import contact_set_opt_out, opt_out_retain
from core.job_memo import memoized
from core.params import id_or_none
from distributions.channels import SendError
from distributions.channels import email as email_channel
from distributions.channels import sms as sms_channel
from distributions.models import (
    COUNTS_AS_SENT,
    STATUS_RANK,
    UNSENT,
    Conversation,
    ConversationStatus,
    DeliveryEvent,
    Distribution,
    DistributionChannel,
    EmailSuppression,
    MessageKind,
    Recipient,
    RecipientMessage,
    RecipientStatus,
    SuppressionReason,
    VerifiedSender,
    sender_keys,
    suppression_canonical,
)
from distributions.send_checks import send_time_skip_reason
from surveys.models import SurveyStatus

logger = logging.getLogger(__name__)

SEND_JOB = "distributions.jobs.send_recipient"
DUPLICATE_WINDOW = timedelta(hours=12)
UNKNOWN_OUTCOME = (
    "send outcome unknown (worker stopped during the provider call); "
    "not resent to avoid a duplicate"
)
CONTACT_DELETED = "the contact was deleted from the directory"
# Written on the line of a two-way SMS survey that timed out (sms_services); cleared
# when the respondent finishes the survey after all (on the web).
SMS_TIMED_OUT_NOTE = "the two-way SMS survey timed out"


# --- Senders, suppressions, duplicates ----------------------------------------------


def sender_is_verified(*, address: str) -> bool:
    """The address itself, or its whole domain ("@example.com"), is a verified sender."""
    keys = sender_keys(address)
    if not keys:
        return False
    return memoized(
        ("verified_sender", keys[0]),
        VerifiedSender.objects.filter(address__in=keys, verified=True).exists,
    )


def suppression_find(*, address: str) -> EmailSuppression | None:
    return EmailSuppression.objects.filter(address=suppression_canonical(address)).first()


def suppression_add(*, address: str, reason: str, detail: str = "") -> EmailSuppression:
    """Suppress an address for email from now on; the first reason recorded is kept."""
    address = suppression_canonical(address)
    try:
        with transaction.atomic():
            suppression, _ = EmailSuppression.objects.get_or_create(
                address=address, defaults={"reason": reason, "detail": detail[:2000]}
            )
    except IntegrityError:  # a concurrent webhook suppressed it first
        suppression = EmailSuppression.objects.get(address=address)
    return suppression


def suppression_reason(suppression: EmailSuppression) -> str:
    day = suppression.created_at.strftime("%Y-%m-%d")
    if suppression.reason == SuppressionReason.COMPLAINT:
        return f"address complained (marked an email as spam) on {day}"
    return f"address hard-bounced on {day}"


def message_fingerprint(*, address: str, subject: str, body: str) -> str:
    """What "the same message to the same address" means for the 12-hour rule.

    `body` must be rendered without the personal links (they differ on every line,
    so a fingerprint including them would never match).
    """
    digest = hashlib.sha256()
    for part in ((address or "").strip().lower(), subject, body):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def duplicate_find(*, message_hash: str, now: datetime | None = None) -> Recipient | None:
    """A line with the same fingerprint sent in the last 12 hours, or waiting to go."""
    now = now or timezone.now()
    since = connection.ops.adapt_datetimefield_value(now - DUPLICATE_WINDOW)
    counted = ", ".join(["%s"] * len(COUNTS_AS_SENT))
    unsent = ", ".join(["%s"] * len(UNSENT))
    # Plain SQL: every line created pays for this check, and the ORM's compiling of
    # these conditions cost ten times the indexed look-up itself.
    sql = (
        f"SELECT * FROM {Recipient._meta.db_table} "  # noqa: S608 - names from the model
        f"WHERE message_hash = %s AND status IN ({counted}) "
        f"AND (sent_at >= %s OR (sent_at IS NULL AND status IN ({unsent}))) "
        "ORDER BY id DESC LIMIT 1"
    )
    params = [message_hash, *COUNTS_AS_SENT, since, *UNSENT]
    return next(iter(Recipient.objects.raw(sql, params)), None)


@dataclass(frozen=True)
class Refusal:
    status: str
    reason: str


def email_refusal(
    *, contact: Contact | None, address: str, message_hash: str = ""
) -> Refusal | None:
    """Why this email must not go out, or None. Checked when the line is created and
    again (without the duplicate rule) right before sending."""
    if contact is not None and contact.email_opted_out:
        when = f" on {contact.email_opted_out_at:%Y-%m-%d}" if contact.email_opted_out_at else ""
        source = f" ({contact.email_opted_out_source})" if contact.email_opted_out_source else ""
        return Refusal(RecipientStatus.OPTED_OUT, f"contact opted out of email{when}{source}")
    suppression = suppression_find(address=address)
    if suppression is not None:
        return Refusal(RecipientStatus.SKIPPED, suppression_reason(suppression))
    if message_hash:
        duplicate = duplicate_find(message_hash=message_hash)
        if duplicate is not None:
            return Refusal(
                RecipientStatus.SKIPPED,
                "the same message was sent to this address within 12 hours "
                f"(distribution {duplicate.distribution_id})",
            )
    return None


# --- Creating distributions and lines -------------------------------------------------


def distribution_create(
    *,
    survey,
    channel: str,
    workflow_run_id: int | None = None,
    workflow_id: int | None = None,
    created_by_id: int | None = None,
    message: dict[str, Any] | None = None,
    kind: str = MessageKind.INVITATION,
    parent: Distribution | None = None,
    mailing_list_id: int | None = None,
    follow_up_config: dict[str, Any] | None = None,
) -> Distribution:
    return Distribution.objects.create(
        survey=survey,
        channel=channel,
        workflow_run_id=workflow_run_id,
        workflow_id=workflow_id,
        created_by_id=created_by_id,
        message=message or {},
        kind=kind,
        parent=parent,
        mailing_list_id=mailing_list_id,
        follow_up_config=follow_up_config or {},
    )


@dataclass
class EmailContent:
    """A rendered, frozen email: what the recipient line stores and the channel sends."""

    from_name: str
    from_address: str
    reply_to: str
    subject: str
    body_html: str
    body_text: str


def recipient_create(
    *,
    distribution: Distribution,
    contact: Contact | None,
    status: str = RecipientStatus.PENDING,
    error: str = "",
    link=None,
    content: EmailContent | None = None,
    to_address: str = "",
    message_hash: str = "",
    snapshot: dict[str, Any] | None = None,
    record_id: str = "",
    send_at: datetime | None = None,
    kind: str = MessageKind.INVITATION,
    parent: Recipient | None = None,
    reminder_due_at: datetime | None = None,
) -> Recipient:
    """Create one line. A Pending line is queued for sending when the transaction
    commits; a line with `send_at` in the future is Scheduled and left to the sweeper.
    `kind` and `parent` make it a reminder or thank-you of an invitation line;
    `reminder_due_at` is when an invitation's reminder is first considered."""
    now = timezone.now()
    if status == RecipientStatus.PENDING and send_at is not None and send_at > now:
        status = RecipientStatus.SCHEDULED
    content = content or EmailContent("", "", "", "", "", "")
    line = Recipient.objects.create(
        distribution=distribution,
        survey_id=distribution.survey_id,
        channel=distribution.channel,
        contact=contact,
        link=link,
        status=status,
        error=error,
        first_name=getattr(contact, "first_name", "") or "",
        last_name=getattr(contact, "last_name", "") or "",
        email=getattr(contact, "email", "") or "",
        phone=getattr(contact, "phone", "") or "",
        external_data_reference=getattr(contact, "external_data_reference", "") or "",
        record_id=(record_id or "")[:40],
        workflow_run_id=distribution.workflow_run_id,
        to_address=to_address,
        from_name=content.from_name[:200],
        from_address=content.from_address,
        reply_to=content.reply_to,
        subject=content.subject[:998],
        message_hash=message_hash,
        scheduled_for=send_at if status == RecipientStatus.SCHEDULED else None,
        enqueued_at=now if status == RecipientStatus.PENDING else None,
        kind=kind,
        parent=parent,
        reminder_due_at=reminder_due_at if status in UNSENT else None,
    )
    RecipientMessage.objects.create(
        recipient=line,
        body_html=content.body_html,
        body_text=content.body_text,
        snapshot=snapshot or {},
    )
    if status == RecipientStatus.PENDING:
        enqueue(SEND_JOB, line.pk)
    return line


# --- Sending ----------------------------------------------------------------------------


def _stuck_after() -> timedelta:
    return timedelta(seconds=settings.XMFLOWS_STUCK_AFTER_SECONDS)


def retry_delay(attempt: int) -> timedelta:
    """1, 2, 4 … minutes between tries, at most an hour."""
    return timedelta(minutes=min(60, 2 ** max(0, attempt - 1)))


def _survey_is_active(line: Recipient) -> bool:
    return line.survey.status == SurveyStatus.ACTIVE


def recipient_send(*, recipient_id: int) -> str:
    """Send one line if it still needs sending; safe to call any number of times.

    1. Under a row lock: leave it alone if it is sent, settled, not due, or being sent
       right now; re-check survey, opt-out and suppression; mark it "sending" and
       commit — before the provider is called (PITFALLS.md 8).
    2. Call the provider outside any transaction.
    3. Record the provider id and Sent, or schedule a retry, or Failed.

    A line found "sending" for longer than XMFLOWS_STUCK_AFTER_SECONDS means a worker
    stopped during the provider call, so the send may or may not have happened. The
    outbox can be asked (its messages carry the line id and live in this database):
    found means sent, not found means safe to send. A real ESP cannot be asked, and
    sending again could deliver the invitation twice, so the line becomes Failed with
    UNKNOWN_OUTCOME: a duplicate survey is worse than a missing one, which an admin
    can see and resend. A delivery webhook for the line, should one arrive (our
    metadata carries its id), settles it as sent. Returns what happened, for logs
    and tests.
    """
    now = timezone.now()
    with transaction.atomic():
        line = (
            Recipient.objects.select_for_update(of=("self",))
            .select_related("survey", "contact", "message", "link", "distribution")
            .filter(pk=recipient_id)
            .first()
        )
        if line is None:
            return "missing"
        if line.status not in UNSENT:
            return f"already {line.status}"
        if line.provider_message_id:
            return "already sent"
        if line.sending_started_at is not None:
            if line.sending_started_at > now - _stuck_after():
                return "being sent"
            settled = _settle_interrupted(line, now)
            if settled is not None:
                return settled
            # Proven unsent: it goes through the checks and is sent as usual.
        if (line.scheduled_for and line.scheduled_for > now) or (
            line.next_attempt_at and line.next_attempt_at > now
        ):
            # Nothing of ours is queued for it any more: the sweeper queues it when due.
            line.enqueued_at = None
            line.save(update_fields=["enqueued_at", "updated_at"])
            return "not due"
        # A thank-you is for a response already given: closing the survey since
        # does not make it wrong to say thank you.
        if not _survey_is_active(line) and line.kind != MessageKind.THANK_YOU:
            _settle(line, RecipientStatus.SKIPPED, "survey is not active")
            return "skipped"
        if line.contact_id is None:
            # Every line is created for a contact; none left means an admin deleted
            # it (the foreign key is set to null) while the send waited.
            _settle(line, RecipientStatus.SKIPPED, f"{CONTACT_DELETED} before the send")
            return "skipped"
        refusal = _send_time_refusal(line)
        if refusal is not None:
            _settle(line, refusal.status, refusal.reason)
            return refusal.status
        # Frequency rules (invitations) and whether a reminder is still needed, decided
        # under the contact's lock and recorded before this transaction commits.
        skip_reason = send_time_skip_reason(line, now=now)
        if skip_reason is not None:
            _settle(line, RecipientStatus.SKIPPED, skip_reason)
            return "skipped"
        from distributions.sms_services import quiet_hours_hold, sms_hold

        held = quiet_hours_hold(line, now) or (sms_hold(line, now) if _is_sms(line) else None)
        if held is not None:
            return held
        line.sending_started_at = now
        line.attempts += 1
        line.next_attempt_at = None
        line.save(update_fields=["sending_started_at", "attempts", "next_attempt_at", "updated_at"])
    # Committed: from here on a crash leaves the line visibly "sending".
    try:
        result = _channel(line).send(line)
    except SendError as error:
        return _record_failure(line, error)
    with transaction.atomic():
        Recipient.objects.filter(pk=line.pk, status__in=UNSENT).update(
            status=RecipientStatus.SENT,
            provider_message_id=result.provider_message_id[:255],
            sent_at=timezone.now(),
            error="",
            next_attempt_at=None,
            updated_at=timezone.now(),
        )
    if _is_sms(line):
        from distributions.sms_conversations import conversation_start_questions
        from distributions.sms_services import opens_conversation

        if opens_conversation(line):
            # A two-way survey: the opening went out, now its first question.
            conversation_start_questions(recipient_id=line.pk)
    return "sent"


def _is_sms(line: Recipient) -> bool:
    return line.channel in (DistributionChannel.SMS, DistributionChannel.SMS_SURVEY)


def _channel(line: Recipient):
    """The channel module of a line: the same send / can_look_up_sends / find_sent.

    The SMS services (distributions.sms_services, sms_conversations) build on this
    module, so they are imported where used, not at the top.
    """
    return sms_channel if _is_sms(line) else email_channel


def _send_time_refusal(line: Recipient):
    """Opt-out and suppression, checked again right before sending (no duplicate rule:
    the line itself would count as its own duplicate)."""
    if _is_sms(line):
        from distributions.sms_services import line_refusal

        return line_refusal(line)
    if not sender_is_verified(address=line.from_address):
        # Verified when the task ran; an admin may have withdrawn it since (a send
        # delay, a retry, a reminder days later).
        return Refusal(
            RecipientStatus.FAILED,
            f"sender address {line.from_address or '(none)'} is no longer verified",
        )
    return email_refusal(contact=line.contact, address=line.to_address)


def _settle(line: Recipient, status: str, error: str) -> None:
    line.status = status
    line.error = error
    line.next_attempt_at = None
    line.save(update_fields=["status", "error", "next_attempt_at", "updated_at"])


def _settle_interrupted(line: Recipient, now: datetime) -> str | None:
    """A worker stopped during this line's provider call. Returns what was decided,
    or None when the send provably did not happen (safe to send now)."""
    if _channel(line).can_look_up_sends():
        provider_id = _channel(line).find_sent(line)
        if provider_id is None:
            # The outbox writes to this database: no row means no send.
            line.sending_started_at = None
            return None
        line.status = RecipientStatus.SENT
        line.provider_message_id = provider_id[:255]
        line.sent_at = line.sending_started_at or now
        line.sending_started_at = None
        line.error = ""
        line.save(
            update_fields=[
                "status",
                "provider_message_id",
                "sent_at",
                "sending_started_at",
                "error",
                "updated_at",
            ]
        )
        return "sent (found after an interruption)"
    # A real ESP may have accepted it: sending again could deliver it twice.
    line.status = RecipientStatus.FAILED
    line.error = UNKNOWN_OUTCOME
    line.outcome_unknown = True
    line.save(update_fields=["status", "error", "outcome_unknown", "updated_at"])
    return "outcome unknown"


def _record_failure(line: Recipient, error: SendError) -> str:
    now = timezone.now()
    with transaction.atomic():
        current = Recipient.objects.select_for_update(of=("self",)).get(pk=line.pk)
        current.sending_started_at = None
        window = timedelta(seconds=settings.XMFLOWS_RETRY_WINDOW_SECONDS)
        started = current.scheduled_for or current.created_at
        next_at = now + retry_delay(current.attempts)
        if error.temporary and next_at <= started + window:
            current.next_attempt_at = next_at
            current.enqueued_at = None
            current.error = (
                f"temporary failure (attempt {current.attempts}), retrying at "
                f"{next_at:%Y-%m-%d %H:%M:%S} UTC: {error.message}"
            )
            outcome = "retry"
        else:
            current.status = RecipientStatus.FAILED
            current.next_attempt_at = None
            current.error = (
                f"gave up after {current.attempts} attempts: {error.message}"
                if error.temporary
                else error.message
            )
            outcome = "failed"
        current.save(
            update_fields=[
                "sending_started_at",
                "next_attempt_at",
                "enqueued_at",
                "status",
                "error",
                "updated_at",
            ]
        )
    if _is_sms(line):
        from distributions.sms_services import sms_after_failure

        sms_after_failure(line, error, outcome)
    return outcome


def recipients_sweep(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Queue the lines that are due and not in the queue: scheduled sends whose time
    came, retries whose back-off elapsed, sends whose job was lost, and sends stuck
    "sending" (the job settles those as described in recipient_send)."""
    now = now or timezone.now()
    stale = now - _stuck_after()
    due = (
        Q(status__in=UNSENT, sending_started_at__isnull=True)
        & (Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now))
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        & (Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
    )
    stuck = Q(status__in=UNSENT, sending_started_at__lt=stale) & (
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    )
    ids = list(
        Recipient.objects.filter(due | stuck).order_by("id").values_list("id", flat=True)[:limit]
    )
    if not ids:
        return 0
    with transaction.atomic():
        Recipient.objects.filter(pk__in=ids).update(enqueued_at=now)
        for recipient_id in ids:
            enqueue(SEND_JOB, recipient_id)
    logger.info("distribution sweeper queued %d lines", len(ids))
    return len(ids)


# --- Provider events (webhooks) -------------------------------------------------------

# Our vocabulary of delivery events, from anymail's normalized event types.
EVENT_STATUS: dict[str, str] = {
    "delivered": RecipientStatus.DELIVERED,
    "opened": RecipientStatus.OPENED,
    "clicked": RecipientStatus.OPENED,
    "bounced": RecipientStatus.HARD_BOUNCE,
    "soft_bounce": RecipientStatus.SOFT_BOUNCE,
    "deferred": RecipientStatus.SOFT_BOUNCE,
    "complained": RecipientStatus.COMPLAINT,
    "rejected": RecipientStatus.FAILED,
    "failed": RecipientStatus.FAILED,
    "unsubscribed": RecipientStatus.OPTED_OUT,
}
# Which time column an event fills (the first time it happens).
EVENT_TIME_FIELD: dict[str, str] = {
    "delivered": "delivered_at",
    "opened": "opened_at",
    "clicked": "opened_at",
}
# Events that prove the provider took the message (settle an unknown outcome).
PROOF_OF_SEND = frozenset(
    {
        "queued",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "soft_bounce",
        "deferred",
        "complained",
        "unsubscribed",
    }
)
# Events whose reason is worth showing on the line.
EVENT_WITH_ERROR = frozenset(
    {"bounced", "soft_bounce", "deferred", "complained", "rejected", "failed"}
)


def _json_safe(raw: Any) -> Any:
    try:
        return json.loads(json.dumps(raw, default=str))
    except (TypeError, ValueError):
        return {"repr": repr(raw)[:10000]}


def _event_key(provider: str, event_id: str | None, raw: Any) -> str:
    # Some events carry no id (Postmark deliveries and opens): the payload itself is
    # then the identity, so a redelivered copy is still recognised.
    if event_id:
        return str(event_id)[:255]
    canonical = json.dumps(raw, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(f"{provider}\x00{canonical}".encode()).hexdigest()


def delivery_event_record(
    *,
    provider: str,
    event_id: str | None,
    message_id: str | None,
    event_type: str,
    timestamp: datetime | None,
    reason: str = "",
    raw: Any = None,
    metadata: dict[str, Any] | None = None,
) -> DeliveryEvent | None:
    """Record one provider event once and move its line forward (never back).

    Returns None for a duplicate. An event for an unknown message is recorded with no
    line and otherwise ignored: it must not fail the webhook (the provider would
    retry it for days).
    """
    raw = _json_safe(raw if raw is not None else {})
    key = _event_key(provider, event_id, raw)
    occurred_at = timestamp or timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                event = DeliveryEvent.objects.create(
                    provider=provider[:40],
                    event_id=key,
                    event_type=event_type[:40],
                    message_id=(message_id or "")[:255],
                    occurred_at=occurred_at,
                    reason=(reason or "")[:5000],
                    raw=raw,
                )
        except IntegrityError:
            return None  # seen before: the provider retried or sent it twice
        line = _line_for_event(message_id, metadata)
        if line is None:
            event.outcome = "ignored: no distribution line has this message id"
        else:
            event.recipient = line
            event.outcome = _apply_event(line, event_type, occurred_at, reason, message_id)
        event.save(update_fields=["recipient", "outcome"])
    return event


def _line_for_event(message_id: str | None, metadata: dict[str, Any] | None) -> Recipient | None:
    queryset = Recipient.objects.select_for_update(of=("self",)).select_related("contact")
    if message_id:
        line = queryset.filter(provider_message_id=str(message_id)).first()
        if line is not None:
            return line
    recipient_id = id_or_none(str((metadata or {}).get(email_channel.METADATA_KEY) or ""))
    if recipient_id:
        # Our own metadata, echoed by the ESP: finds a line whose send was
        # interrupted before its provider id was recorded.
        return queryset.filter(pk=recipient_id).first()
    return None


def _apply_event(
    line: Recipient, event_type: str, at: datetime, reason: str, message_id: str | None
) -> str:
    changed: set[str] = set()
    if event_type in PROOF_OF_SEND and (line.outcome_unknown or line.status in UNSENT):
        # The provider has it, so the interrupted send did happen.
        if not line.provider_message_id and message_id:
            line.provider_message_id = str(message_id)[:255]
            changed.add("provider_message_id")
        if line.outcome_unknown or line.status in UNSENT:
            line.status = RecipientStatus.SENT
            line.error = ""
            line.outcome_unknown = False
            line.sending_started_at = None
            line.sent_at = line.sent_at or at
            changed |= {"status", "error", "outcome_unknown", "sending_started_at", "sent_at"}
    time_field = EVENT_TIME_FIELD.get(event_type)
    if time_field and getattr(line, time_field) is None:
        setattr(line, time_field, at)
        changed.add(time_field)
    new_status = EVENT_STATUS.get(event_type)
    outcome = "recorded"
    if new_status is not None:
        if line.moves_to(new_status):
            old_label = line.get_status_display()
            line.status = new_status
            changed.add("status")
            if event_type in EVENT_WITH_ERROR or new_status == RecipientStatus.OPTED_OUT:
                line.error = (reason or "").strip()[:5000] or _default_reason(event_type)
                changed.add("error")
            outcome = f"moved from {old_label} to {line.get_status_display()}"
        else:
            outcome = f"kept {line.get_status_display()} (a later status than {new_status})"
    if event_type == "bounced":
        suppression_add(
            address=line.to_address, reason=SuppressionReason.HARD_BOUNCE, detail=reason
        )
    elif event_type == "complained":
        suppression_add(address=line.to_address, reason=SuppressionReason.COMPLAINT, detail=reason)
    elif event_type == "unsubscribed" and line.contact is not None:
        contact_set_opt_out(
            contact=line.contact,
            channel="email",
            opted_out=True,
            source="unsubscribed at the email provider",
        )
    if changed:
        line.save(update_fields=[*sorted(changed), "updated_at"])
    return outcome


def _default_reason(event_type: str) -> str:
    return {
        "bounced": "the receiving server refused the address (hard bounce)",
        "soft_bounce": "delivery delayed (soft bounce)",
        "deferred": "delivery delayed (soft bounce)",
        "complained": "the recipient marked the email as spam",
        "rejected": "the email provider refused to send it",
        "failed": "the email provider could not send it",
        "unsubscribed": "the recipient unsubscribed at the email provider",
    }.get(event_type, "")


# --- Survey progress (signals from the surveys app) -----------------------------------


def recipient_survey_progress(*, link, stage: str, response_id: int | None = None) -> bool:
    """Move the link's line to Survey Started / Survey Finished with the link's times.

    `stage` is "started" or "finished". Returns whether a line was found.
    """
    with transaction.atomic():
        line = Recipient.objects.select_for_update(of=("self",)).filter(link_id=link.pk).first()
        if line is None:
            return False
        now = timezone.now()
        changed: set[str] = set()
        started_at = link.started_at or link.opened_at or now
        if line.started_at is None:
            line.started_at = started_at
            changed.add("started_at")
        if stage == "finished" and line.finished_at is None:
            line.finished_at = link.finished_at or now
            changed.add("finished_at")
        if stage == "finished" and line.error.startswith(SMS_TIMED_OUT_NOTE):
            line.error = ""
            changed.add("error")
        if response_id is not None and line.response_id != response_id:
            line.response_id = response_id
            changed.add("response_id")
        new_status = RecipientStatus.FINISHED if stage == "finished" else RecipientStatus.STARTED
        if STATUS_RANK[new_status] > line.rank:
            line.status = new_status
            changed.add("status")
        if line.opened_at is None:
            # Following the link proves the invitation was opened.
            line.opened_at = started_at
            changed.add("opened_at")
        if changed:
            line.save(update_fields=[*sorted(changed), "updated_at"])
    if stage == "finished":
        # A two-way SMS survey answered to the end on the web instead: its conversation
        # must not hold the number (no new SMS survey could start). After the line's
        # transaction, so its lock is not held meanwhile: the timeout job locks a
        # conversation, then its line. A finish by SMS has closed its own conversation
        # before this runs.
        Conversation.objects.filter(recipient_id=line.pk, status=ConversationStatus.OPEN).update(
            status=ConversationStatus.CLOSED,
            closed_at=timezone.now(),
            close_reason="the survey was finished on the web",
        )
    return True


def recipient_opted_out(*, link, source: str = "unsubscribe link") -> None:
    """The respondent used the opt-out link: the line shows it and the contact is opted
    out of the line's channel (email for email invitations)."""
    with transaction.atomic():
        line = (
            Recipient.objects.select_for_update(of=("self",))
            .select_related("contact")
            .filter(link_id=link.pk)
            .first()
        )
        channel = "email"
        if line is not None:
            if line.channel in (DistributionChannel.SMS, DistributionChannel.SMS_SURVEY):
                channel = "sms"
            if line.moves_to(RecipientStatus.OPTED_OUT):
                line.status = RecipientStatus.OPTED_OUT
                line.error = f"opted out with the {source}"
                line.save(update_fields=["status", "error", "updated_at"])
            elif line.status == RecipientStatus.FINISHED:
                line.error = f"opted out with the {source} after finishing the survey"
                line.save(update_fields=["error", "updated_at"])
        contact = line.contact if line is not None and line.contact else None
        if contact is None and link.contact_id:
            contact = Contact.objects.filter(pk=link.contact_id).first()
        if contact is not None:
            contact_set_opt_out(contact=contact, channel=channel, opted_out=True, source=source)
        elif line is not None:
            # The contact was deleted since: the choice is kept all the same.
            opt_out_retain(channel=channel, value=line.to_address, source=source)
