"""Writes and checks of the SMS channels: refusals, quiet hours, opt-out by number, Twilio
status callbacks and rejected webhooks.

distributions.services sends SMS lines exactly as it sends emails (lock, checks,
"sending" committed before the provider call, PITFALLS.md 8) and calls in here for
what only texts have: the number's opt-out, quiet hours, the one open two-way survey
per number, and Twilio's error 21610.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from contacts.models import Contact, Directory
from contacts.normalize import normalize_phone
from contacts.services import contact_set_opt_out
from core.job_memo import memoized
from core.params import id_or_none
from core.piped_text import RenderContext, render
from distributions import quiet_hours as quiet_hours_rules
from distributions.channels import SendError
from distributions.channels.email import METADATA_KEY
from distributions.channels.sms_twilio import OPTED_OUT_CODE, describe_code
from distributions.models import (
    UNSENT,
    Conversation,
    ConversationStatus,
    DeliveryEvent,
    DistributionChannel,
    Recipient,
    RecipientStatus,
)
from distributions.services import (
    SMS_TIMED_OUT_NOTE,
    Refusal,
    delivery_event_record,
    duplicate_find,
)
from distributions.sms_text import Segments, segments

logger = logging.getLogger(__name__)

SMS_CHANNELS = (DistributionChannel.SMS, DistributionChannel.SMS_SURVEY)
OPTED_OUT_SOURCE = f"Twilio error {OPTED_OUT_CODE} (the number replied STOP)"
TWILIO = "twilio"
# Twilio's message statuses in our delivery-event vocabulary (services.EVENT_STATUS):
# "queued" and "sent" prove the message left us; the line is Sent already.
TWILIO_EVENT_TYPES: dict[str, str] = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
    "read": "opened",
}


def is_sms(line: Recipient) -> bool:
    return line.channel in SMS_CHANNELS


def opens_conversation(line: Recipient) -> bool:
    """An sms_survey invitation line starts a conversation; its reminders and
    thank-yous (same channel) are plain texts."""
    kind = getattr(line, "kind", "invitation") or "invitation"
    return line.channel == DistributionChannel.SMS_SURVEY and kind == "invitation"


def phone_normalize(value: str) -> str:
    """A number as Twilio reports it, in our stored form (E.164); kept as given when it
    is not a phone number (a short code, a WhatsApp address)."""
    text = (value or "").strip()
    try:
        return normalize_phone(text, "US") or text
    except ValueError:
        return text


# --- Refusals -----------------------------------------------------------------------------


def _day(moment: datetime | None) -> str:
    return f" on {moment:%Y-%m-%d}" if moment else ""


def number_opted_out(*, phone: str, contact: Contact | None = None) -> str | None:
    """Why texts to this number are refused, or None: the contact opted out of SMS, or
    any contact with this number did (STOP comes from the phone, not from one
    directory's record of it)."""
    if contact is not None and contact.sms_opted_out:
        source = f" ({contact.sms_opted_out_source})" if contact.sms_opted_out_source else ""
        return f"contact opted out of SMS{_day(contact.sms_opted_out_at)}{source}"
    if not phone:
        return None
    other = (
        Contact.objects.filter(phone=phone, sms_opted_out=True)
        .only("pk", "sms_opted_out_at", "sms_opted_out_source")
        .order_by("-sms_opted_out_at")
        .first()
    )
    if other is None:
        return None
    source = f", {other.sms_opted_out_source}" if other.sms_opted_out_source else ""
    when = _day(other.sms_opted_out_at)
    return f"this number opted out of SMS{when} (contact {other.pk}{source})"


def conversation_timeout() -> timedelta:
    return timedelta(hours=float(settings.XMFLOWS_SMS_CONVERSATION_TIMEOUT_HOURS))


def conversation_is_stale(conversation: Conversation, now: datetime) -> bool:
    return conversation.last_activity_at < now - conversation_timeout()


def open_conversation_for(
    *, phone: str, exclude_recipient_id: int | None = None, now: datetime | None = None
) -> Conversation | None:
    """The number's open two-way survey, unless it has already timed out (then it is
    closed here: the periodic job may not have run yet)."""
    now = now or timezone.now()
    queryset = Conversation.objects.filter(phone=phone, status=ConversationStatus.OPEN)
    if exclude_recipient_id is not None:
        queryset = queryset.exclude(recipient_id=exclude_recipient_id)
    conversation = queryset.select_related("recipient").first()
    if conversation is None:
        return None
    line = conversation.recipient
    if line.status in (RecipientStatus.FAILED, RecipientStatus.SKIPPED, RecipientStatus.OPTED_OUT):
        conversation_close(
            conversation, ConversationStatus.FAILED, f"the line is {line.get_status_display()}"
        )
        return None
    if line.status not in UNSENT and conversation_is_stale(conversation, now):
        conversation_time_out(conversation)
        return None
    return conversation


def timeout_reason() -> str:
    hours = float(settings.XMFLOWS_SMS_CONVERSATION_TIMEOUT_HOURS)
    shown = int(hours) if hours.is_integer() else hours
    return f"no reply for {shown} hours"


# Line statuses of a text that reached the person, who has not finished the survey.
AWAITING_ANSWERS = (
    RecipientStatus.SENT,
    RecipientStatus.DELIVERED,
    RecipientStatus.OPENED,
    RecipientStatus.STARTED,
)


def conversation_time_out(conversation: Conversation) -> bool:
    """Close a silent conversation as timed out, and say so on its line."""
    closed = conversation_close(conversation, ConversationStatus.TIMED_OUT, timeout_reason())
    if closed:
        lines_note_time_out([conversation.recipient_id])
    return closed


def lines_note_time_out(recipient_ids: list[int]) -> None:
    """The line of a timed-out conversation keeps its status (Sent, or Survey Started
    when some answers came) and says in its error why nothing more will come."""
    # Only on lines that reached the person and are still waiting for answers: a
    # failed, skipped or bounced line keeps the reason it already shows.
    lines = Recipient.objects.filter(pk__in=recipient_ids, status__in=AWAITING_ANSWERS)
    lines.update(error=f"{SMS_TIMED_OUT_NOTE}: {timeout_reason()}", updated_at=timezone.now())


def conversation_close(conversation: Conversation, status: str, reason: str) -> bool:
    """Close an open conversation; False when it was already closed (by a concurrent
    reply, the timeout job or a STOP)."""
    now = timezone.now()
    closed = Conversation.objects.filter(pk=conversation.pk, status=ConversationStatus.OPEN).update(
        status=status, closed_at=now, close_reason=reason[:300]
    )
    if closed:
        conversation.status, conversation.closed_at = status, now
        conversation.close_reason = reason[:300]
    return bool(closed)


def conversation_conflict_reason(conversation: Conversation) -> str:
    return (
        "a two-way SMS survey is already open with this number "
        f"(distribution {conversation.recipient.distribution_id})"
    )


def sms_refusal(
    *,
    contact: Contact | None,
    phone: str,
    channel: str,
    message_hash: str = "",
    opens_conversation: bool = False,
    exclude_recipient_id: int | None = None,
) -> Refusal | None:
    """Why this text must not go out, or None. Checked when the line is created and
    again (without the duplicate rule) right before sending."""
    opted_out = number_opted_out(phone=phone, contact=contact)
    if opted_out:
        return Refusal(RecipientStatus.OPTED_OUT, opted_out)
    if message_hash:
        duplicate = duplicate_find(message_hash=message_hash)
        if duplicate is not None:
            return Refusal(
                RecipientStatus.SKIPPED,
                "the same message was sent to this number within 12 hours "
                f"(distribution {duplicate.distribution_id})",
            )
    if opens_conversation:
        conversation = open_conversation_for(phone=phone, exclude_recipient_id=exclude_recipient_id)
        if conversation is not None:
            return Refusal(RecipientStatus.SKIPPED, conversation_conflict_reason(conversation))
    return None


def line_refusal(line: Recipient) -> Refusal | None:
    """The send-time refusal of an SMS line (recipient_send)."""
    return sms_refusal(
        contact=line.contact,
        phone=line.to_address,
        channel=line.channel,
        opens_conversation=opens_conversation(line),
        exclude_recipient_id=line.pk,
    )


# --- Text ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsText:
    text: str
    warnings: tuple[str, ...]
    segments: Segments


def render_sms_text(template: str, context: RenderContext) -> SmsText:
    """An SMS text rendered with piped text in plain mode (links as plain URLs), with
    its segment count and a warning beyond XMFLOWS_SMS_MAX_SEGMENTS."""
    rendered = render(template or "", context)
    text = rendered.text.strip()
    counted = segments(text)
    warnings = list(rendered.warnings)
    limit = int(settings.XMFLOWS_SMS_MAX_SEGMENTS)
    if counted.count > limit:
        warnings.append(
            f"the SMS text is {counted.count} segments ({counted.characters} characters, "
            f"{counted.encoding}), more than the {limit} set by XMFLOWS_SMS_MAX_SEGMENTS: "
            "it is sent split, and each segment is charged"
        )
    return SmsText(text=text, warnings=tuple(dict.fromkeys(warnings)), segments=counted)


# --- Quiet hours --------------------------------------------------------------------------


def quiet_hours_for(contact: Contact | None) -> quiet_hours_rules.QuietHours | None:
    """The contact's directory's quiet hours, in the contact's time zone when known,
    else the directory's; None when the directory has none."""
    if contact is None:
        return None
    # A settings row: read once per job (the invitation and its send both ask).
    directory = (
        contact.directory
        if Contact.directory.is_cached(contact)
        else memoized(
            ("directory", contact.directory_id),
            Directory.objects.filter(pk=contact.directory_id).first,
        )
    )
    start = getattr(directory, "quiet_hours_start", None)
    end = getattr(directory, "quiet_hours_end", None)
    if start is None or end is None or start == end:
        return None
    zone = quiet_hours_rules.resolve_time_zone(contact.time_zone, directory.default_time_zone)
    return quiet_hours_rules.QuietHours(start=start, end=end, time_zone=zone)


def quiet_hours_note(window: quiet_hours_rules.QuietHours, until: datetime) -> str:
    return (
        f"deferred by quiet hours ({window.describe()}) "
        f"to {until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    )


def quiet_hours_deferral(
    *, contact: Contact | None, planned: datetime
) -> tuple[datetime, str] | None:
    """(the end of the window, why) when `planned` falls inside the contact's quiet hours."""
    window = quiet_hours_for(contact)
    until = quiet_hours_rules.next_allowed(planned, window)
    if window is None or until == planned:
        return None
    return until, quiet_hours_note(window, until)


def quiet_hours_hold(line: Recipient, now: datetime) -> str | None:
    """A line (email or text) due inside its contact's quiet hours becomes Scheduled for
    their end, under its lock (the sweeper sends it then); None when it may go now."""
    deferral = quiet_hours_deferral(contact=line.contact, planned=now)
    if deferral is None:
        return None
    until, note = deferral
    line.status = RecipientStatus.SCHEDULED
    line.scheduled_for = until
    line.enqueued_at = None
    line.error = note
    line.save(update_fields=["status", "scheduled_for", "enqueued_at", "error", "updated_at"])
    return "deferred by quiet hours"


def sms_hold(line: Recipient, now: datetime) -> str | None:
    """The last step before an SMS line is marked "sending", under its lock (after
    quiet_hours_hold, which every channel goes through).

    Returns what happened when it must not be sent now: refused because another
    two-way survey holds the number. Otherwise None, having opened the
    line's conversation (two-way surveys) so a concurrent send to the same number sees
    it (the partial unique constraint decides a race).
    """
    if opens_conversation(line):
        from distributions.sms_conversations import conversation_open

        conversation = conversation_open(line=line, now=now)
        if conversation is None:
            other = open_conversation_for(phone=line.to_address, exclude_recipient_id=line.pk)
            reason = (
                conversation_conflict_reason(other)
                if other is not None
                else "a two-way SMS survey is already open with this number"
            )
            line.status = RecipientStatus.SKIPPED
            line.error = reason
            line.next_attempt_at = None
            line.save(update_fields=["status", "error", "next_attempt_at", "updated_at"])
            return "skipped"
    return None


def sms_after_failure(line: Recipient, error: SendError, outcome: str) -> None:
    """What a failed SMS send means beyond the line: 21610 opts the number out; a
    two-way survey whose opening failed for good has no conversation."""
    if getattr(error, "opted_out", False):
        phone_opt_out(
            phone=line.to_address,
            source=OPTED_OUT_SOURCE,
        )
    if outcome == "failed" and opens_conversation(line):
        conversation = Conversation.objects.filter(recipient_id=line.pk).first()
        if conversation is not None:
            conversation_close(
                conversation, ConversationStatus.FAILED, f"the opening was not sent: {error}"
            )


# --- Opt-out by number --------------------------------------------------------------------


def contacts_with_phone(phone: str):
    """Every contact with this E.164 number, in every directory."""
    if not phone:
        return Contact.objects.none()
    return Contact.objects.filter(phone=phone).order_by("pk")


def phone_opt_out(*, phone: str, source: str) -> int:
    """Opt every contact with this number out of SMS; returns how many changed."""
    changed = 0
    for contact in contacts_with_phone(phone).filter(sms_opted_out=False):
        changed += contact_set_opt_out(
            contact=contact, channel="sms", opted_out=True, source=source
        )
    return changed


def phone_opt_in(*, phone: str, source: str) -> int:
    """Clear the SMS opt-out of every contact with this number; returns how many changed."""
    changed = 0
    for contact in contacts_with_phone(phone).filter(sms_opted_out=True):
        changed += contact_set_opt_out(
            contact=contact, channel="sms", opted_out=False, source=source
        )
    return changed


# --- Twilio webhooks ----------------------------------------------------------------------


def twilio_status_record(*, params: Mapping[str, str], line_id: str | None) -> DeliveryEvent | None:
    """Record one Twilio status callback once (MessageSid + MessageStatus) and move its
    line forward only (services.delivery_event_record). Returns None for a duplicate."""
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    event_type = TWILIO_EVENT_TYPES.get(status, status or "unknown")
    code = (params.get("ErrorCode") or "").strip()
    reason = ""
    if event_type == "failed":
        reason = f"Twilio reported the message {status}"
        if code:
            reason = f"{reason}: {describe_code(code)}"
    elif code:
        reason = describe_code(code)
    line = str(line_id) if id_or_none(str(line_id or "")) else None
    event = delivery_event_record(
        provider=TWILIO,
        event_id=f"{sid}:{status}" if sid and status else None,
        message_id=sid,
        event_type=event_type,
        timestamp=None,
        reason=reason,
        raw=dict(params),
        metadata={METADATA_KEY: line} if line else None,
    )
    if event is not None and code == str(OPTED_OUT_CODE):
        phone = phone_normalize(params.get("To") or "")
        if not phone and event.recipient_id:
            phone = Recipient.objects.values_list("to_address", flat=True).get(
                pk=event.recipient_id
            )
        phone_opt_out(phone=phone, source=OPTED_OUT_SOURCE)
    return event


def webhook_rejection_record(
    *,
    webhook: str,
    reason: str,
    url: str,
    remote_addr: str,
    params: Mapping[str, Any],
    provider: str = TWILIO,
    status: int = 403,
) -> DeliveryEvent:
    """A refused provider webhook (Twilio's bad or missing signature, an email webhook
    of a provider we do not use), kept as a delivery event of type "rejected" so admins
    see forged or misconfigured calls."""
    kept = {str(key)[:100]: str(value)[:300] for key, value in list(params.items())[:40]}
    return DeliveryEvent.objects.create(
        provider=provider[:40],
        # Unique per refusal: a forged request is recorded each time it comes.
        event_id=f"rejected:{uuid.uuid4().hex}",
        event_type="rejected",
        message_id=str(params.get("MessageSid") or "")[:255],
        occurred_at=timezone.now(),
        reason=reason[:5000],
        outcome=f"rejected with HTTP {status} ({webhook} webhook)",
        raw={"webhook": webhook, "url": url, "remote_addr": remote_addr, "params": kept},
    )
