"""Receiving Salesforce Outbound Messages: check, store, deduplicate, enqueue, answer."""

import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from config.queueing import enqueue
from xmflows import soap
from xmflows.models import (
    Delivery,
    DeliveryOutcome,
    Event,
    Notification,
    Run,
    RunStatus,
    RunTrigger,
)

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 2000
# The acknowledgement never changes: build it once.
ACK = soap.build_ack()
# A body cut short (truncated delivery, or the excerpt's own cut) can end inside the
# value: without a closing tag, everything after the opening tag is redacted.
_SESSION_ID = re.compile(
    rb"(<(?:[\w.-]+:)?SessionId\b[^>]*(?<!/)>)(.*?)(</(?:[\w.-]+:)?SessionId\s*>|\Z)", re.S
)


@dataclass(frozen=True)
class IntakeResult:
    status: int
    body: bytes
    delivery_id: int | None = None
    run_ids: tuple[int, ...] = ()


def redact_session_id(body: bytes) -> bytes:
    # A SessionId is a live Salesforce API session: never keep it in clear (CONTRACT §4).
    return _SESSION_ID.sub(rb"\1[redacted]\3", body)


def _excerpt(body: bytes) -> str:
    text = redact_session_id(body[: EXCERPT_CHARS * 2]).decode("utf-8", "replace")
    # PostgreSQL text cannot hold NUL: one in the body would stop the refusal being recorded.
    return text[:EXCERPT_CHARS].replace("\x00", "\ufffd")


def _reject(
    *,
    reason: str,
    code: str,
    status: int,
    event: Event | None,
    body: bytes,
    meta: dict,
    organization_id: str = "",
    object_type: str = "",
) -> IntakeResult:
    fault = soap.build_fault(code=code, message=reason)
    delivery_id = None
    try:
        delivery = Delivery.objects.create(
            workflow_id=event.workflow_id if event else None,
            outcome=DeliveryOutcome.REJECTED,
            reason=reason,
            fault_code=f"soapenv:{code}",
            http_status=status,
            body_bytes=meta["body_bytes"],
            remote_addr=meta["remote_addr"],
            user_agent=meta["user_agent"],
            organization_id=organization_id[:18],
            object_type=object_type[:100],
            body_excerpt=_excerpt(body),
        )
        delivery_id = delivery.pk
    except DatabaseError:
        # The fault still goes back; when the database is down there is nothing to record to.
        logger.exception("could not record a rejected delivery (%s)", reason)
    return IntakeResult(status=status, body=fault, delivery_id=delivery_id)


def delivery_receive(
    *,
    token: str,
    body: bytes,
    body_bytes: int,
    remote_addr: str | None,
    user_agent: str = "",
    trigger: str = RunTrigger.SALESFORCE,
) -> IntakeResult:
    """Handle one POST to an event URL and say what to answer.

    `body` may be cut short when `body_bytes` (the declared or read size) exceeds the
    limit: such a message is refused without reading it whole. `trigger` marks the
    runs it creates: the event test button passes its sample through here, exactly
    as the endpoint does, with RunTrigger.TEST.
    """
    meta = {"body_bytes": body_bytes, "remote_addr": remote_addr, "user_agent": user_agent[:300]}
    try:
        event = Event.objects.select_related("workflow").filter(token=token)[:1]
        event = event[0] if event else None
    except DatabaseError:
        logger.exception("database unavailable while looking up an event token")
        return IntakeResult(
            status=500,
            body=soap.build_fault(
                code="Server", message="xmflows could not reach its database; retry later"
            ),
        )
    if event is None:
        return _reject(
            reason="unknown event URL: no workflow listens here",
            code="Client",
            status=404,
            event=None,
            body=body,
            meta=meta,
        )
    limit = settings.XMFLOWS_MAX_MESSAGE_BYTES
    if body_bytes > limit:
        return _reject(
            reason=f"message is {body_bytes} bytes; the limit is {limit} bytes",
            code="Client",
            status=500,
            event=event,
            body=body,
            meta=meta,
        )
    if not event.workflow.enabled:
        return _reject(
            reason="event disabled", code="Client", status=500, event=event, body=body, meta=meta
        )
    try:
        message = soap.parse_outbound_message(body)
    except soap.SoapError as error:
        return _reject(
            reason=error.reason, code="Client", status=500, event=event, body=body, meta=meta
        )
    object_types = sorted({n.object_type for n in message.notifications})
    if event.organization_id and not soap.same_organization(
        message.organization_id, event.organization_id
    ):
        return _reject(
            reason=(
                f"wrong organization: the message comes from {message.organization_id!r}, "
                f"this event accepts only {event.organization_id!r}"
            ),
            code="Client",
            status=500,
            event=event,
            body=body,
            meta=meta,
            organization_id=message.organization_id,
            object_type=",".join(object_types),
        )
    # A notification without an sObject (record deleted before delivery) names no type.
    wrong = [t for t in object_types if t and t.lower() != event.object_name.lower()]
    if wrong:
        return _reject(
            reason=(
                f"wrong object type: the message holds {', '.join(repr(t) for t in wrong)}, "
                f"this event expects {event.object_name!r}"
            ),
            code="Client",
            status=500,
            event=event,
            body=body,
            meta=meta,
            organization_id=message.organization_id,
            object_type=",".join(object_types),
        )
    # An id longer than the column would fail the insert as our own error (a Server
    # fault Salesforce retries for a day); it is bad input. Real ids have 15-18 characters.
    id_limit = Notification._meta.get_field("notification_id").max_length
    for number, notification in enumerate(message.notifications, start=1):
        if len(notification.notification_id) > id_limit:
            return _reject(
                reason=(
                    f"notification {number} has an Id of {len(notification.notification_id)} "
                    f"characters; at most {id_limit} are accepted"
                ),
                code="Client",
                status=500,
                event=event,
                body=body,
                meta=meta,
                organization_id=message.organization_id,
                object_type=",".join(object_types),
            )
    try:
        return _store(event=event, message=message, meta=meta, trigger=trigger)
    except DatabaseError as error:
        logger.exception("could not store an outbound message")
        return _reject(
            reason=f"xmflows could not store the message ({type(error).__name__}); retry later",
            code="Server",
            status=500,
            event=event,
            body=b"",
            meta=meta,
            organization_id=message.organization_id,
        )


def notification_payload(message: soap.OutboundMessage, notification: soap.Notification) -> dict:
    return {
        "object_type": notification.object_type,
        "notification_id": notification.notification_id,
        "record_id": notification.record_id,
        "organization_id": message.organization_id,
        "fields": dict(notification.fields),
    }


def _store(
    *, event: Event, message: soap.OutboundMessage, meta: dict, trigger: str
) -> IntakeResult:
    unique: dict[str, soap.Notification] = {}
    for notification in message.notifications:
        unique.setdefault(notification.notification_id, notification)
    now = timezone.now()
    with transaction.atomic():
        delivery = Delivery.objects.create(
            workflow_id=event.workflow_id,
            outcome=DeliveryOutcome.ACCEPTED,
            notification_count=len(message.notifications),
            body_bytes=meta["body_bytes"],
            remote_addr=meta["remote_addr"],
            user_agent=meta["user_agent"],
            organization_id=message.organization_id[:18],
            object_type=",".join(sorted({n.object_type for n in message.notifications}))[:100],
        )
        # The unique constraint (event, notification_id) decides which notifications are
        # new, also when the same one arrives on two connections at once: the loser's
        # insert is ignored, so it creates no run.
        Notification.objects.bulk_create(
            [
                Notification(
                    event=event,
                    notification_id=n.notification_id,
                    delivery=delivery,
                    record_id=(n.record_id or "")[:40],
                    payload=notification_payload(message, n),
                )
                for n in unique.values()
            ],
            ignore_conflicts=True,
        )
        new = list(Notification.objects.filter(delivery=delivery).values_list("id", "record_id"))
        runs = Run.objects.bulk_create(
            [
                Run(
                    workflow_id=event.workflow_id,
                    notification_id=notification_pk,
                    record_id=record_id,
                    trigger=trigger,
                    status=RunStatus.QUEUED,
                    enqueued_at=now,
                )
                for notification_pk, record_id in new
            ]
        )
        duplicates = len(message.notifications) - len(new)
        if duplicates:
            Delivery.objects.filter(pk=delivery.pk).update(duplicate_count=duplicates)
        run_ids = tuple(run.pk for run in runs)
        enqueue_runs(run_ids)
    return IntakeResult(status=200, body=ACK, delivery_id=delivery.pk, run_ids=run_ids)


def enqueue_runs(run_ids: tuple[int, ...] | list[int]) -> None:
    size = max(1, settings.XMFLOWS_RUNS_PER_JOB)
    for start in range(0, len(run_ids), size):
        enqueue("xmflows.jobs.execute_runs", list(run_ids[start : start + size]))
