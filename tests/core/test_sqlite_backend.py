"""The SQLite backend (core.sqlite_backend): BEGIN IMMEDIATE retried in short steps while
another connection holds the write lock, bounded by the busy timeout; placeholder
conversions remembered."""

import os
import sqlite3
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction

from core.sqlite_backend import base as backend
from xmflows.models import Delivery

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="SQLite's write lock; PostgreSQL has none"
    ),
]


@pytest.fixture
def other_writer():
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def _busy_timeout() -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        return cursor.fetchone()[0]


def test_a_transaction_waits_in_short_steps_until_the_lock_is_free(monkeypatch, other_writer):
    connection.ensure_connection()
    usual = _busy_timeout()
    other_writer.execute("BEGIN IMMEDIATE")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            other_writer.execute("COMMIT")  # the other writer is done

    monkeypatch.setattr(backend.time, "sleep", sleep)
    with transaction.atomic():
        Delivery.objects.create(outcome="accepted", http_status=200)
    # Microseconds, doubling, not SQLite's 1, 2, 5 … ms sleeps.
    assert waits == [0.00005, 0.0001, 0.0002, 0.0004]
    assert Delivery.objects.count() == 1
    # SQLite's own wait is back for statements outside transactions.
    assert _busy_timeout() == usual


def test_the_wait_is_bounded_by_the_busy_timeout(monkeypatch, other_writer):
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 20")
    other_writer.execute("BEGIN IMMEDIATE")
    try:
        with (
            pytest.raises(OperationalError, match="database is locked"),
            transaction.atomic(),
        ):
            Delivery.objects.create(outcome="accepted", http_status=200)
        assert _busy_timeout() == 20
    finally:
        other_writer.execute("ROLLBACK")
        usual = int(connection.settings_dict["OPTIONS"]["timeout"] * 1000)
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {usual}")
    assert not Delivery.objects.exists()


def test_placeholder_conversions_are_remembered_and_right():
    backend._qmark.cache_clear()
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute("SELECT %s || '%%'", ["50"])
            assert cursor.fetchone() == ("50%",)
    info = backend._qmark.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_connections_use_wal_and_checkpoint_every_64_mib():
    # config/settings.py: WAL so readers run beside the writer, and a checkpoint only
    # once the WAL holds 16,384 pages (bench/ingest.py measured the default 1,000 as a
    # tenth of the endpoint's CPU), with the file truncated back to 128 MiB after it.
    with connection.cursor() as cursor:
        values = {}
        for pragma in (
            "journal_mode",
            "synchronous",
            "wal_autocheckpoint",
            "journal_size_limit",
            "page_size",
        ):
            cursor.execute(f"PRAGMA {pragma}")
            values[pragma] = cursor.fetchone()[0]
    page_size = values.pop("page_size")
    assert values == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL: an acknowledged message survives a power cut
        "wal_autocheckpoint": 16384,
        "journal_size_limit": 128 * 1024 * 1024,
    }
    # The WAL a normal checkpoint cycle fills (a 32-byte file header, then frames of
    # a 24-byte header and one page) must fit under the limit, or every cycle
    # truncates and regrows the file: p99 latency tripled (bench/ingest.py (a)).
    cycle_bytes = 32 + values["wal_autocheckpoint"] * (24 + page_size)
    assert cycle_bytes < values["journal_size_limit"]


def _settings_in_a_new_process(value: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XMFLOWS_SQLITE_SYNCHRONOUS": value}
    env.pop("DATABASE_URL", None)  # the SQLite default
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS']['init_command'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_normal_sync_is_an_opt_in_and_a_typo_is_refused_at_start():
    chosen = _settings_in_a_new_process("normal")
    assert chosen.returncode == 0, chosen.stderr
    assert "PRAGMA synchronous=NORMAL;" in chosen.stdout
    typo = _settings_in_a_new_process("fast")
    assert typo.returncode != 0
    assert "XMFLOWS_SQLITE_SYNCHRONOUS='fast': use full (the default" in typo.stderr
