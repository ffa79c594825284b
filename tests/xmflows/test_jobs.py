"""A run job sends the emails its runs created itself, within a budget; nothing is lost.

config.queueing.collect_jobs keeps the jobs enqueued while runs execute (once their
transaction commits) and xmflows.jobs.execute_runs runs them right after, instead of
one queued job per email. Past the budget, or when one raises, they go to the broker.
"""

import pytest
from django_q.models import OrmQ

from config import queueing
from distributions.models import OutboxMessage, Recipient
from tests.distributions.builders import make_distribution_workflow
from tests.factories import case_notification, post_soap
from tests.soap_builders import build_outbound_message
from xmflows import jobs
from xmflows.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued_runs(client, admin_user, real_broker, monkeypatch, settings):
    """Three runs of an emailing workflow, queued through the ORM broker, not run."""
    from django_q.conf import Conf

    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"
    monkeypatch.setattr(Conf, "ORM", "default")
    workflow = make_distribution_workflow(owner=admin_user)
    notifications = [
        case_notification(n, ContactEmail=f"job{n}@example.org", First_Name__c="Ada",
                          Last_Name__c="Lovelace", CaseNumber=f"{n:08d}")
        for n in range(3)
    ]  # fmt: skip
    assert post_soap(client, workflow, build_outbound_message(notifications)).status_code == 200
    OrmQ.objects.all().delete()  # the run job itself is called directly below
    return list(Run.objects.order_by("id").values_list("id", flat=True))


def test_the_run_job_sends_its_emails_without_queueing_them(queued_runs):
    assert jobs.execute_runs(queued_runs) == {"succeeded": 3}
    assert OutboxMessage.objects.count() == 3
    assert set(Recipient.objects.values_list("status", flat=True)) == {"sent"}
    assert not OrmQ.objects.exists(), "no job per email"


def test_past_the_budget_the_rest_are_queued(queued_runs, monkeypatch):
    monkeypatch.setattr(jobs, "FOLLOW_UP_BUDGET_SECONDS", -1.0)
    jobs.execute_runs(queued_runs)
    assert OutboxMessage.objects.count() == 0
    assert OrmQ.objects.count() == 3  # one send job per line, for any worker
    assert set(Recipient.objects.values_list("status", flat=True)) == {"pending"}


def test_a_follow_up_that_raises_is_queued_for_the_broker_to_retry(queued_runs, monkeypatch):
    from distributions import jobs as distribution_jobs

    real_send = distribution_jobs.send_recipient
    calls = []

    def flaky(recipient_id):
        calls.append(recipient_id)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real_send(recipient_id)

    monkeypatch.setattr(distribution_jobs, "send_recipient", flaky)
    jobs.execute_runs(queued_runs)
    assert OutboxMessage.objects.count() == 2
    assert OrmQ.objects.count() == 1


def test_jobs_of_a_rolled_back_transaction_are_dropped():
    from django.db import transaction

    with queueing.collect_jobs() as collected:
        with transaction.atomic():
            queueing.enqueue("math.floor", 1.5)
            transaction.set_rollback(True)
        with transaction.atomic():
            queueing.enqueue("math.ceil", 1.5)
    assert collected == [("math.ceil", (1.5,), {})]


def test_enqueue_many_writes_the_packages_async_task_would(real_broker, monkeypatch):
    """The endpoint queues its runs in one insert; the rows must be exactly what the
    cluster expects from async_task (signed package, key, lock), and commit or roll
    back with the caller's transaction."""
    from django.db import transaction
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.signing import SignedPackage

    monkeypatch.setattr(Conf, "ORM", "default")
    with transaction.atomic():
        queueing.enqueue_many("math.floor", [(1.5,), (2.5,)])
        transaction.set_rollback(True)
    assert not OrmQ.objects.exists()

    with transaction.atomic():
        queueing.enqueue_many("math.floor", [(n + 0.5,) for n in range(301)])
    rows = list(OrmQ.objects.order_by("id"))
    assert len(rows) == 301  # two statements: 300 rows, then one
    assert {row.key for row in rows} == {get_broker().list_key} == {Conf.CLUSTER_NAME}
    tasks = [SignedPackage.loads(row.payload) for row in rows]
    assert [task["args"] for task in tasks] == [(n + 0.5,) for n in range(301)]
    assert {task["func"] for task in tasks} == {"math.floor"}
    assert len({task["id"] for task in tasks}) == 301
    assert all(task["kwargs"] == {} for task in tasks)
    assert tasks[0]["name"] == "floor(0.5,)"


def test_queued_jobs_are_named_after_what_they_do():
    assert queueing.job_name("execute_runs", ([101, 102, 120],)) == (
        "execute_runs(3 ids: 101 … 120)"
    )
    assert queueing.job_name("execute_runs", ([7],)) == "execute_runs([7],)"
    assert len(queueing.job_name("f", ("x" * 500,))) == 100
