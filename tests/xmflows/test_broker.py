"""Runs reach a real `manage.py qcluster` worker through the real broker (ORM, and Redis)."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.tasks import async_task

from tests.conftest import fixture_bytes
from tests.factories import make_workflow, post_soap
from tests.reliability.workers import Cluster
from xmflows import intake
from xmflows.models import Run

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 60


def wait_for(predicate, worker: Cluster, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        assert worker.alive(), f"qcluster exited:\n{worker.log_tail()}"
        time.sleep(0.5)
    pytest.fail(f"timed out after {WAIT_SECONDS}s waiting for {what}")


def test_worker_executes_runs_posted_to_the_endpoint(client, admin_user, start_cluster):
    workflow = make_workflow(owner=admin_user)
    response = post_soap(client, workflow, fixture_bytes("salesforce/case_batch_3.xml"))
    assert response.status_code == 200
    # Acknowledged with the work still queued: nothing ran in the request.
    assert sorted(Run.objects.values_list("status", flat=True)) == ["queued"] * 3

    worker = start_cluster(XMFLOWS_WORKERS="1")
    wait_for(
        lambda: Run.objects.filter(status="succeeded").count() == 3,
        worker,
        "the worker to execute 3 runs",
    )
    assert Run.objects.exclude(status="succeeded").count() == 0
    assert all(run.finished_at for run in Run.objects.all())


def test_sweeper_reenqueues_a_lost_run_through_the_broker(
    client, admin_user, start_cluster, monkeypatch, settings
):
    workflow = make_workflow(owner=admin_user)
    # The job is lost between commit and enqueue (a crash, or Redis losing it).
    with monkeypatch.context() as patch:
        patch.setattr(intake, "enqueue_runs", lambda run_ids: None)
        response = post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    assert response.status_code == 200
    (run,) = Run.objects.all()
    assert run.status == "queued"
    stale = timezone.now() - timedelta(seconds=settings.XMFLOWS_STUCK_AFTER_SECONDS + 60)
    Run.objects.filter(pk=run.pk).update(enqueued_at=stale)

    worker = start_cluster(XMFLOWS_WORKERS="1")
    time.sleep(3)
    run.refresh_from_db()
    assert run.status == "queued", "nothing should run a job that was never queued"

    # The sweeper runs as a job of the worker and re-enqueues through the broker.
    async_task("xmflows.jobs.sweep")
    wait_for(
        lambda: Run.objects.filter(pk=run.pk, status="succeeded").exists(),
        worker,
        "the swept run to be executed",
    )
    run.refresh_from_db()
    assert run.enqueued_at > stale
