"""The workflow engine through real runs: conditions, task outcomes, retries, the sweeper."""

from datetime import timedelta

import pytest
from django.utils import timezone

from distributions.models import OutboxMessage
from tests.conftest import probe_task
from tests.factories import case_notification, make_user, make_workflow, post_soap
from tests.soap_builders import build_outbound_message
from xmflows.jobs import execute_runs, sweep
from xmflows.models import Run, Task, TaskRun
from xmflows.services import run_retry

pytestmark = pytest.mark.django_db


def deliver(client, workflow, *notifications: dict, execute: bool = True) -> list[Run]:
    """POST one message to the workflow's event URL and, unless told not to, execute its
    runs the way the queued job would (jobs enqueued on commit do not run in a test
    transaction). Returns the workflow's runs, oldest first."""
    before = set(Run.objects.filter(workflow=workflow).values_list("id", flat=True))
    response = post_soap(client, workflow, build_outbound_message(list(notifications)))
    assert response.status_code == 200, response.content[:300]
    new_ids = sorted(
        set(Run.objects.filter(workflow=workflow).values_list("id", flat=True)) - before
    )
    if execute:
        execute_runs(new_ids)
    return list(Run.objects.filter(workflow=workflow).order_by("id"))


def task_statuses(run: Run) -> list[str]:
    return list(run.task_runs.order_by("position").values_list("status", flat=True))


@pytest.fixture
def owner():
    return make_user(username="engine-owner", email="engine-owner@example.com")


@pytest.fixture
def move_time(monkeypatch):
    """Move the clock the engine, the sweeper and Django see by `delta`."""
    real_now = timezone.now
    offset = timedelta()

    def shift(delta: timedelta) -> None:
        nonlocal offset
        offset += delta
        monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)

    return shift


# --- conditions ----------------------------------------------------------------------

# (rule, field value (None = nil, absent when the key is "missing"), passes)
OPERATOR_CASES = [
    ({"field": "Status", "op": "equals", "value": "Closed"}, "Closed", True),
    ({"field": "Status", "op": "equals", "value": "Closed"}, "Open", False),
    ({"field": "IsClosed", "op": "equals", "value": "true"}, "TRUE", True),
    ({"field": "Amount", "op": "equals", "value": 45000}, "45000.0", True),
    ({"field": "Status", "op": "not_equals", "value": "Closed"}, "Open", True),
    ({"field": "Status", "op": "not_equals", "value": "Closed"}, "Closed", False),
    ({"field": "Subject", "op": "contains", "value": "urgent"}, "URGENT: printer", True),
    ({"field": "Subject", "op": "contains", "value": "urgent"}, "printer", False),
    ({"field": "Subject", "op": "is_empty"}, None, True),
    ({"field": "Subject", "op": "is_empty"}, "missing", True),
    ({"field": "Subject", "op": "is_empty"}, "text", False),
    ({"field": "Subject", "op": "is_not_empty"}, "text", True),
    ({"field": "Subject", "op": "is_not_empty"}, "   ", False),
    ({"field": "Amount", "op": "greater_than", "value": "9"}, "10", True),
    ({"field": "Amount", "op": "greater_than", "value": "10"}, "9.5", False),
    ({"field": "Amount", "op": "less_than", "value": "10"}, "9.5", True),
    ({"field": "Amount", "op": "less_than", "value": "9"}, "10", False),
    ({"field": "ClosedDate", "op": "less_than", "value": "2026-11-01"}, "2026-10-02", True),
]


@pytest.mark.parametrize(
    ("rule", "value", "passes"),
    OPERATOR_CASES,
    ids=[f"{rule['op']}-{value!r}-{passes}" for rule, value, passes in OPERATOR_CASES],
)
def test_each_operator_through_a_real_run(client, owner, task_probe, rule, value, passes):
    workflow = make_workflow(
        owner=owner,
        conditions={"match": "all", "rules": [rule]},
        tasks=[probe_task("only")],
    )
    fields = {} if value == "missing" else {rule["field"]: value}
    (run,) = deliver(client, workflow, case_notification(1, **fields))
    if passes:
        assert run.status == "succeeded"
        assert task_probe.labels() == ["only"]
    else:
        assert run.status == "skipped"
        assert rule["field"] in run.reason
        assert run.reason.startswith("condition not met (all)")
        assert task_probe.calls == []
        assert run.finished_at is not None


def test_all_skips_when_one_rule_fails_and_names_it(client, owner, task_probe):
    workflow = make_workflow(
        owner=owner,
        conditions={
            "match": "all",
            "rules": [
                {"field": "Status", "op": "equals", "value": "Closed"},
                {"field": "Priority", "op": "equals", "value": "High"},
            ],
        },
        tasks=[probe_task("only")],
    )
    runs = deliver(
        client,
        workflow,
        case_notification(1, Status="Closed", Priority="Low"),
        case_notification(2, Status="Closed", Priority="High"),
    )
    assert [run.status for run in runs] == ["skipped", "succeeded"]
    assert "Priority equals 'High' — actual value 'Low'" in runs[0].reason
    assert "Status" not in runs[0].reason
    assert task_probe.count("only") == 1


def test_any_runs_when_one_rule_passes_and_lists_every_rule_when_none_does(
    client, owner, task_probe
):
    workflow = make_workflow(
        owner=owner,
        conditions={
            "match": "any",
            "rules": [
                {"field": "Status", "op": "equals", "value": "Closed"},
                {"field": "Priority", "op": "equals", "value": "High"},
            ],
        },
        tasks=[probe_task("only")],
    )
    runs = deliver(
        client,
        workflow,
        case_notification(1, Status="Open", Priority="High"),
        case_notification(2, Status="Open", Priority="Low"),
    )
    assert [run.status for run in runs] == ["succeeded", "skipped"]
    assert runs[1].reason.startswith("condition not met (any)")
    assert "Status equals 'Closed'" in runs[1].reason
    assert "Priority equals 'High'" in runs[1].reason


def test_conditions_see_notification_facts(client, owner, task_probe):
    workflow = make_workflow(
        owner=owner,
        conditions={"rules": [{"field": "ObjectType", "op": "equals", "value": "Case"}]},
        tasks=[probe_task("only")],
    )
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "succeeded"


# --- failures ------------------------------------------------------------------------


def test_stop_on_failure_records_the_tasks_not_run(client, owner, task_probe):
    workflow = make_workflow(
        owner=owner,
        on_failure="stop",
        tasks=[probe_task("a"), probe_task("b"), probe_task("c")],
    )
    task_probe.plan("b", "fail")
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "failed"
    assert task_statuses(run) == ["succeeded", "failed", "not_run"]
    assert task_probe.labels() == ["a", "b"]
    assert "task 2 (Test probe): b failed on purpose" in run.reason  # its label
    failed, not_run = run.task_runs.order_by("position")[1:]
    assert failed.error == "b failed on purpose"
    assert "not run" in not_run.error


def test_continue_on_failure_runs_the_rest(client, owner, task_probe):
    workflow = make_workflow(
        owner=owner,
        on_failure="continue",
        tasks=[probe_task("a"), probe_task("b"), probe_task("c")],
    )
    task_probe.plan("b", "fail")
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "failed"
    assert task_statuses(run) == ["succeeded", "failed", "succeeded"]
    assert task_probe.labels() == ["a", "b", "c"]


def test_unexpected_exception_fails_the_task_with_its_name(client, owner, task_probe):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a")])
    task_probe.plan("a", "crash")
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "failed"
    (task_run,) = run.task_runs.all()
    assert task_run.status == "failed"
    assert task_run.error == "internal error: RuntimeError: a crashed"


def test_unknown_task_type_in_the_database_fails_clearly(client, owner, task_probe):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a"), probe_task("b")])
    Task.objects.filter(workflow=workflow, position=1).update(type="uninstalled_plugin")
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "failed"
    first, second = run.task_runs.order_by("position")
    assert first.status == "succeeded"
    assert second.status == "failed"
    assert second.type == "uninstalled_plugin"
    assert "unknown task type 'uninstalled_plugin'" in second.error
    assert "uninstalled_plugin" in run.reason


def test_state_passes_from_one_task_to_the_next(client, owner, task_probe):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a"), probe_task("b")])
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "succeeded"
    assert [call["state"] for call in task_probe.calls] == [{}, {"trail": ["a"]}]
    assert run.state == {"trail": ["a", "b"]}
    outputs = [task_run.output for task_run in run.task_runs.order_by("position")]
    assert outputs[1]["trail"] == ["a", "b"]


def test_tasks_see_the_notification_fields(client, owner, task_probe):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a", email_field="ContactEmail")])
    (run,) = deliver(
        client, workflow, case_notification(1, ContactEmail="ada@example.com", Phone=None)
    )
    assert task_probe.calls[0]["fields"]["ContactEmail"] == "ada@example.com"
    assert task_probe.calls[0]["fields"]["Phone"] is None
    assert run.email == "ada@example.com"


def test_failed_task_state_is_not_kept(client, owner, task_probe):
    workflow = make_workflow(
        owner=owner, on_failure="continue", tasks=[probe_task("a"), probe_task("b")]
    )
    task_probe.plan("a", "fail")
    (run,) = deliver(client, workflow, case_notification(1))
    assert task_probe.calls[1]["state"] == {}
    assert run.state == {"trail": ["b"]}


# --- idempotence ---------------------------------------------------------------------


def test_a_job_executed_twice_does_not_run_a_finished_run_again(client, owner, task_probe):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a"), probe_task("b")])
    runs = deliver(client, workflow, case_notification(1), case_notification(2), execute=False)
    run_ids = [run.pk for run in runs]
    assert execute_runs(run_ids) == {"succeeded": 2}
    assert execute_runs(run_ids) == {"unchanged": 2}
    assert task_probe.count("a") == 2
    assert task_probe.count("b") == 2
    assert {run.status for run in Run.objects.all()} == {"succeeded"}
    assert TaskRun.objects.count() == 4


def test_a_run_running_elsewhere_is_left_alone(client, owner, task_probe):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a")])
    (run,) = deliver(client, workflow, case_notification(1), execute=False)
    Run.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    assert execute_runs([run.pk]) == {"unchanged": 1}
    assert sweep() == 0
    assert task_probe.calls == []
    assert Run.objects.get(pk=run.pk).status == "running"


# --- temporary failures, the retry window and the sweeper --------------------------------


def test_temporary_failure_waits_then_the_sweeper_retries_it(
    client, owner, task_probe, move_time, django_capture_on_commit_callbacks
):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a"), probe_task("b")])
    task_probe.plan("b", "temporary")
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "queued"
    assert run.next_attempt_at is not None
    assert run.next_attempt_at > timezone.now()
    assert "b is temporarily unavailable" in run.reason
    first, second = run.task_runs.order_by("position")
    assert (first.status, second.status) == ("succeeded", "waiting_retry")
    assert "retrying at" in second.error

    # Not due yet: neither the sweeper nor a stray job runs it early.
    assert sweep() == 0
    assert execute_runs([run.pk]) == {"unchanged": 1}
    assert task_probe.count("b") == 1

    move_time(timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep() == 1
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.next_attempt_at is None
    assert task_statuses(run) == ["succeeded", "succeeded"]
    assert task_probe.labels() == ["a", "b", "b"]
    assert run.task_runs.get(position=1).attempts == 2


def test_temporary_failures_give_up_after_the_retry_window(
    client, owner, task_probe, move_time, settings, django_capture_on_commit_callbacks
):
    settings.XMFLOWS_RETRY_WINDOW_SECONDS = 150
    workflow = make_workflow(owner=owner, tasks=[probe_task("a")])
    task_probe.plan("a", "temporary", "temporary", "temporary")
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "queued"
    move_time(timedelta(seconds=61))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep() == 1
    run.refresh_from_db()
    # The next try would come after 2 more minutes, beyond the window: give up.
    assert run.status == "failed"
    (task_run,) = run.task_runs.all()
    assert task_run.status == "failed"
    assert task_run.error.startswith("gave up after 2 attempts")
    assert "a is temporarily unavailable" in task_run.error
    assert run.next_attempt_at is None
    assert task_probe.count("a") == 2


def test_a_run_stuck_in_running_is_reenqueued_by_the_sweeper(
    client, owner, task_probe, settings, django_capture_on_commit_callbacks
):
    settings.XMFLOWS_STUCK_AFTER_SECONDS = 60
    workflow = make_workflow(owner=owner, tasks=[probe_task("a"), probe_task("b")])
    (run,) = deliver(client, workflow, case_notification(1), execute=False)
    # A worker died after task "a" had succeeded: the run is left in running.
    execute_runs([run.pk])
    Run.objects.filter(pk=run.pk).update(
        status="running", finished_at=None, started_at=timezone.now() - timedelta(seconds=61)
    )
    TaskRun.objects.filter(run=run, position=1).delete()
    task_probe.calls.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep() == 1
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert task_probe.labels() == ["b"]
    assert run.attempts == 2


def test_a_queued_run_whose_job_was_lost_is_reenqueued(
    client, owner, task_probe, settings, django_capture_on_commit_callbacks
):
    settings.XMFLOWS_STUCK_AFTER_SECONDS = 60
    workflow = make_workflow(owner=owner, tasks=[probe_task("a")])
    (run,) = deliver(client, workflow, case_notification(1), execute=False)
    assert sweep() == 0
    Run.objects.filter(pk=run.pk).update(enqueued_at=timezone.now() - timedelta(seconds=61))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep() == 1
    assert Run.objects.get(pk=run.pk).status == "succeeded"
    assert task_probe.count("a") == 1


# --- retry of a failed run ----------------------------------------------------------


def test_run_retry_reruns_only_the_failed_tasks(
    client, owner, task_probe, django_capture_on_commit_callbacks
):
    workflow = make_workflow(
        owner=owner,
        on_failure="continue",
        tasks=[probe_task("a"), probe_task("b"), probe_task("c")],
    )
    task_probe.plan("b", "fail")
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        run_retry(run=run)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.reason == ""
    assert task_statuses(run) == ["succeeded", "succeeded", "succeeded"]
    assert task_probe.labels() == ["a", "b", "c", "b"]


def test_run_retry_after_a_stop_runs_the_failed_and_the_not_run_tasks(
    client, owner, task_probe, django_capture_on_commit_callbacks
):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a"), probe_task("b"), probe_task("c")])
    task_probe.plan("b", "fail")
    (run,) = deliver(client, workflow, case_notification(1))
    assert task_statuses(run) == ["succeeded", "failed", "not_run"]
    with django_capture_on_commit_callbacks(execute=True):
        run_retry(run=run)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert task_probe.labels() == ["a", "b", "b", "c"]
    # Later tasks see what the kept task left.
    assert run.state == {"trail": ["a", "b", "c"]}


def test_a_manual_retry_of_an_old_run_starts_a_fresh_retry_window(
    client, owner, task_probe, move_time, django_capture_on_commit_callbacks
):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a")])
    task_probe.plan("a", "fail", "temporary")
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "failed"
    # Noticed and retried two days later, long after the 24-hour window of its creation.
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=2))
    with django_capture_on_commit_callbacks(execute=True):
        run_retry(run=run)
    run.refresh_from_db()
    # The retry failed temporarily: it waits and tries again, it does not give up.
    assert run.status == "queued"
    assert run.next_attempt_at is not None
    assert run.next_attempt_at > timezone.now()
    assert run.retried_at is not None
    (task_run,) = run.task_runs.all()
    assert task_run.status == "waiting_retry"
    move_time(timedelta(minutes=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep() == 1
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert task_probe.count("a") == 3


@pytest.mark.parametrize("retried", [False, True], ids=["never-retried", "retried-long-ago"])
def test_an_automatic_retry_past_the_window_still_gives_up(
    client, owner, task_probe, move_time, django_capture_on_commit_callbacks, retried
):
    workflow = make_workflow(owner=owner, tasks=[probe_task("a")])
    task_probe.plan("a", "temporary", "temporary")
    (run,) = deliver(client, workflow, case_notification(1))
    assert run.status == "queued"
    two_days_ago = timezone.now() - timedelta(days=2)
    Run.objects.filter(pk=run.pk).update(
        created_at=two_days_ago, retried_at=two_days_ago if retried else None
    )
    move_time(timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep() == 1
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.next_attempt_at is None
    (task_run,) = run.task_runs.all()
    assert task_run.status == "failed"
    assert task_run.error.startswith("gave up after 2 attempts over 1 day, 0:00:00")


# --- telling the owner ----------------------------------------------------------------


def test_owner_is_emailed_when_a_run_fails(client, owner, task_probe, settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"
    workflow = make_workflow(owner=owner, notify_owner_on_failure=True, tasks=[probe_task("a")])
    task_probe.plan("a", "fail")
    (run,) = deliver(client, workflow, case_notification(1))
    (message,) = OutboxMessage.objects.all()
    assert message.channel == "email"
    assert message.to == "engine-owner@example.com"
    assert workflow.name in message.subject
    assert str(run.pk) in message.subject
    assert "a failed on purpose" in message.body


def test_owner_is_not_emailed_without_the_option_or_on_success(client, owner, task_probe, settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"
    quiet = make_workflow(owner=owner, tasks=[probe_task("a")])
    task_probe.plan("a", "fail")
    deliver(client, quiet, case_notification(1))
    loud = make_workflow(owner=owner, notify_owner_on_failure=True, tasks=[probe_task("b")])
    (run,) = deliver(client, loud, case_notification(2))
    assert run.status == "succeeded"
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_invalid_stored_conditions_fail_the_run_with_the_reason():
    from tests.factories import make_workflow
    from xmflows.engine import run_execute
    from xmflows.models import Delivery, Notification, Run, Workflow

    workflow = make_workflow()
    # The API refuses this; the admin's raw JSON field does not.
    Workflow.objects.filter(pk=workflow.pk).update(
        conditions={"match": "all", "rules": [{"field": "X", "op": "bigger", "value": "1"}]}
    )
    delivery = Delivery.objects.create(workflow=workflow, outcome="accepted")
    notification = Notification.objects.create(
        event=workflow.event,
        notification_id="04l000000000001",
        delivery=delivery,
        payload={"object_type": "Case", "notification_id": "04l000000000001", "fields": {}},
    )
    run = Run.objects.create(workflow=workflow, notification=notification)
    assert run_execute(run_id=run.pk) == "failed"
    run.refresh_from_db()
    assert run.status == "failed"
    assert "conditions are invalid" in run.reason and "bigger" in run.reason
