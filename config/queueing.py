"""Enqueue background jobs so that a worker never sees uncommitted rows."""

from collections.abc import Callable

from django.db import transaction
from django_q.conf import Conf
from django_q.tasks import async_task


def enqueue(func: str | Callable, *args, **kwargs) -> None:
    """Queue `func(*args)` once the current transaction commits.

    Arguments must be ids, never model instances. With the ORM broker the queue row
    could be written inside the transaction (a free outbox), but doing the same thing
    for both brokers keeps one code path; the sweeper covers the crash window between
    commit and enqueue (PITFALLS.md 1 and 4).
    """
    transaction.on_commit(lambda: async_task(func, *args, **kwargs))


def broker_is_orm() -> bool:
    return bool(Conf.ORM)
