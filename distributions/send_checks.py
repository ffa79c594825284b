"""Campaign checks made right before a line is sent, beyond opt-out and suppression.

- An invitation must pass the contact frequency rules (distributions.frequency),
  and its personal link must not have expired while it waited (a long send delay).
- A reminder must still be needed: the respondent has not started (or finished) the
  survey since it was queued, and the link has not expired.
- A thank-you has nothing more to check.

Each check answers a skip reason or None; recipient_send records the reason on the
line (Skipped), so the workflow report names the rule that stopped the send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from distributions.frequency import frequency_skip_reason
from distributions.models import MessageKind, Recipient, RecipientStatus

REMINDER_NOT_STARTED = "not_started"
REMINDER_NOT_FINISHED = "not_finished"
REMINDER_WHEN = (REMINDER_NOT_STARTED, REMINDER_NOT_FINISHED)
# An invitation in one of these states is not reminded: it never reached the person.
NOT_REMINDABLE = frozenset(
    {
        RecipientStatus.SKIPPED,
        RecipientStatus.OPTED_OUT,
        RecipientStatus.FAILED,
        RecipientStatus.HARD_BOUNCE,
        RecipientStatus.COMPLAINT,
    }
)


def reminder_skip_reason(
    invitation: Recipient, *, when: str, link_expires_at: datetime | None, now: datetime
) -> str | None:
    """Why the invitation line no longer needs its reminder, or None when it does."""
    if invitation.finished_at is not None:
        return f"the survey was already finished on {invitation.finished_at:%Y-%m-%d}"
    if when == REMINDER_NOT_STARTED and invitation.started_at is not None:
        return f"the survey was already started on {invitation.started_at:%Y-%m-%d}"
    if link_expires_at is not None and link_expires_at <= now:
        return f"the survey link expired on {link_expires_at:%Y-%m-%d}"
    if invitation.status in NOT_REMINDABLE:
        return f"the invitation was not delivered ({invitation.get_status_display()})"
    return None


def _follow_up_settings(line: Recipient) -> dict[str, Any]:
    content = getattr(line, "message", None)
    snapshot = (content.snapshot if content is not None else None) or {}
    settings = snapshot.get("follow_up")
    return settings if isinstance(settings, dict) else {}


def send_time_skip_reason(line: Recipient, *, now: datetime) -> str | None:
    """The campaign reason not to send `line` now, or None. Runs inside recipient_send's
    transaction, with the line locked (and its link and distribution read with it)."""
    if line.kind == MessageKind.INVITATION:
        expires_at = line.link.expires_at if line.link_id is not None else None
        if expires_at is not None and expires_at <= now:
            # A send delayed past its link's expiry would invite to a dead page.
            return f"the survey link expired on {expires_at:%Y-%m-%d %H:%M} UTC before the send"
        return frequency_skip_reason(
            contact_id=line.contact_id,
            directory_id=line.contact.directory_id if line.contact is not None else None,
            mailing_list_id=line.distribution.mailing_list_id,
            survey_id=line.survey_id,
            now=now,
            exclude_line_id=line.pk,
        )
    if line.kind == MessageKind.REMINDER and line.parent_id is not None:
        invitation = Recipient.objects.select_related("link").filter(pk=line.parent_id).first()
        if invitation is None:
            return "the invitation this reminder follows up no longer exists"
        when = _follow_up_settings(line).get("when") or REMINDER_NOT_STARTED
        expires_at = invitation.link.expires_at if invitation.link is not None else None
        reason = reminder_skip_reason(invitation, when=when, link_expires_at=expires_at, now=now)
        return f"reminder not needed: {reason}" if reason else None
    return None
