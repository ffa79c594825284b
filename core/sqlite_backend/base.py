"""Django's SQLite backend, waiting for the write lock in short steps (and remembering
its placeholder conversions, see CursorWrapper).

With `transaction_mode: IMMEDIATE` every transaction takes SQLite's one write lock
at BEGIN. A connection that finds it held waits through SQLite's busy handler, which
sleeps 1, 2, 5, 10, 15, 20, 25 … ms between tries. Our write transactions hold the
lock for a fraction of a millisecond, so the waiter mostly sleeps while the lock is
free: with two gunicorn workers the machine sat a third idle while the queue of
Salesforce messages grew (bench/ingest.py).

Here BEGIN IMMEDIATE is retried by us, with the busy handler off, after sleeps that
start at 50 microseconds and double up to 2 ms; the whole wait is still bounded by
the connection's busy timeout (the database's `timeout` option), after which the
usual "database is locked" error is raised. Statements inside a transaction never
wait for the lock (the transaction holds it), and writes outside any transaction
keep SQLite's own busy handler.
"""

from __future__ import annotations

import functools
import sqlite3
import time

from django.db.backends.sqlite3 import base

FIRST_WAIT = 0.00005
LONGEST_WAIT = 0.002


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)


@functools.lru_cache(maxsize=1024)
def _qmark(query: str) -> str:
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's cursor, remembering its "%s" to "?" conversions: the regular expression
    ran over every statement again, a quarter of a millisecond for the endpoint's
    100-row inserts. Only the text is cached, never parameters."""

    def convert_query(self, query, *, param_names=None):
        if param_names is None:
            return _qmark(query)
        return super().convert_query(query, param_names=param_names)


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name=None):
        return self.connection.cursor(factory=CursorWrapper)

    def _start_transaction_under_autocommit(self) -> None:
        if self.transaction_mode is None:
            super()._start_transaction_under_autocommit()
            return
        with self.wrap_database_errors:
            self._begin_waiting_in_short_steps(f"BEGIN {self.transaction_mode}")

    def _begin_waiting_in_short_steps(self, begin: str) -> None:
        connection = self.connection
        # The connection's own limit (the `timeout` option, unless changed since).
        (limit_ms,) = connection.execute("PRAGMA busy_timeout").fetchone()
        # Off for the BEGIN only: SQLite's handler would sleep a millisecond or more
        # at the first conflict.
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = None
            wait = FIRST_WAIT
            while True:
                try:
                    connection.execute(begin)
                    return
                except sqlite3.OperationalError as error:
                    if not _is_busy(error):
                        raise
                    now = time.monotonic()
                    deadline = deadline or now + limit_ms / 1000
                    if now >= deadline:
                        raise
                time.sleep(wait)
                wait = min(wait * 2, LONGEST_WAIT)
        finally:
            connection.execute(f"PRAGMA busy_timeout = {int(limit_ms)}")
