"""Send delay and "at the next working hour": Scheduled lines kept in the database,
sent by the sweeper when due — also after the queue was lost — and skipped when the
survey was closed in the meantime."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf

from contacts.models import Contact
from distributions.models import OutboxMessage, Recipient
from distributions.services import recipient_send, recipients_sweep
from distributions.working_hours import WorkingHours, next_working_moment, time_zone_or_utc
from surveys.models import SurveyStatus
from tests.distributions.builders import (
    distribute_task,
    make_distribution_workflow,
    make_sender,
    make_survey,
    send_case,
    task_of,
)
from tests.distributions.campaign_support import csv_rows
from tests.factories import make_directory, make_mailing_list

pytestmark = pytest.mark.django_db(transaction=True)


def _definition(task: dict) -> dict:
    return {
        "name": "Survey email",
        "event": {"type": "salesforce_outbound_message", "object": "Case"},
        "tasks": [task],
    }


# --- Send delay: state in the database, survives a restart ------------------------------


def test_a_delayed_line_survives_losing_the_queue_and_is_sent_once_when_due(
    client, admin_user, monkeypatch
):
    run = send_case(client, make_distribution_workflow(owner=admin_user, send_delay_minutes=90))
    line = Recipient.objects.get()
    assert line.get_status_display() == "Scheduled"
    assert task_of(run).output["scheduled_for"] == line.scheduled_for.isoformat()
    # Nothing is in the queue for a scheduled line: its state is the row.
    assert line.enqueued_at is None

    assert recipients_sweep() == 0  # not due
    # Time passes (the planned moment is reached); through the real broker the
    # sweeper queues the send…
    _time_passes(line, scheduled_for=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(Conf, "SYNC", False)
    broker = get_broker()
    broker.purge_queue()
    assert recipients_sweep() == 1
    assert broker.queue_size() == 1
    # …and then the worker restarts and the queue is gone (Redis keeps no receipts).
    broker.purge_queue()
    assert broker.queue_size() == 0
    line.refresh_from_db()
    assert line.get_status_display() == "Scheduled"
    assert not OutboxMessage.objects.exists()
    assert recipients_sweep() == 0  # still believed queued

    # Once its job is overdue the sweeper queues it again; the job sends it once.
    monkeypatch.setattr(Conf, "SYNC", True)
    stuck = timedelta(seconds=settings.XMFLOWS_STUCK_AFTER_SECONDS + 1)
    _time_passes(line, enqueued_at=timezone.now() - stuck)
    assert recipients_sweep() == 1
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert recipient_send(recipient_id=line.pk) == "already sent"
    assert recipients_sweep(now=timezone.now() + stuck) == 0
    assert OutboxMessage.objects.count() == 1


def _time_passes(line: Recipient, **moments) -> None:
    Recipient.objects.filter(pk=line.pk).update(**moments)


def test_the_csv_shows_a_scheduled_line_until_it_goes(client, admin_user, api_client):
    survey = make_survey(owner=admin_user)
    send_case(
        client, make_distribution_workflow(owner=admin_user, survey=survey, send_delay_minutes=30)
    )
    (row,) = csv_rows(admin_user, f"/surveys/{survey.pk}/distribution-history.csv")
    assert (row["Status"], row["Sent At"], row["Error"]) == ("Scheduled", "", "")
    line = Recipient.objects.get()
    _time_passes(line, scheduled_for=timezone.now() - timedelta(seconds=1))
    recipients_sweep()
    (row,) = csv_rows(admin_user, f"/surveys/{survey.pk}/distribution-history.csv")
    assert row["Status"] == "Sent" and row["Sent At"]


def test_a_survey_deactivated_before_the_send_time_skips_the_line(client, admin_user, api_client):
    survey = make_survey(owner=admin_user)
    run = send_case(
        client, make_distribution_workflow(owner=admin_user, survey=survey, send_delay_minutes=60)
    )
    assert api_client.post(f"/api/v1/surveys/{survey.pk}/deactivate/").status_code == 200
    line = Recipient.objects.get()
    _time_passes(line, scheduled_for=timezone.now() - timedelta(seconds=1))
    recipients_sweep()
    line.refresh_from_db()
    assert (line.get_status_display(), line.error) == ("Skipped", "survey is not active")
    assert not OutboxMessage.objects.exists()
    (row,) = csv_rows(admin_user, f"/surveys/{survey.pk}/distribution-history.csv")
    assert (row["Status"], row["Error"]) == ("Skipped", "survey is not active")
    # The workflow report shows the run (which succeeded: the line was scheduled) and
    # the line with its reason.
    client.force_login(admin_user)
    page = client.get(f"/reports/workflows/runs/{run.pk}/").content.decode()
    assert "survey is not active" in page


# --- At the next working hour ------------------------------------------------------------


def _working_day_in_three_days(zone_name: str) -> int:
    return (timezone.now().astimezone(time_zone_or_utc(zone_name)) + timedelta(days=3)).isoweekday()


def test_next_working_hour_waits_in_the_contacts_time_zone(client, admin_user):
    directory = make_directory(default_time_zone="America/New_York")
    # One working day, three days from now in Tokyo: the send must wait for its 09:00.
    directory.working_days = [_working_day_in_three_days("Asia/Tokyo")]
    directory.save()
    mailing_list = make_mailing_list(directory=directory)
    Contact.objects.create(
        directory=directory,
        first_name="Jonas",
        last_name="Berg",
        email="jonas.berg@example.org",
        time_zone="Asia/Tokyo",
    )
    before = timezone.now()
    run = send_case(
        client,
        make_distribution_workflow(
            owner=admin_user, mailing_list=mailing_list, send_at_next_working_hour=True
        ),
    )
    line = Recipient.objects.get()
    hours = WorkingHours(days=frozenset(directory.working_days))
    expected = next_working_moment(before, zone=time_zone_or_utc("Asia/Tokyo"), hours=hours)
    assert line.get_status_display() == "Scheduled"
    assert line.scheduled_for == expected
    local = line.scheduled_for.astimezone(time_zone_or_utc("Asia/Tokyo"))
    assert (local.hour, local.minute) == (9, 0)
    assert task_of(run).output["scheduled_for"] == expected.isoformat()
    assert recipients_sweep(now=expected - timedelta(seconds=1)) == 0
    assert recipients_sweep(now=expected) == 1  # due at that moment, not before


def test_next_working_hour_uses_the_directory_time_zone_and_hours_when_the_contact_has_none(
    client, admin_user
):
    directory = make_directory(default_time_zone="America/New_York")
    directory.working_days = [_working_day_in_three_days("America/New_York")]
    directory.working_hours_start = directory.working_hours_start.replace(hour=10, minute=30)
    directory.save()
    mailing_list = make_mailing_list(directory=directory)
    send_case(
        client,
        make_distribution_workflow(
            owner=admin_user,
            mailing_list=mailing_list,
            send_at_next_working_hour=True,
            send_delay_minutes=15,
        ),
    )
    line = Recipient.objects.get()
    local = line.scheduled_for.astimezone(time_zone_or_utc("America/New_York"))
    assert local.isoweekday() == directory.working_days[0]
    assert (local.hour, local.minute) == (10, 30)


def test_a_send_inside_working_hours_goes_at_once(client, admin_user):
    directory = make_directory()
    directory.working_days = [1, 2, 3, 4, 5, 6, 7]
    directory.working_hours_start = directory.working_hours_start.replace(hour=0, minute=0)
    directory.working_hours_end = directory.working_hours_end.replace(hour=23, minute=59)
    directory.save()
    now_local = timezone.now().astimezone(time_zone_or_utc(directory.default_time_zone))
    if now_local.hour == 23 and now_local.minute == 59:
        pytest.skip("the one minute of the day outside these working hours")
    send_case(
        client,
        make_distribution_workflow(
            owner=admin_user,
            mailing_list=make_mailing_list(directory=directory),
            send_at_next_working_hour=True,
        ),
    )
    line = Recipient.objects.get()
    assert line.get_status_display() == "Sent"
    assert line.scheduled_for is None


# --- Configuration: 400 per field ----------------------------------------------------------


def test_campaign_options_are_validated_per_field(api_client, admin_user):
    task = distribute_task(
        survey=make_survey(owner=admin_user),
        mailing_list=make_mailing_list(),
        send_at_next_working_hour="sometimes",
        reminder={"after_days": 0, "when": "whenever", "subject": "", "body": "x"},
        thank_you={"subject": "Thanks"},
    )
    response = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert response.status_code == 400
    errors = response.json()["tasks"][0]
    assert "send_at_next_working_hour" in errors
    assert "after_days" in errors["reminder"]
    assert "when" in errors["reminder"]


def test_an_email_follow_up_needs_a_subject_and_a_body(api_client, admin_user):
    make_sender()
    task = distribute_task(
        survey=make_survey(owner=admin_user),
        mailing_list=make_mailing_list(),
        reminder={"after_days": 3, "subject": "", "body": "<p>Hi</p>"},
        thank_you={"subject": "Thanks"},
    )
    response = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert response.status_code == 400
    errors = response.json()["tasks"][0]
    assert errors["reminder"] == {"subject": ["a reminder by email needs a subject"]}
    assert errors["thank_you"] == {"body": ["a thank-you by email needs a body"]}


def test_campaign_options_round_trip_through_export(api_client, admin_user):
    make_sender()
    task = distribute_task(
        survey=make_survey(owner=admin_user),
        mailing_list=make_mailing_list(),
        send_at_next_working_hour=True,
        link_expiry_days=14,
        reminder={"after_days": 3, "subject": "Reminder", "body": "<p>${l://SurveyURL}</p>"},
        thank_you={"subject": "Thanks", "body": "<p>Thank you</p>"},
    )
    created = api_client.post("/api/v1/workflows/", _definition(task), format="json")
    assert created.status_code == 201, created.json()
    saved = api_client.get(f"/api/v1/workflows/{created.json()['id']}/export/").json()["tasks"][0]
    assert saved["send_at_next_working_hour"] is True
    assert saved["link_expiry_days"] == 14
    assert saved["reminder"]["after_days"] == 3
    assert saved["reminder"]["when"] == "not_started"  # the default
    assert saved["thank_you"]["subject"] == "Thanks"


def test_directory_working_hours_are_validated(api_client):
    directory = make_directory()
    url = f"/api/v1/directories/{directory.pk}/"
    response = api_client.patch(
        url, {"working_hours_start": "18:00", "working_hours_end": "09:00"}, format="json"
    )
    assert response.status_code == 400
    assert "working_hours_end" in response.json()
    response = api_client.patch(url, {"working_days": [0, 8]}, format="json")
    assert response.status_code == 400
    assert "working_days" in response.json()
    response = api_client.patch(
        url, {"working_hours_start": "08:30", "working_days": [1, 3, 5]}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["working_hours_start"] == "08:30:00"
    assert response.json()["working_days"] == [1, 3, 5]


def test_an_inactive_survey_still_fails_a_delayed_task_at_once(client, admin_user):
    # Deciding early where nothing can change: a survey closed at event time fails the
    # task (SPEC F4) even with a delay; only a closing after scheduling skips the line.
    survey = make_survey(owner=admin_user, status=SurveyStatus.INACTIVE)
    run = send_case(
        client, make_distribution_workflow(owner=admin_user, survey=survey, send_delay_minutes=60)
    )
    assert task_of(run).error == "survey is not active"
    assert not Recipient.objects.exists()
