"""Enqueue background jobs so that a worker never sees uncommitted rows."""

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from uuid import uuid4

from django.db import connections, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signals import pre_enqueue
from django_q.signing import SignedPackage
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


def enqueue_many(func: str, args_list: Sequence[tuple]) -> None:
    """enqueue(func, *args) for each tuple of `args_list`, in one statement when the
    ORM broker takes them.

    The Salesforce endpoint queues its runs this way: one multi-row insert of signed
    packages, built exactly as django_q.tasks.async_task builds them (same keys, same
    signing, same pre_enqueue signal), instead of one ORM create per job, which costs
    more than storing the message itself. Every other mode queues job by job.
    """
    if not args_list:
        return
    if _collected.get() is not None or not broker_is_orm() or Conf.SYNC:
        for args in args_list:
            enqueue(func, *args)
        return
    now = timezone.now()
    key = Conf.CLUSTER_NAME  # the ORM broker's queue name (its list_key)
    packages = []
    short = func.rsplit(".", 1)[-1]
    for args in args_list:
        # A name that says what the job is (the queue admin lists it), not a humanhash.
        task = {"id": uuid4().hex, "name": job_name(short, args), "func": func, "args": tuple(args)}
        if Conf.CACHED:
            task["cached"] = Conf.CACHED
        if Conf.ACK_FAILURES:
            task["ack_failure"] = Conf.ACK_FAILURES
        task["kwargs"] = {}
        task["started"] = now
        pre_enqueue.send(sender="django_q", task=task)
        packages.append(SignedPackage.dumps(task))
    connection = connections[Conf.ORM]
    lock = connection.ops.adapt_datetimefield_value(now)
    quote = connection.ops.quote_name
    # Names from the model's metadata, values as parameters.
    columns = ", ".join(quote(name) for name in ("key", "payload", "lock"))
    insert = f"INSERT INTO {quote(OrmQ._meta.db_table)} ({columns}) VALUES "  # noqa: S608
    with connection.cursor() as cursor:
        # Written inside the caller's transaction, as enqueue() does; 300 rows per statement
        # keeps the parameter count far below every database's limit.
        for start in range(0, len(packages), 300):
            chunk = packages[start : start + 300]
            params = [value for package in chunk for value in (key, package, lock)]
            cursor.execute(insert + ", ".join(["(%s, %s, %s)"] * len(chunk)), params)


def job_name(short_func: str, args: tuple) -> str:
    """`execute_runs(20 ids: 101 … 120)` for one list of ids, else `func(args)`; 100
    characters at most (django-q2's Task.name)."""
    if len(args) == 1 and isinstance(args[0], list) and len(args[0]) > 1:
        ids = args[0]
        return f"{short_func}({len(ids)} ids: {ids[0]} … {ids[-1]})"[:100]
    return f"{short_func}{tuple(args)!r}"[:100]


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
