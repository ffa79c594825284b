"""The database unavailable during a POST: a SOAP Server fault with HTTP 500, never an Ack.

Salesforce retries an unacknowledged message for 24 hours, so a refusal loses
nothing, while an Ack for a message that was not stored would lose it for good.
Each outage here is produced by the real driver, not by patching our code:

- unreachable: the connection cannot be opened (SQLite: the file's directory is
  gone; PostgreSQL: nothing listens on the port), so even the event lookup fails;
- busy: another connection holds the lock the storing transaction needs, longer
  than this connection will wait (SQLite: the write lock against a short busy
  timeout; PostgreSQL: an ACCESS EXCLUSIVE table lock against a short lock_timeout);
- killed (PostgreSQL only): the server ends the connection between the first and
  the second statement of the storing transaction (pg_terminate_backend).

When the database is back, Salesforce's redelivery is acknowledged and processed
once (one run per notification, one email per person), and a further redelivery
is only counted as a duplicate.
"""

import sqlite3

import pytest
from django.db import connection
from lxml import etree

from tests.conftest import using_postgres
from tests.figures import record
from tests.reliability.support import (
    demo_address,
    demo_notification,
    demo_path,
    message,
    outbox_per_address,
    run_statuses,
    seed_demo,
)
from xmflows.models import Delivery, Notification, Run
from xmflows.soap import SOAPENV_NS

pytestmark = pytest.mark.django_db(transaction=True)

NOTIFICATIONS = 5
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"


def post(client, path: str, body: bytes):
    return client.post(path, body, content_type=SOAP_CONTENT_TYPE, HTTP_SOAPACTION='""')


def assert_server_fault(response) -> str:
    assert response.status_code == 500, response.content[:300]
    assert response["Content-Type"] == SOAP_CONTENT_TYPE
    assert b"Ack" not in response.content
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAPENV_NS}}}Body/{{{SOAPENV_NS}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soapenv:Server"
    faultstring = fault.findtext("faultstring")
    assert "retry later" in faultstring
    return faultstring


def assert_redelivery_processed_once(client, path: str, body: bytes, prefix: str) -> None:
    response = post(client, path, body)
    assert response.status_code == 200, response.content[:300]
    assert b"<Ack>true</Ack>" in response.content
    assert run_statuses() == {"succeeded": NOTIFICATIONS}
    sent = outbox_per_address()
    assert sent == {demo_address(n, prefix): 1 for n in range(NOTIFICATIONS)}
    # And once more, as Salesforce may: acknowledged, counted, not run again.
    again = post(client, path, body)
    assert b"<Ack>true</Ack>" in again.content
    assert Run.objects.count() == NOTIFICATIONS
    assert Delivery.objects.filter(outcome="accepted").order_by("-id")[0].duplicate_count == (
        NOTIFICATIONS
    )
    assert sum(outbox_per_address().values()) == NOTIFICATIONS


@pytest.fixture
def demo():
    return seed_demo()


def batch(prefix: str) -> bytes:
    return message([demo_notification(n, prefix=prefix) for n in range(NOTIFICATIONS)])


def test_unreachable_database_gets_a_server_fault_then_the_redelivery_runs_once(
    client, demo, monkeypatch
):
    body = batch("unreachable")
    with monkeypatch.context() as outage:
        connection.close()
        if connection.vendor == "sqlite":
            outage.setitem(connection.settings_dict, "NAME", "/nonexistent-dir/xmflows.sqlite3")
        else:
            outage.setitem(connection.settings_dict, "PORT", "1")  # nothing listens there
        faultstring = assert_server_fault(post(client, demo_path(demo), body))
        connection.close()
    assert "could not reach its database" in faultstring
    # Nothing half-stored: there was nowhere to store it.
    assert not Notification.objects.exists()
    assert not Delivery.objects.exists()
    assert_redelivery_processed_once(client, demo_path(demo), body, "unreachable")
    record("database unavailable during a POST", faults=1, acked_while_down=0, lost=0)


@pytest.fixture
def hold_the_lock(monkeypatch):
    """A context manager: while inside, another connection holds the lock that storing
    a message needs, and this connection gives up waiting for it after 0.3 s."""
    from contextlib import contextmanager

    @contextmanager
    def held():
        if connection.vendor == "sqlite":
            other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # the one write lock of the database file
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA busy_timeout = 300")
            try:
                yield
            finally:
                other.execute("ROLLBACK")
                other.close()
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA busy_timeout = 30000")
            return
        import psycopg

        other = psycopg.connect(_postgres_dsn())
        other.execute("LOCK TABLE xmflows_notification IN ACCESS EXCLUSIVE MODE")

        def short_lock_timeout(execute, sql, params, many, context):
            if sql.startswith('INSERT INTO "xmflows_notification"'):
                context["cursor"].cursor.execute("SET LOCAL lock_timeout = '300ms'")
            return execute(sql, params, many, context)

        try:
            with connection.execute_wrapper(short_lock_timeout):
                yield
        finally:
            other.rollback()
            other.close()

    return held


def _postgres_dsn() -> str:
    values = connection.settings_dict
    parts = {
        "dbname": values["NAME"],
        "user": values.get("USER") or "",
        "password": values.get("PASSWORD") or "",
        "host": values.get("HOST") or "",
        "port": str(values.get("PORT") or ""),
    }
    return " ".join(f"{key}={value}" for key, value in parts.items() if value)


def test_database_too_busy_to_store_gets_a_server_fault_then_the_redelivery_runs_once(
    client, demo, hold_the_lock
):
    body = batch("busy")
    with hold_the_lock():
        faultstring = assert_server_fault(post(client, demo_path(demo), body))
    assert "could not store the message (OperationalError)" in faultstring
    assert not Notification.objects.exists()
    assert not Run.objects.exists()
    if connection.vendor == "postgresql":
        # Only the table was locked: the refusal itself was recorded for the admin.
        (refused,) = Delivery.objects.all()
        assert (refused.outcome, refused.http_status) == ("rejected", 500)
    assert_redelivery_processed_once(client, demo_path(demo), body, "busy")
    record("database unavailable during a POST", faults=1, acked_while_down=0, lost=0)


@pytest.mark.skipif(not using_postgres(), reason="needs a database server to kill the session")
def test_connection_killed_mid_transaction_gets_a_server_fault_then_the_redelivery_runs_once(
    client, demo
):
    import psycopg

    body = batch("killed")
    killed: list[int] = []

    def kill_the_session(execute, sql, params, many, context):
        # The Delivery row is the storing transaction's first statement: let it run,
        # then the server ends the session before the notifications are written.
        result = execute(sql, params, many, context)
        if sql.startswith('INSERT INTO "xmflows_delivery"') and not killed:
            pid = context["connection"].connection.info.backend_pid
            with psycopg.connect(_postgres_dsn(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            killed.append(pid)
        return result

    with connection.execute_wrapper(kill_the_session):
        faultstring = assert_server_fault(post(client, demo_path(demo), body))
    assert killed
    connection.close()
    assert "could not store the message" in faultstring
    # The Delivery insert that did run was rolled back with the dead session.
    assert not Delivery.objects.filter(outcome="accepted").exists()
    assert not Notification.objects.exists()
    assert_redelivery_processed_once(client, demo_path(demo), body, "killed")
    record("database unavailable during a POST", faults=1, acked_while_down=0, lost=0)
