"""Receiving Salesforce Outbound Messages: check, store, deduplicate, enqueue, answer."""

import functools
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.utils import timezone

from config.queueing import enqueue_many
from core.fields import json_parameter
from xmflows import soap
from xmflows.models import (
    Delivery,
    DeliveryOutcome,
    Event,
    Notification,
    Run,
    RunStatus,
    RunTrigger,
    Workflow,
)

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 2000
# How long recording a storage failure waits for SQLite's write lock (seconds).
REJECTION_LOCK_WAIT_SECONDS = 2.0
# The acknowledgement never changes: build it once.
ACK = soap.build_ack()
# A body cut short (truncated delivery, or the excerpt's own cut) can end inside the
# value: without a closing tag, everything after the opening tag is redacted.
_SESSION_ID = re.compile(
    rb"(<(?:[\w.-]+:)?SessionId\b[^>]*(?<!/)>)(.*?)(</(?:[\w.-]+:)?SessionId\s*>|\Z)", re.S
)


@dataclass(frozen=True)
class _Listener:
    """What the endpoint needs to know about the event a token names."""

    id: int
    workflow_id: int
    object_name: str
    organization_id: str
    enabled: bool


@dataclass(frozen=True)
class IntakeResult:
    status: int
    body: bytes
    delivery_id: int | None = None
    run_ids: tuple[int, ...] = ()
    # Why a fault was answered (the faultstring), for the endpoint's own log line.
    reason: str = ""


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
    event: _Listener | None,
    body: bytes,
    meta: dict,
    organization_id: str = "",
    object_type: str = "",
    wait_seconds: float | None = None,
) -> IntakeResult:
    """Record a refused message (when the database lets us) and build its fault.

    `wait_seconds` shortens how long SQLite waits for its write lock: after storing
    already failed on a lock held for the whole busy timeout, waiting that long again
    to record the failure would keep Salesforce waiting twice as long for a fault."""
    fault = soap.build_fault(code=code, message=reason)
    delivery_id = None
    try:
        with _sqlite_lock_wait(wait_seconds):
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
    return IntakeResult(status=status, body=fault, delivery_id=delivery_id, reason=reason)


@contextmanager
def _sqlite_lock_wait(seconds: float | None):
    """Wait at most `seconds` for SQLite's write lock inside the block (no change for
    None, or on PostgreSQL, where writers do not wait for a database-wide lock)."""
    if seconds is None or connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        (usual,) = cursor.fetchone()
        cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {usual}")


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
        event = _listener(token)
    except DatabaseError:
        logger.exception("database unavailable while looking up an event token")
        reason = "xmflows could not reach its database; retry later"
        return IntakeResult(
            status=500, body=soap.build_fault(code="Server", message=reason), reason=reason
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
    if not event.enabled:
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

    def refuse(reason: str) -> IntakeResult:
        # A readable message this event does not take: the sender's to fix (Client),
        # recorded with what the message says of itself.
        return _reject(
            reason=reason,
            code="Client",
            status=500,
            event=event,
            body=body,
            meta=meta,
            organization_id=message.organization_id,
            object_type=",".join(t for t in object_types if t),
        )

    if event.organization_id and not soap.same_organization(
        message.organization_id, event.organization_id
    ):
        return refuse(
            f"wrong organization: the message comes from {message.organization_id!r}, "
            f"this event accepts only {event.organization_id!r}"
        )
    # Salesforce names the type of every sObject, a deleted record's empty one included:
    # a notification that names none cannot be shown to be the event's object.
    untyped = next(
        (number for number, n in enumerate(message.notifications, start=1) if not n.object_type),
        None,
    )
    if untyped is not None:
        return refuse(
            f"notification {untyped} names no object type (its sObject, if any, has no "
            f"xsi:type); this event expects {event.object_name!r}"
        )
    wrong = [t for t in object_types if t.lower() != event.object_name.lower()]
    if wrong:
        return refuse(
            f"wrong object type: the message holds {', '.join(repr(t) for t in wrong)}, "
            f"this event expects {event.object_name!r}"
        )
    # An id longer than the column would fail the insert as our own error (a Server
    # fault Salesforce retries for a day); it is bad input. Real ids have 15-18 characters.
    id_limit = Notification._meta.get_field("notification_id").max_length
    for number, notification in enumerate(message.notifications, start=1):
        if len(notification.notification_id) > id_limit:
            return refuse(
                f"notification {number} has an Id of {len(notification.notification_id)} "
                f"characters; at most {id_limit} are accepted"
            )
    try:
        return _store(event=event, message=message, meta=meta, trigger=trigger)
    except DatabaseError as error:
        logger.exception("could not store an outbound message")
        if isinstance(error, StoredNotSynced):
            reason = str(error)
        else:
            reason = f"xmflows could not store the message ({type(error).__name__}); retry later"
        return _reject(
            reason=reason,
            code="Server",
            status=500,
            event=event,
            body=b"",
            meta=meta,
            organization_id=message.organization_id,
            wait_seconds=REJECTION_LOCK_WAIT_SECONDS,
        )


def notification_payload(message: soap.OutboundMessage, notification: soap.Notification) -> dict:
    return {
        "object_type": notification.object_type,
        "notification_id": notification.notification_id,
        "record_id": notification.record_id,
        "organization_id": message.organization_id,
        "fields": dict(notification.fields),
    }


def _listener(token: str) -> _Listener | None:
    if "\x00" in token or len(token) > Event._meta.get_field("token").max_length:
        # No event has such a token, and PostgreSQL refuses NUL in a text parameter
        # (an error here would answer "retry" to a URL that can never work).
        return None
    # Every message pays for this lookup: one indexed query, no model instances.
    with connection.cursor() as cursor:
        cursor.execute(
            # Table names from the models' metadata; the token is a parameter.
            f"SELECT e.id, e.workflow_id, e.object_name, e.organization_id, w.enabled "  # noqa: S608
            f"FROM {Event._meta.db_table} e JOIN {Workflow._meta.db_table} w "
            f"ON w.id = e.workflow_id WHERE e.token = %s",
            [token],
        )
        row = cursor.fetchone()
    return _Listener(*row[:4], enabled=bool(row[4])) if row else None


# Rows per INSERT statement: 100 notifications (Salesforce's maximum) in one, and far
# below every database's limit on parameters.
_ROWS_PER_INSERT = 100


@functools.lru_cache(maxsize=64)
def _insert_sql(
    vendor: str, table: str, columns: tuple[str, ...], rows: int, ignore: bool, returning: str
) -> str:
    # Built once per shape: `vendor` keys the cache on the quoting rules.
    quote = connection.ops.quote_name
    # Names from the models' metadata, values as parameters.
    head = f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) VALUES "  # noqa: S608
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    tail = (" ON CONFLICT DO NOTHING" if ignore else "") + f" RETURNING {returning}"
    return head + ", ".join([one] * rows) + tail


def _insert_returning(
    cursor, table: str, rows: list[dict], *, returning: str, ignore_conflicts: bool = False
) -> list[tuple]:
    """INSERT rows (dicts of column: value, all with the same columns) in few statements
    and return `returning` for the rows inserted (a row ignored on conflict returns
    nothing). Both SQLite (3.35+) and PostgreSQL support INSERT ... ON CONFLICT DO
    NOTHING RETURNING."""
    if not rows:
        return []
    columns = tuple(rows[0])
    returned: list[tuple] = []
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        cursor.execute(
            _insert_sql(connection.vendor, table, columns, len(chunk), ignore_conflicts, returning),
            [value for row in chunk for value in row.values()],
        )
        returned.extend(cursor.fetchall())
    return returned


def _store(
    *, event: _Listener, message: soap.OutboundMessage, meta: dict, trigger: str
) -> IntakeResult:
    """Store the delivery, its new notifications and their runs, and queue the runs, in
    one transaction.

    Plain SQL rather than the ORM: this is the request Salesforce waits on, and the
    ORM's per-row work (model instances, compiled inserts, a read-back of the new
    notifications) cost more than the database writes themselves (bench/ingest.py).
    The columns are the models' own; every NOT NULL one is given (Django declares no
    database defaults);
    tests/xmflows/test_endpoint.py reads the rows back through the ORM.
    """
    unique: dict[str, soap.Notification] = {}
    for notification in message.notifications:
        unique.setdefault(notification.notification_id, notification)
    # The connection itself, not django.db.connection: each attribute read through
    # that proxy is a thread-local lookup, and this function reads hundreds.
    db = connections[DEFAULT_DB_ALIAS]
    now = db.ops.adapt_datetimefield_value(timezone.now())
    # What OrderedJSONField.get_db_prep_save ends in: on PostgreSQL a `json` parameter
    # (a jsonb one would reach the column with its keys already sorted).
    json_value = functools.partial(json_parameter, connection=db)
    # Encoded before the transaction: on SQLite it holds the database's one write
    # lock from its first statement, and every other writer waits meanwhile.
    payloads = [(n, json_value(notification_payload(message, n))) for n in unique.values()]
    empty_state = json_value({})
    delivery = {
        "received_at": now,
        "workflow_id": event.workflow_id,
        "outcome": DeliveryOutcome.ACCEPTED.value,
        "reason": "",
        "fault_code": "",
        "http_status": 200,
        "notification_count": len(message.notifications),
        "duplicate_count": 0,
        "duplicate_ids": json_value([]),
        "remote_addr": meta["remote_addr"],
        "user_agent": meta["user_agent"],
        "body_bytes": meta["body_bytes"],
        "organization_id": message.organization_id[:18],
        "object_type": ",".join(sorted({n.object_type for n in message.notifications}))[:100],
        "body_excerpt": "",
    }
    with _durable_transaction(db), db.cursor() as cursor:
        ((delivery_id,),) = _insert_returning(
            cursor, Delivery._meta.db_table, [delivery], returning="id"
        )
        notifications = [
            {
                "event_id": event.id,
                "notification_id": n.notification_id,
                "delivery_id": delivery_id,
                "received_at": now,
                "record_id": (n.record_id or "")[:40],
                "payload": payload,
            }
            for n, payload in payloads
        ]
        # The unique constraint (event, notification_id) decides which notifications are
        # new, also when the same one arrives on two connections at once: the loser's
        # insert is ignored, so it returns no row and creates no run.
        new = _insert_returning(
            cursor,
            Notification._meta.db_table,
            notifications,
            returning="id, record_id, notification_id",
            ignore_conflicts=True,
        )
        new.sort()
        runs = [
            {
                "workflow_id": event.workflow_id,
                "notification_id": notification_pk,
                "trigger": str(trigger),
                "status": RunStatus.QUEUED.value,
                "reason": "",
                "record_id": record_id,
                "email": "",
                "phone": "",
                "created_at": now,
                "attempts": 0,
                "enqueued_at": now,
                "state": empty_state,
            }
            for notification_pk, record_id, _ in new
        ]
        run_ids = tuple(
            sorted(
                run_id
                for (run_id,) in _insert_returning(cursor, Run._meta.db_table, runs, returning="id")
            )
        )
        duplicates = len(message.notifications) - len(new)
        if duplicates:
            # Which ones, so "Salesforce sent it again" is answered from the record.
            stored = {notification_id for _, _, notification_id in new}
            again = [n.notification_id for n in message.notifications]
            for notification_id in stored:
                again.remove(notification_id)  # the first of each new one was stored
            Delivery.objects.filter(pk=delivery_id).update(
                duplicate_count=duplicates, duplicate_ids=again
            )
        enqueue_runs(run_ids)
    return IntakeResult(status=200, body=ACK, delivery_id=delivery_id, run_ids=run_ids)


@contextmanager
def _durable_transaction(db):
    """transaction.atomic(), whose commit does not sync under SQLite's write lock: the
    WAL is synced after it, before the caller goes on (to send the Ack).

    With synchronous=FULL every commit waits for an fsync while it holds the
    database's only write lock, so each web process waited for the others' syncs in
    turn (bench/ingest.py). Here the block commits with synchronous=NORMAL (its WAL
    frames written, not synced; the lock released at once), and then this process
    syncs the WAL file itself, outside the lock, while others write. The Ack still
    leaves only once the message is on disk: syncing the file covers every frame
    written before it, this commit's included (SPEC F1).

    Nothing else changes: FULL is back before anything runs on commit, so every
    other commit, and all of the workers' (whose "sending" mark is synced before an
    email leaves), syncs as before; no send can rest on a commit that a power cut
    could take back, since its own synced commit comes after the message's frames in
    the WAL.

    Only on SQLite with synchronous=FULL in WAL mode, outside any transaction (inside
    one, the commit is the caller's); otherwise a plain transaction.atomic()."""
    if (
        db.vendor != "sqlite"
        or settings.SQLITE_SYNCHRONOUS != "full"
        or db.in_atomic_block
        or db.settings_dict["NAME"] in ("", ":memory:")
        or not _in_wal_mode(db)
    ):
        with transaction.atomic():
            yield
        return
    raw = db.connection

    def pragma(statement: str) -> None:
        with db.cursor() as cursor:
            cursor.execute(statement)

    def sync_every_commit_again() -> None:
        # Not when the connection was closed meanwhile (after an error, or by a job
        # run on commit): the next one starts with the settings' FULL.
        if db.connection is raw:
            pragma("PRAGMA synchronous = FULL")

    pragma("PRAGMA synchronous = NORMAL")
    try:
        with transaction.atomic():
            # First of the callbacks: jobs that run on commit (the tests' inline
            # queue) write with FULL again.
            transaction.on_commit(sync_every_commit_again)
            yield
    finally:
        sync_every_commit_again()
    _sync_wal(str(db.settings_dict["NAME"]))


def _in_wal_mode(db) -> bool:
    """Whether the connection's database keeps a WAL (journal_mode=WAL can fail to
    take, on a file system without shared memory): asked once per connection."""
    db.ensure_connection()
    raw = db.connection
    if getattr(db, "_xmflows_wal_of", None) is not raw:
        with db.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            (mode,) = cursor.fetchone()
        db._xmflows_wal_of, db._xmflows_wal = raw, str(mode).lower() == "wal"
    return db._xmflows_wal


class StoredNotSynced(DatabaseError):
    """The message committed, but its WAL could not be synced to disk: no Ack."""


# The WAL file (device, inode) whose directory entry this process has synced: SQLite
# syncs the directory of a new WAL only at its first FULL commit, which the endpoint's
# NORMAL commit is not.
_wal_files_synced: dict[str, tuple[int, int]] = {}


def _sync_wal(database_path: str) -> None:
    path = f"{database_path}-wal"
    try:
        # Opened each time: a WAL file SQLite deleted and made again is a new file.
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            status = os.fstat(descriptor)
        finally:
            os.close(descriptor)
        identity = (status.st_dev, status.st_ino)
        if _wal_files_synced.get(path) != identity:
            directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            _wal_files_synced[path] = identity
    except OSError as error:
        # Committed, not known to be on disk: no Ack. Salesforce sends it again, and
        # the notification, already stored, is then acknowledged as a duplicate.
        raise StoredNotSynced(
            f"the message was stored, but could not be confirmed on disk ({error}); "
            "Salesforce will send it again, and the resend is acknowledged as a duplicate"
        ) from error


def enqueue_runs(run_ids: tuple[int, ...] | list[int]) -> None:
    size = max(1, settings.XMFLOWS_RUNS_PER_JOB)
    enqueue_many(
        "xmflows.jobs.execute_runs",
        [(list(run_ids[start : start + size]),) for start in range(0, len(run_ids), size)],
    )
