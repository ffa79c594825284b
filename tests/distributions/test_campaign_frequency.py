"""Contact frequency rules: per directory, mailing list and survey; exact window
boundaries; decided under concurrency; named in every skip; follow-ups exempt."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from distributions import frequency
from distributions.campaign import reminders_sweep
from distributions.frequency import frequency_skip_reason
from distributions.models import FrequencyRule, MessageKind, OutboxMessage, Recipient
from distributions.services import recipient_send, recipients_sweep
from tests.conftest import using_postgres
from tests.distributions.builders import (
    make_distribution_workflow,
    make_survey,
    send_case,
    task_of,
)
from tests.distributions.campaign_support import (
    ONE_PER_30_DAYS,
    REMINDER,
    THANK_YOU,
    answer,
    csv_rows,
    make_rule,
    run_in_threads,
)
from tests.factories import make_directory, make_mailing_list, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _setup(admin_user, **task):
    directory = make_directory(name="Demo directory")
    mailing_list = make_mailing_list(directory=directory, name="Customers")
    survey = make_survey(owner=admin_user, name="NPS")
    workflow = make_distribution_workflow(
        owner=admin_user, survey=survey, mailing_list=mailing_list, **task
    )
    return directory, mailing_list, survey, workflow


def _line_status(run) -> str:
    """The invitation line's status now (the task output says Pending: it was queued)."""
    line = Recipient.objects.get(workflow_run_id=run.pk, kind=MessageKind.INVITATION)
    return line.get_status_display()


def _day(moment) -> str:
    return f"{moment:%Y-%m-%d}"


# --- At task time: the run's output names the rule -----------------------------------------


def test_a_second_survey_within_the_period_is_skipped_naming_the_rule(
    client, admin_user, api_client
):
    directory, _, survey, workflow = _setup(admin_user)
    make_rule(target=directory)
    first = send_case(client, workflow)
    assert _line_status(first) == "Sent"
    second = send_case(client, workflow)  # another case: another message, same person

    sent = Recipient.objects.get(workflow_run_id=first.pk)
    expected = (
        f"frequency rule '{ONE_PER_30_DAYS}' (directory Demo directory): "
        f"1 survey sent on {_day(sent.sent_at)}"
    )
    shown = api_client.get(f"/api/v1/runs/{second.pk}/").json()
    assert shown["status"] == "succeeded"  # correct behaviour for this person
    assert shown["tasks"][0]["output"]["recipient_status"] == "Skipped"
    assert shown["tasks"][0]["output"]["reason"] == expected
    skipped = Recipient.objects.get(workflow_run_id=second.pk)
    assert (skipped.get_status_display(), skipped.error) == ("Skipped", expected)
    assert OutboxMessage.objects.count() == 1
    rows = csv_rows(admin_user, f"/surveys/{survey.pk}/distribution-history.csv")
    assert [(row["Status"], row["Error"]) for row in rows] == [("Sent", ""), ("Skipped", expected)]


def test_the_workflow_report_shows_the_rule(client, admin_user):
    directory, _, _, workflow = _setup(admin_user)
    make_rule(target=directory, name="One survey a month")
    send_case(client, workflow)
    run = send_case(client, workflow)
    client.force_login(admin_user)
    page = client.get(f"/reports/workflows/runs/{run.pk}/").content.decode()
    assert "frequency rule &#x27;One survey a month&#x27; (directory Demo directory)" in page


# --- At send time: a scheduled line ------------------------------------------------------


def _due(line: Recipient) -> None:
    Recipient.objects.filter(pk=line.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))


def test_a_scheduled_send_is_judged_when_it_goes(client, admin_user, api_client):
    directory, _, _survey, workflow = _setup(admin_user, send_delay_minutes=60)
    first_run = send_case(client, workflow)
    second_run = send_case(client, workflow)
    # Both were scheduled: no rule existed, and a later send is judged when it goes.
    assert task_of(second_run).output["recipient_status"] == "Scheduled"
    rule = make_rule(target=directory)
    first = Recipient.objects.get(workflow_run_id=first_run.pk)
    second = Recipient.objects.get(workflow_run_id=second_run.pk)
    _due(first)
    _due(second)
    recipients_sweep()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.get_status_display() == "Sent"
    assert second.get_status_display() == "Skipped"
    assert second.error == (
        f"frequency rule '{rule.name}' (directory Demo directory): "
        f"1 survey sent on {_day(first.sent_at)}"
    )
    # The run's recipient line carries the reason (the run itself had succeeded).
    lines = api_client.get(f"/api/v1/distributions/{second.distribution_id}/recipients/").json()[
        "results"
    ]
    assert [(line["status"], line["error"]) for line in lines] == [("Skipped", second.error)]
    rows = csv_rows(admin_user, f"/distributions/{second.distribution_id}/history.csv")
    assert rows[0]["Error"] == second.error
    assert OutboxMessage.objects.count() == 1


# --- Window boundaries: exactly N days ------------------------------------------------------


def _sent_line(client, workflow, *, at) -> Recipient:
    run = send_case(client, workflow)
    line = Recipient.objects.get(workflow_run_id=run.pk)
    Recipient.objects.filter(pk=line.pk).update(sent_at=at)
    line.refresh_from_db()
    return line


def _reason(line: Recipient, *, now) -> str | None:
    with transaction.atomic():
        return frequency_skip_reason(
            contact_id=line.contact_id,
            directory_id=line.contact.directory_id,
            mailing_list_id=line.distribution.mailing_list_id,
            survey_id=line.survey_id,
            now=now,
        )


def test_a_send_exactly_period_days_ago_is_outside_the_window(client, admin_user):
    directory, _, _, workflow = _setup(admin_user)
    now = timezone.now().replace(microsecond=0)
    line = _sent_line(client, workflow, at=now - timedelta(days=30))
    make_rule(target=directory)
    assert _reason(line, now=now) is None
    assert _reason(line, now=now - timedelta(seconds=1)) is not None  # a second younger
    assert _reason(line, now=now + timedelta(days=1)) is None


def test_one_second_inside_the_window_counts(client, admin_user):
    directory, _, _, workflow = _setup(admin_user)
    now = timezone.now().replace(microsecond=0)
    line = _sent_line(client, workflow, at=now - timedelta(days=30) + timedelta(seconds=1))
    make_rule(target=directory)
    assert _reason(line, now=now) == (
        f"frequency rule '{ONE_PER_30_DAYS}' (directory Demo directory): "
        f"1 survey sent on {_day(line.sent_at)}"
    )


def test_the_boundary_through_a_real_send(client, admin_user):
    directory, _, _, workflow = _setup(admin_user)
    make_rule(target=directory, name="1 per 2 days", period_days=2)
    first = send_case(client, workflow)
    line = Recipient.objects.get(workflow_run_id=first.pk)
    # 2 days and a minute ago: outside, the next survey goes.
    Recipient.objects.filter(pk=line.pk).update(
        sent_at=timezone.now() - timedelta(days=2, minutes=1)
    )
    assert _line_status(send_case(client, workflow)) == "Sent"
    # The one just sent is inside: the third is skipped.
    third = send_case(client, workflow)
    assert task_of(third).output["recipient_status"] == "Skipped"
    assert "'1 per 2 days'" in task_of(third).output["reason"]


def test_at_most_three_per_ninety_days(client, admin_user):
    directory, _, _, workflow = _setup(admin_user)
    make_rule(target=directory, name="At most 3 surveys per 90 days", max_sends=3, period_days=90)
    now = timezone.now()
    for days_ago in (80, 40, 1):
        _sent_line(client, workflow, at=now - timedelta(days=days_ago))
    fourth = send_case(client, workflow)
    assert task_of(fourth).output["reason"] == (
        "frequency rule 'At most 3 surveys per 90 days' (directory Demo directory): "
        f"3 surveys sent in the last 90 days, the last on {_day(now - timedelta(days=1))}"
    )
    # 91 days after the oldest one it no longer counts: room for one more.
    Recipient.objects.filter(sent_at__lt=now - timedelta(days=79)).update(
        sent_at=now - timedelta(days=91)
    )
    assert _line_status(send_case(client, workflow)) == "Sent"


# --- Scopes ---------------------------------------------------------------------------------


def test_a_mailing_list_rule_counts_sends_to_that_list_only(client, admin_user):
    directory, customers, survey, workflow = _setup(admin_user)
    partners = make_mailing_list(directory=directory, name="Partners")
    other_workflow = make_distribution_workflow(
        owner=admin_user, survey=survey, mailing_list=partners
    )
    make_rule(target=customers, scope="mailing_list", name="Customers: 1 a month")
    assert _line_status(send_case(client, other_workflow)) == "Sent"
    # The send to Partners does not count for Customers…
    assert _line_status(send_case(client, workflow)) == "Sent"
    # …but the one to Customers does.
    skipped = send_case(client, workflow)
    assert (
        task_of(skipped)
        .output["reason"]
        .startswith(
            "frequency rule 'Customers: 1 a month' (mailing list Customers): 1 survey sent on "
        )
    )
    # Partners has no rule.
    assert _line_status(send_case(client, other_workflow)) == "Sent"


def test_a_survey_rule_counts_that_survey_only(client, admin_user):
    _directory, mailing_list, survey, workflow = _setup(admin_user)
    other_survey = make_survey(owner=admin_user, name="Onboarding")
    other_workflow = make_distribution_workflow(
        owner=admin_user, survey=other_survey, mailing_list=mailing_list
    )
    make_rule(target=survey, scope="survey", name="NPS once a quarter", period_days=90)
    assert _line_status(send_case(client, workflow)) == "Sent"
    assert _line_status(send_case(client, other_workflow)) == "Sent"
    skipped = send_case(client, workflow)
    assert (
        task_of(skipped)
        .output["reason"]
        .startswith("frequency rule 'NPS once a quarter' (survey NPS): 1 survey sent on ")
    )


def test_rules_count_per_contact_and_disabled_rules_do_nothing(client, admin_user):
    directory, _, _, workflow = _setup(admin_user)
    rule = make_rule(target=directory)
    send_case(client, workflow)
    other_person = send_case(client, workflow, ContactEmail="ana.diaz@example.org")
    assert _line_status(other_person) == "Sent"
    rule.enabled = False
    rule.save()
    assert _line_status(send_case(client, workflow)) == "Sent"


# --- Reminders and thank-yous are exempt -----------------------------------------------------


def test_reminders_and_thank_yous_are_neither_limited_nor_counted(client, admin_user):
    directory, _, _, workflow = _setup(admin_user, reminder=REMINDER, thank_you=THANK_YOU)
    make_rule(target=directory, name="2 a month", max_sends=2)
    first = send_case(client, workflow)
    invitation = Recipient.objects.get(workflow_run_id=first.pk, kind=MessageKind.INVITATION)
    # The reminder goes although the invitation used one of the two sends…
    Recipient.objects.filter(pk=invitation.pk).update(
        sent_at=timezone.now() - timedelta(days=3, seconds=1)
    )
    assert reminders_sweep(now=timezone.now() + timedelta(days=4)) == 1
    reminder = Recipient.objects.get(kind=MessageKind.REMINDER)
    assert reminder.get_status_display() == "Sent"
    # …and so does the thank-you after the respondent finished.
    answer(invitation)
    thank_you = Recipient.objects.get(kind=MessageKind.THANK_YOU)
    assert thank_you.get_status_display() == "Sent"
    # Three messages went, but only one invitation counts: a second invitation goes.
    assert _line_status(send_case(client, workflow)) == "Sent"
    third = send_case(client, workflow)
    assert "'2 a month'" in task_of(third).output["reason"]


# --- Concurrency: exactly one wins ----------------------------------------------------------


@pytest.mark.parametrize("round_number", range(3))
def test_concurrent_sends_to_one_contact_under_one_per_30_days(client, admin_user, round_number):
    """Two invitations to the same person become due together and are sent by two
    workers at the same instant: the rule lets exactly one through (PostgreSQL
    serialises them on the contact's row lock, SQLite on its write lock)."""
    directory, _, _, workflow = _setup(admin_user, send_delay_minutes=30)
    send_case(client, workflow)
    send_case(client, workflow)
    make_rule(target=directory)
    lines = list(Recipient.objects.order_by("id"))
    Recipient.objects.update(scheduled_for=timezone.now() - timedelta(seconds=1))

    outcomes = run_in_threads(2, lambda index: recipient_send(recipient_id=lines[index].pk))

    assert sorted(outcomes) == ["sent", "skipped"]
    statuses = sorted(Recipient.objects.values_list("status", flat=True))
    assert statuses == ["sent", "skipped"]
    skipped = Recipient.objects.get(status="skipped")
    assert skipped.error.startswith(f"frequency rule '{ONE_PER_30_DAYS}' (directory Demo")
    assert OutboxMessage.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.skipif(not using_postgres(), reason="needs PostgreSQL (DATABASE_URL) for a real race")
def test_both_sends_find_the_rule_before_either_counts_and_one_still_wins(
    client, admin_user, monkeypatch
):
    """Forces the worst interleaving: both workers have found the rule before either
    has counted, and the first to count then dawdles before committing. Without the
    contact's row lock both would count zero and both would send. (On SQLite the
    IMMEDIATE transaction makes this interleaving impossible.)"""
    directory, _, _, workflow = _setup(admin_user, send_delay_minutes=30)
    send_case(client, workflow)
    send_case(client, workflow)
    make_rule(target=directory)
    lines = list(Recipient.objects.order_by("id").values_list("id", flat=True))
    Recipient.objects.update(scheduled_for=timezone.now() - timedelta(seconds=1))
    both_found = threading.Barrier(2)
    real_rules_for, real_recent_sends = frequency.rules_for, frequency.recent_sends

    def rules_then_wait(**kwargs):
        rules = real_rules_for(**kwargs)
        both_found.wait(timeout=10)
        return rules

    def count_then_dawdle(**kwargs):
        sends = real_recent_sends(**kwargs)
        time.sleep(0.3)
        return sends

    monkeypatch.setattr(frequency, "rules_for", rules_then_wait)
    monkeypatch.setattr(frequency, "recent_sends", count_then_dawdle)

    outcomes = run_in_threads(2, lambda index: recipient_send(recipient_id=lines[index]))

    assert sorted(outcomes) == ["sent", "skipped"]
    assert OutboxMessage.objects.count() == 1


def test_many_concurrent_sends_let_exactly_max_sends_through(client, admin_user):
    directory, _, _, workflow = _setup(admin_user, send_delay_minutes=30)
    for _ in range(6):
        send_case(client, workflow)
    make_rule(target=directory, name="2 a month", max_sends=2)
    lines = list(Recipient.objects.order_by("id").values_list("id", flat=True))
    Recipient.objects.update(scheduled_for=timezone.now() - timedelta(seconds=1))

    outcomes = run_in_threads(6, lambda index: recipient_send(recipient_id=lines[index]))

    assert sorted(outcomes) == ["sent", "sent", "skipped", "skipped", "skipped", "skipped"]
    assert OutboxMessage.objects.count() == 2


# --- Admin and API -------------------------------------------------------------------------


def test_frequency_rules_api_crud(api_client):
    directory = make_directory(name="Demo directory")
    created = api_client.post(
        "/api/v1/frequency-rules/",
        {
            "name": ONE_PER_30_DAYS,
            "scope": "directory",
            "target": directory.pk,
            "max_sends": 1,
            "period_days": 30,
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["target"] == directory.pk
    assert body["target_name"] == "Demo directory"
    assert body["enabled"] is True
    rule = FrequencyRule.objects.get()
    assert rule.directory == directory and rule.survey is None

    survey = make_survey(owner=make_user(), name="NPS")
    changed = api_client.patch(
        f"/api/v1/frequency-rules/{rule.pk}/",
        {"scope": "survey", "target": survey.pk, "period_days": 90},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    rule.refresh_from_db()
    assert (rule.scope, rule.survey, rule.directory, rule.period_days) == (
        "survey",
        survey,
        None,
        90,
    )
    listed = api_client.get("/api/v1/frequency-rules/", {"scope": "survey"}).json()
    assert [item["id"] for item in listed["results"]] == [rule.pk]
    assert api_client.delete(f"/api/v1/frequency-rules/{rule.pk}/").status_code == 204
    assert not FrequencyRule.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "directory", "target": 999999}, "target"),
        ({"scope": "galaxy"}, "scope"),
        ({"max_sends": 0}, "max_sends"),
        ({"period_days": 0}, "period_days"),
        ({"name": "  "}, "name"),
        ({"target": None}, "target"),
    ],
)
def test_frequency_rules_api_refuses_bad_fields(api_client, body, field):
    directory = make_directory()
    valid = {
        "name": ONE_PER_30_DAYS,
        "scope": "directory",
        "target": directory.pk,
        "max_sends": 1,
        "period_days": 30,
    }
    response = api_client.post("/api/v1/frequency-rules/", {**valid, **body}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_changing_the_scope_needs_its_target(api_client):
    rule = make_rule(target=make_directory())
    response = api_client.patch(
        f"/api/v1/frequency-rules/{rule.pk}/", {"scope": "survey"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"target": ["give the target of the new scope"]}


def test_frequency_rules_are_for_staff(client):
    user = make_user(username="analyst", is_staff=False)
    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/api/v1/frequency-rules/").status_code == 403
    assert APIClient().get("/api/v1/frequency-rules/").status_code in (401, 403)


def test_frequency_rules_admin(client, admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    directory = make_directory(name="Demo directory")
    make_rule(target=directory)
    listing = client.get("/admin/distributions/frequencyrule/")
    assert listing.status_code == 200
    assert ONE_PER_30_DAYS in listing.content.decode()
    # The form refuses a rule whose target does not match its scope.
    response = client.post(
        "/admin/distributions/frequencyrule/add/",
        {
            "name": "Broken",
            "enabled": "on",
            "max_sends": "1",
            "period_days": "30",
            "scope": "survey",
            "directory": str(directory.pk),
        },
    )
    assert response.status_code == 200
    assert "set exactly the target of the rule&#x27;s scope" in response.content.decode()
    assert FrequencyRule.objects.count() == 1


# --- The longest period -----------------------------------------------------------------------

TOO_LONG = "the period can be at most 3650 days (10 years); give a shorter period"


@pytest.mark.parametrize("period_days", [3651, 999999, 99999999999])
def test_the_api_refuses_a_period_over_ten_years(api_client, period_days):
    response = api_client.post(
        "/api/v1/frequency-rules/",
        {
            "name": ONE_PER_30_DAYS,
            "scope": "directory",
            "target": make_directory().pk,
            "max_sends": 1,
            "period_days": period_days,
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"period_days": [TOO_LONG]}
    assert not FrequencyRule.objects.exists()


@pytest.mark.parametrize("period_days", ["3651", "999999", "99999999999"])
def test_the_admin_refuses_a_period_over_ten_years(client, admin_user, period_days):
    admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    form = {
        "name": ONE_PER_30_DAYS,
        "enabled": "on",
        "max_sends": "1",
        "scope": "directory",
        "directory": str(make_directory().pk),
    }
    refused = client.post(
        "/admin/distributions/frequencyrule/add/", {**form, "period_days": period_days}
    )
    assert refused.status_code == 200
    assert TOO_LONG in refused.content.decode()
    assert not FrequencyRule.objects.exists()
    accepted = client.post(
        "/admin/distributions/frequencyrule/add/", {**form, "period_days": "3650"}
    )
    assert accepted.status_code == 302
    assert FrequencyRule.objects.get().period_days == 3650


def test_a_stored_period_over_the_limit_counts_as_ten_years(client, admin_user):
    # A rule saved before the limit existed (or written to the database directly).
    directory, _, _, workflow = _setup(admin_user)
    make_rule(target=directory, period_days=999999)
    first = send_case(client, workflow)
    assert _line_status(first) == "Sent"  # not "internal error: OverflowError"
    second = send_case(client, workflow)
    assert task_of(second).status == "succeeded"
    assert _line_status(second) == "Skipped"

    now = timezone.now().replace(microsecond=0)
    Recipient.objects.all().delete()
    inside = _sent_line(client, workflow, at=now - timedelta(days=3650) + timedelta(seconds=1))
    assert _reason(inside, now=now) == (
        f"frequency rule '{ONE_PER_30_DAYS}' (directory Demo directory): "
        f"1 survey sent on {_day(inside.sent_at)}"
    )
    Recipient.objects.filter(pk=inside.pk).update(sent_at=now - timedelta(days=3650))
    assert _reason(inside, now=now) is None
