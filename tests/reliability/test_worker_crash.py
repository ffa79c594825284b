"""A worker SIGKILLed in the middle of a batch: every run completes, nobody is emailed twice.

The whole qcluster process group is killed while it executes demo-workflow runs and
sends their emails through a deliberately slow email backend, so runs are left
"running", jobs are held by the dead worker (the ORM broker hides them for
Q_CLUSTER["retry"] seconds; Redis loses them outright, PITFALLS.md 1) and an email
is usually caught mid-send. A new worker starts, and the sweepers, which the
schedule runs every minute in production, are driven by the test with a 5-second
"stuck" timeout (XMFLOWS_STUCK_AFTER_SECONDS) so that it takes seconds, not minutes.
"""

import time

import pytest

from distributions.jobs import sweep_due
from distributions.models import Recipient
from tests.figures import record
from tests.reliability.support import (
    SLOW_OUTBOX_BACKEND,
    demo_address,
    demo_notification,
    demo_path,
    line_statuses,
    message,
    outbox_per_address,
    run_statuses,
    seed_demo,
)
from tests.reliability.workers import wait_until
from xmflows.jobs import sweep
from xmflows.models import Run

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

RUNS = 40
STUCK_SECONDS = 5
SEND_SECONDS = "0.25"


def test_worker_killed_mid_batch_then_every_run_completes_and_nobody_is_emailed_twice(
    client, settings, start_cluster, broker_env
):
    settings.XMFLOWS_STUCK_AFTER_SECONDS = STUCK_SECONDS
    # Small jobs, so the dead worker holds several of them and the live ones queue.
    settings.XMFLOWS_RUNS_PER_JOB = 4
    demo = seed_demo()
    numbers = list(range(1, RUNS + 1))
    for start in (0, RUNS // 2):
        body = message([demo_notification(n, prefix="crash") for n in numbers[start:][: RUNS // 2]])
        response = client.post(
            demo_path(demo), body, content_type="text/xml; charset=utf-8", HTTP_SOAPACTION='""'
        )
        assert response.status_code == 200, response.content[:300]
    assert run_statuses() == {"queued": RUNS}

    worker_env = {
        "EMAIL_BACKEND": SLOW_OUTBOX_BACKEND,
        "XMFLOWS_TEST_SEND_SECONDS": SEND_SECONDS,
        "XMFLOWS_STUCK_AFTER_SECONDS": str(STUCK_SECONDS),
        "XMFLOWS_RUNS_PER_JOB": "4",
        "XMFLOWS_WORKERS": "2",
    }
    first = start_cluster(**worker_env)
    sending = Recipient.objects.filter(sending_started_at__isnull=False, status="pending")
    # Kill while an email is in the provider call (marked "sending", not yet recorded):
    # the moment a duplicate would be born if the retry were careless.
    wait_until(
        lambda: sum(outbox_per_address().values()) >= 8 and sending.exists(),
        timeout=90,
        what="the first worker to send a few emails and be in the middle of another",
        cluster=first,
    )
    first.kill()
    killed_at = time.monotonic()

    # What the kill left behind: the batch is really half done.
    sent_before = sum(outbox_per_address().values())
    runs_unfinished = Run.objects.filter(status__in=["queued", "running"]).count()
    runs_running = Run.objects.filter(status="running").count()
    lines_in_flight = Recipient.objects.filter(sending_started_at__isnull=False).exclude(
        status="sent"
    )
    caught_mid_send = lines_in_flight.count()
    assert 0 < sent_before < RUNS, sent_before
    assert runs_unfinished > 0 or line_statuses().get("pending", 0) > 0

    second = start_cluster(**worker_env)

    def finished() -> bool:
        # The schedule's sweepers, every second here instead of every minute.
        sweep()
        sweep_due()
        return (
            run_statuses() == {"succeeded": RUNS}
            and line_statuses() == {"sent": RUNS}
            and sum(outbox_per_address().values()) >= RUNS
        )

    recovery = wait_until(
        finished, timeout=120, what="every run and email after the kill", cluster=second
    )

    sent = outbox_per_address()
    assert set(sent) == {demo_address(n, "crash") for n in numbers}
    duplicated = sum(count - 1 for count in sent.values())
    assert duplicated == 0, {address: count for address, count in sent.items() if count > 1}
    # The outbox can be asked whether an interrupted send happened, so no line is left
    # "outcome unknown" (a real ESP's would be: see tests/distributions/test_sending.py).
    assert not Recipient.objects.filter(outcome_unknown=True).exists()
    record(
        "worker killed with SIGKILL mid-batch",
        faults=1,
        runs=RUNS,
        runs_unfinished_at_kill=runs_unfinished,
        runs_running_at_kill=runs_running,
        emails_in_flight_at_kill=caught_mid_send,
        lost=RUNS - len(sent),
        duplicated=duplicated,
    )
    print(
        f"\nSIGKILL ({'redis' if broker_env.get('REDIS_URL') else 'orm'} broker): "
        f"{sent_before}/{RUNS} emailed before the kill, {runs_unfinished} runs unfinished "
        f"({runs_running} running), {caught_mid_send} email(s) caught mid-send; all done "
        f"{time.monotonic() - killed_at:.1f}s after the kill ({recovery:.1f}s after the new "
        f"worker started); lost 0, duplicated 0"
    )
