"""django-q2 entry points of distributions (jobs, not workflow tasks); each is safe to run twice."""

import logging

from distributions import campaign
from distributions.services import recipient_send, recipients_sweep

logger = logging.getLogger(__name__)


def send_recipient(recipient_id: int) -> str:
    """Send one distribution line unless it is already sent, settled or not due."""
    outcome = recipient_send(recipient_id=recipient_id)
    logger.info("distribution line %s: %s", recipient_id, outcome)
    return outcome


def sweep_due() -> int:
    """Every minute: queue scheduled sends that are due, retries whose back-off elapsed,
    and lines whose job was lost or whose worker stopped mid-send (PITFALLS.md 1, 2)."""
    return recipients_sweep()


def send_due_reminders() -> int:
    """Every few minutes: create and queue the reminders that are due (the state is the
    invitation lines' reminder_due_at, so nothing is lost when the queue is)."""
    return campaign.reminders_sweep()


def create_thank_you(link_id: int) -> str:
    """After a respondent finished: create and queue the thank-you, once."""
    outcome = campaign.thank_you_create(link_id=link_id)
    logger.info("thank-you for link %s: %s", link_id, outcome)
    return outcome


def expire_sms_conversations() -> int:
    """Every few minutes: close two-way SMS surveys with no reply for
    XMFLOWS_SMS_CONVERSATION_TIMEOUT_HOURS (an inbound reply checks it too)."""
    from distributions.sms_conversations import conversations_expire

    return conversations_expire()
