"""A redelivery storm: every notification POSTed three times, concurrently, in shuffled order.

Salesforce delivers at least once and retries for 24 hours, so after an outage the
same notifications arrive again, from several connections at once, in other batches.
Whatever the interleaving, the demo workflow (save the contact, email the survey)
must run exactly once per notification and email each person exactly once.
"""

import random
import time

import pytest
from django.db import connection

from distributions.models import Recipient
from tests.figures import record
from tests.reliability.support import (
    demo_address,
    demo_notification,
    demo_path,
    line_statuses,
    message,
    outbox_per_address,
    post_all,
    run_statuses,
    seed_demo,
)
from tests.reliability.workers import wait_until
from xmflows.models import Delivery, Notification, Run

pytestmark = pytest.mark.django_db(transaction=True)

COPIES = 3


def storm_messages(numbers: list[int], *, seed: int, largest: int) -> list[bytes]:
    """Each notification in COPIES messages; every copy batches them differently (1 to
    `largest` per message), and all messages are shuffled together."""
    rng = random.Random(seed)
    bodies: list[bytes] = []
    for _ in range(COPIES):
        order = numbers[:]
        rng.shuffle(order)
        while order:
            size = rng.randint(1, largest)
            batch, order = order[:size], order[size:]
            bodies.append(message([demo_notification(n, prefix="storm") for n in batch]))
    rng.shuffle(bodies)
    return bodies


def assert_exactly_once(numbers: list[int], answers, family: str, seconds: float) -> None:
    expected = len(numbers)
    refused = [a for a in answers if a.status != 200 or not a.acked]
    assert not refused, f"{len(refused)} POSTs were not acknowledged: {refused[0].body[:300]!r}"
    assert Notification.objects.count() == expected
    runs = run_statuses()
    assert runs == {"succeeded": expected}, runs
    deliveries = list(Delivery.objects.values_list("notification_count", "duplicate_count"))
    assert len(deliveries) == len(answers)
    assert sum(count - duplicates for count, duplicates in deliveries) == expected
    sent = outbox_per_address()
    wanted = {demo_address(n, "storm") for n in numbers}
    assert set(sent) == wanted, "someone was not emailed, or a stranger was"
    duplicated = sum(count - 1 for count in sent.values())
    assert duplicated == 0, [address for address, count in sent.items() if count > 1][:5]
    assert line_statuses() == {"sent": expected}
    assert Recipient.objects.values("contact").distinct().count() == expected
    record(
        family,
        posts=len(answers),
        notifications_posted=expected * COPIES,
        runs=Run.objects.count(),
        emails=sum(sent.values()),
        lost=expected - len(sent),
        duplicated=duplicated,
        seconds=round(seconds),
    )


@pytest.mark.slow
def test_storm_of_2000_notifications_posted_3_times_runs_and_emails_each_once():
    """Jobs run inline, in the POSTing thread, right after each commit: the storm's
    concurrency reaches the engine and the sends as well as the endpoint."""
    demo = seed_demo()
    numbers = list(range(1, 2001))
    bodies = storm_messages(numbers, seed=7, largest=20)
    began = time.monotonic()
    # SQLite has one writer: more threads than cores only wait for its lock. PostgreSQL
    # overlaps the threads' commits (each waits for its WAL flush).
    threads = 2 if connection.vendor == "sqlite" else 6
    answers = post_all(demo_path(demo), bodies, threads=threads)
    assert_exactly_once(
        numbers, answers, "redelivery storm (inline jobs)", time.monotonic() - began
    )


@pytest.mark.broker
def test_storm_through_the_real_broker_while_workers_run(start_cluster, broker_env):
    """300 notifications, each POSTed 3 times from 2 threads while a 2-process worker
    executes the runs through the real broker (ORM, and Redis when REDIS_URL is set)."""
    demo = seed_demo()
    numbers = list(range(1, 301))
    bodies = storm_messages(numbers, seed=11, largest=10)
    cluster = start_cluster(XMFLOWS_WORKERS="2")
    began = time.monotonic()
    answers = post_all(demo_path(demo), bodies, threads=2)
    wait_until(
        lambda: (
            run_statuses() == {"succeeded": len(numbers)}
            and sum(outbox_per_address().values()) >= len(numbers)
        ),
        timeout=120,
        what="the worker to finish the storm's runs",
        cluster=cluster,
    )
    broker = "redis" if broker_env.get("REDIS_URL") else "orm"
    assert_exactly_once(
        numbers, answers, f"redelivery storm ({broker} broker)", time.monotonic() - began
    )
