"""Enqueue background jobs so that a worker never sees uncommitted rows."""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from django.db import transaction
from django.utils.module_loading import import_string
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

Job = tuple[str | Callable, tuple, dict]
# Set by collect_jobs(): where enqueue() puts jobs instead of the queue.
_collected: ContextVar[list[Job] | None] = ContextVar("xmflows_collected_jobs", default=None)


@cache
def _broker() -> Broker:
    # One broker per process: get_broker() per call costs a connection check each time.
    return get_broker()


def broker_is_orm() -> bool:
    return bool(Conf.ORM)


def enqueue(func: str | Callable, *args, **kwargs) -> None:
    """Queue `func(*args)` so that it runs only after the current transaction commits.

    Arguments must be ids, never model instances. With the ORM broker the queue row is
    written inside the caller's transaction: it commits, or rolls back, with the rows
    it refers to (a free outbox, PITFALLS.md 4), and costs no extra commit. With Redis
    the job is pushed once the transaction has committed; the sweeper covers the crash
    window between commit and push (PITFALLS.md 1). Synchronous mode (tests) always
    waits for the commit, so a job never runs inside the request's transaction.
    """
    collected = _collected.get()
    if collected is not None:
        # Kept only if the transaction commits, exactly like a queued job.
        transaction.on_commit(lambda: collected.append((func, args, kwargs)))
        return
    if broker_is_orm() and not Conf.SYNC:
        async_task(func, *args, broker=_broker(), **kwargs)
        return
    transaction.on_commit(lambda: async_task(func, *args, **kwargs))


@contextmanager
def collect_jobs() -> Iterator[list[Job]]:
    """Keep the jobs enqueued inside the block (once their transaction commits) in the
    yielded list instead of queueing them; the caller then runs them (run_collected).

    A worker that executes runs uses it for the jobs those runs start (one email send
    per distribution line): queueing each costs more than the job itself (a queue row
    written, locked, read, deleted and its result saved, ~15 ms on SQLite), and the
    worker that created the line can send it at once. Nothing is lost when that worker
    dies before running them: the rows the jobs act on are committed and their
    sweepers re-enqueue them (PITFALLS.md 1). Inside an outer transaction (never the
    case in a worker) jobs are queued as usual, since their commit is not ours to see.
    """
    if transaction.get_connection().in_atomic_block:
        yield []
        return
    jobs: list[Job] = []
    token = _collected.set(jobs)
    try:
        yield jobs
    finally:
        _collected.reset(token)


def run_collected(jobs: list[Job], *, budget_seconds: float) -> int:
    """Run collected jobs here, in order, for at most `budget_seconds`; queue the rest,
    and any job that raises (the broker then retries it as usual). Returns how many ran
    here. The budget keeps the calling job well inside Q_CLUSTER's timeout even when a
    provider is slow: each job is checked against it before it starts."""
    deadline = time.monotonic() + budget_seconds
    ran = 0
    for index, (func, args, kwargs) in enumerate(jobs):
        if time.monotonic() > deadline:
            for rest in jobs[index:]:
                enqueue(rest[0], *rest[1], **rest[2])
            break
        try:
            (import_string(func) if isinstance(func, str) else func)(*args, **kwargs)
            ran += 1
        except Exception:
            logger.exception("job %s%r failed here; queued for the broker to retry", func, args)
            enqueue(func, *args, **kwargs)
    return ran
