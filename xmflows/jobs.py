"""django-q2 entry points of the workflows app (jobs, not workflow tasks)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.queueing import collect_jobs, run_collected
from core.job_memo import job_memo
from xmflows.engine import run_execute
from xmflows.intake import enqueue_runs
from xmflows.models import Run, RunStatus

logger = logging.getLogger(__name__)

# How long a run job may spend on the jobs its runs started (email sends) before it
# queues the rest: with Q_CLUSTER's 120 s timeout, 20 runs, and one provider call that
# may take its own 30 s timeout after the budget is checked, it ends well in time.
FOLLOW_UP_BUDGET_SECONDS = 20.0


def execute_runs(run_ids: list[int]) -> dict[str, int]:
    """Execute each run, then the jobs the runs started (their email sends), here.

    One run's crash does not stop the others. Running the follow-up jobs in this
    worker instead of queueing one job per send more than halves the queue traffic
    per run (see config.queueing.collect_jobs and bench/pipeline.py).
    """
    done: dict[str, int] = {}
    # One memory of the settings rows (lists, surveys, rules) for the runs and their sends.
    with job_memo():
        with collect_jobs() as follow_ups:
            for run_id in run_ids:
                try:
                    status = run_execute(run_id=run_id) or "unchanged"
                except Exception:
                    logger.exception(
                        "run %s could not be executed; the sweeper will try again", run_id
                    )
                    status = "error"
                done[status] = done.get(status, 0) + 1
        run_collected(follow_ups, budget_seconds=FOLLOW_UP_BUDGET_SECONDS)
    return done


def sweep() -> int:
    """Re-enqueue runs the queue may have lost, and runs whose back-off has elapsed.

    The database row is the truth (PITFALLS.md 1): Redis loses in-flight jobs when a
    worker dies, and a crash between commit and enqueue loses the job on any broker.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.XMFLOWS_STUCK_AFTER_SECONDS)
    due = Q(status=RunStatus.QUEUED, next_attempt_at__lte=now)
    lost = Q(status=RunStatus.QUEUED, next_attempt_at__isnull=True) & (
        Q(enqueued_at__lt=stale) | Q(enqueued_at__isnull=True)
    )
    crashed = Q(status=RunStatus.RUNNING, started_at__lt=stale)
    run_ids = list(Run.objects.filter(due | lost | crashed).values_list("id", flat=True)[:5000])
    if not run_ids:
        return 0
    # A run that crashed mid-way goes back to queued so the engine may claim it.
    Run.objects.filter(pk__in=run_ids, status=RunStatus.RUNNING).update(status=RunStatus.QUEUED)
    Run.objects.filter(pk__in=run_ids).update(enqueued_at=now)
    with transaction.atomic():
        enqueue_runs(run_ids)
    logger.info("sweeper re-enqueued %d runs", len(run_ids))
    return len(run_ids)


def cleanup_history() -> dict[str, int]:
    """Delete runs, notifications and deliveries older than XMFLOWS_HISTORY_DAYS (365),
    and sign-in counters idle for a day (their blocks last 15 minutes)."""
    from xmflows.models import Delivery, Notification, SignInThrottle

    cutoff = timezone.now() - timedelta(days=settings.XMFLOWS_HISTORY_DAYS)
    runs, _ = Run.objects.filter(created_at__lt=cutoff).delete()
    notifications, _ = Notification.objects.filter(
        received_at__lt=cutoff, runs__isnull=True
    ).delete()
    deliveries, _ = Delivery.objects.filter(
        received_at__lt=cutoff, notifications__isnull=True
    ).delete()
    idle = timezone.now() - timedelta(days=1)
    throttles, _ = SignInThrottle.objects.filter(last_failure_at__lt=idle).delete()
    return {
        "runs": runs,
        "notifications": notifications,
        "deliveries": deliveries,
        "sign_in_throttles": throttles,
    }
