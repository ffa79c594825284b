"""Run history retention: the daily clean-up deletes what is older than XMFLOWS_HISTORY_DAYS.

Runs (with their task runs), notifications and deliveries older than the limit go;
newer ones stay, also right under the limit; distribution lines, contacts and
responses are not run history and stay too.
"""

import importlib
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from distributions.models import Recipient
from tests.reliability.support import demo_notification, demo_path, message, seed_demo
from xmflows.jobs import cleanup_history
from xmflows.models import Delivery, Notification, Run, TaskRun

pytestmark = pytest.mark.django_db(transaction=True)


def deliver(client, demo, numbers) -> list[int]:
    before = set(Run.objects.values_list("id", flat=True))
    body = message([demo_notification(n, prefix="history") for n in numbers])
    response = client.post(
        demo_path(demo), body, content_type="text/xml; charset=utf-8", HTTP_SOAPACTION='""'
    )
    assert response.status_code == 200
    return sorted(set(Run.objects.values_list("id", flat=True)) - before)


def age(run_ids: list[int], days: float) -> None:
    """Make these runs, their notifications and deliveries `days` old."""
    when = timezone.now() - timedelta(days=days)
    runs = Run.objects.filter(pk__in=run_ids)
    notifications = Notification.objects.filter(runs__in=runs)
    Delivery.objects.filter(notifications__in=notifications).update(received_at=when)
    notifications.update(received_at=when)
    runs.update(created_at=when)


def test_history_older_than_the_limit_is_deleted_and_newer_kept(client, settings):
    settings.XMFLOWS_HISTORY_DAYS = 30
    demo = seed_demo()
    old = deliver(client, demo, [1, 2, 3])
    borderline = deliver(client, demo, [4])
    recent = deliver(client, demo, [5, 6])
    age(old, days=31)
    age(borderline, days=29.9)
    refused_long_ago = Delivery.objects.create(outcome="rejected", reason="event disabled")
    Delivery.objects.filter(pk=refused_long_ago.pk).update(
        received_at=timezone.now() - timedelta(days=40)
    )
    refused_lately = Delivery.objects.create(outcome="rejected", reason="event disabled")
    lines_before = Recipient.objects.count()
    assert TaskRun.objects.filter(run_id__in=old).count() == 6  # two tasks each

    deleted = cleanup_history()

    assert deleted["runs"] >= 3 and deleted["notifications"] == 3
    assert sorted(Run.objects.values_list("id", flat=True)) == sorted(borderline + recent)
    assert not TaskRun.objects.filter(run_id__in=old).exists()
    assert Notification.objects.count() == 3
    kept = set(Delivery.objects.values_list("id", flat=True))
    assert refused_long_ago.pk not in kept and refused_lately.pk in kept
    assert Delivery.objects.filter(outcome="accepted").count() == 2
    # Not run history: the invitations sent stay (their history CSV keeps the run id).
    assert Recipient.objects.count() == lines_before
    # Run twice, as a daily job may be after a missed day: nothing more to do.
    assert cleanup_history() == {
        "runs": 0,
        "notifications": 0,
        "deliveries": 0,
        "sign_in_throttles": 0,
    }


@pytest.mark.skipif("XMFLOWS_HISTORY_DAYS" in os.environ, reason="XMFLOWS_HISTORY_DAYS is set")
def test_history_is_kept_365_days_by_default_and_cleaned_daily():
    from config import settings as project_settings

    assert project_settings.XMFLOWS_HISTORY_DAYS == 365
    schedules = importlib.import_module("xmflows.migrations.0002_schedules").SCHEDULES
    assert ("xmflows history clean-up", "xmflows.jobs.cleanup_history", "D", None) in schedules
