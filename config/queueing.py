"""Enqueue background jobs so that a worker never sees uncommitted rows."""

from collections.abc import Callable
from functools import cache

from django.db import transaction
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.tasks import async_task


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
    if broker_is_orm() and not Conf.SYNC:
        async_task(func, *args, broker=_broker(), **kwargs)
        return
    transaction.on_commit(lambda: async_task(func, *args, **kwargs))
