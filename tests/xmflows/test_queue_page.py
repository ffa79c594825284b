"""The Queue page (SPEC F9): the backlog of runs and sends, the broker, the periodic
jobs and the failed jobs, with a warning for each thing that looks stuck."""

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule, Task

from tests.factories import case_notification, make_user, make_workflow, post_soap
from tests.soap_builders import build_outbound_message
from xmflows.models import Run, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner():
    return make_user(username="owner")


def page_text(client) -> str:
    response = client.get("/reports/queue/")
    assert response.status_code == 200
    return html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))


def row(text: str, label: str) -> str:
    """The words after a row's label, up to the next line break of the page."""
    found = re.search(re.escape(label) + r"\s+(.*?)\n", text)
    return " ".join(found.group(1).split()) if found else ""


def test_waiting_runs_are_counted_and_an_idle_worker_is_called_out(client, owner, real_broker):
    workflow = make_workflow(owner=owner)
    body = build_outbound_message([case_notification(1), case_notification(2)])
    assert post_soap(client, workflow, body).status_code == 200  # stored and queued only
    client.force_login(owner)
    text = page_text(client)
    assert row(text, "Queued, ready for a worker").startswith("2 ")
    assert "Nothing looks stuck" in text
    assert int(row(text, "Jobs waiting in it")) >= 1
    assert row(text, "Reachable") == "yes"

    # Ten minutes later nothing has been taken: the page says why that is suspicious.
    Run.objects.update(created_at=timezone.now() - timedelta(minutes=10))
    text = page_text(client)
    assert (
        "2 run(s) have waited up to 10 min and no worker has started a run since this "
        "database was created: is a worker (manage.py qcluster) running?"
    ) in text

    # A worker that just started one of them: busy, not idle.
    first = Run.objects.order_by("id").first()
    Run.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING, started_at=timezone.now())
    text = page_text(client)
    assert "no worker has started" not in text
    assert row(text, "Queued, ready for a worker").startswith("1 ")
    assert row(text, "Running").startswith("1")


def test_retries_stuck_runs_and_recent_failures_are_told_apart(client, owner, real_broker):
    workflow = make_workflow(owner=owner)
    body = build_outbound_message([case_notification(n) for n in range(1, 5)])
    assert post_soap(client, workflow, body).status_code == 200
    now = timezone.now()
    one, two, three, four = Run.objects.order_by("id")
    Run.objects.filter(pk=one.pk).update(next_attempt_at=now + timedelta(minutes=8))
    Run.objects.filter(pk=two.pk).update(
        status=RunStatus.RUNNING, started_at=now - timedelta(hours=1)
    )
    Run.objects.filter(pk__in=[three.pk, four.pk]).update(
        status=RunStatus.FAILED, started_at=now, finished_at=now
    )
    client.force_login(owner)
    text = page_text(client)
    assert row(text, "Queued, ready for a worker").startswith("0")
    assert row(text, "Waiting to retry (temporary failure, with back-off)").startswith("1 ")
    assert "1 for too long" in row(text, "Running")
    assert "1 run(s) have been running for too long" in text
    assert row(text, "Failed, of the runs received in the last 24 hours") == "2"


def test_overdue_periodic_jobs_and_failed_jobs_are_shown(client, owner):
    now = timezone.now()
    Schedule.objects.update_or_create(
        name="xmflows sweeper",
        defaults={
            "func": "xmflows.jobs.sweep",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
            "next_run": now - timedelta(minutes=25),
        },
    )
    Task.objects.create(
        id="a" * 32,
        name="quebec-alpha",
        func="xmflows.jobs.execute_runs",
        args=([41, 42],),
        started=now - timedelta(seconds=3),
        stopped=now,
        success=False,
        result="OperationalError: database is locked",
    )
    client.force_login(owner)
    text = page_text(client)
    assert (
        "Periodic job(s) 'xmflows sweeper' are overdue by up to 25 min: no worker "
        "(manage.py qcluster) is running their scheduler."
    ) in text
    assert "xmflows.jobs.execute_runs" in text
    assert "OperationalError: database is locked" in text
    assert "[41, 42]" in text


def test_an_unreachable_broker_is_said_and_the_page_still_answers(client, owner, monkeypatch):
    def broken():
        raise ConnectionError("connection refused")

    monkeypatch.setattr("django_q.brokers.get_broker", broken)
    client.force_login(owner)
    text = page_text(client)
    assert row(text, "Reachable") == "no"
    assert "broker cannot be reached" in text
    assert row(text, "Jobs waiting in it") == "unknown"


def test_the_reports_tabs_lead_to_it(client, owner):
    client.force_login(owner)
    for url in ("/reports/workflows/", "/reports/workflows/deliveries/", "/reports/workflows/why/"):
        assert 'href="/reports/queue/"' in client.get(url).content.decode(), url
