"""django-q2 entry points of distributions (jobs, not workflow tasks); each is safe to run twice."""

import logging

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
