"""Quiet hours: the pure rule (across midnight, across time zones and DST), then one line
deferred end to end and sent by the sweeper when due."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from distributions.channels import sms_memory
from distributions.models import Recipient
from distributions.quiet_hours import QuietHours, inside, next_allowed, resolve_time_zone
from distributions.services import recipient_send, recipients_sweep

NIGHT_MADRID = QuietHours(start=time(22, 0), end=time(8, 0), time_zone="Europe/Madrid")


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- The pure rule ------------------------------------------------------------------------


def test_outside_the_window_nothing_moves():
    noon = at(2026, 1, 15, 11, 0)  # 12:00 in Madrid (CET, UTC+1)
    assert not inside(noon, NIGHT_MADRID)
    assert next_allowed(noon, NIGHT_MADRID) == noon


def test_late_evening_waits_for_the_next_morning_across_midnight():
    evening = at(2026, 1, 15, 22, 30)  # 23:30 in Madrid
    assert next_allowed(evening, NIGHT_MADRID) == at(2026, 1, 16, 7, 0)  # 08:00 CET


def test_early_morning_waits_for_the_same_morning():
    small_hours = at(2026, 1, 16, 2, 0)  # 03:00 in Madrid
    assert next_allowed(small_hours, NIGHT_MADRID) == at(2026, 1, 16, 7, 0)


def test_the_window_end_is_exclusive_and_the_start_inclusive():
    assert next_allowed(at(2026, 1, 16, 7, 0), NIGHT_MADRID) == at(2026, 1, 16, 7, 0)
    assert next_allowed(at(2026, 1, 15, 21, 0), NIGHT_MADRID) == at(2026, 1, 16, 7, 0)


def test_the_same_moment_is_quiet_in_one_time_zone_and_not_in_another():
    moment = at(2026, 1, 15, 22, 30)  # 23:30 Madrid, 17:30 New York, 07:30 Tokyo (next day)
    new_york = QuietHours(start=time(22, 0), end=time(8, 0), time_zone="America/New_York")
    tokyo = QuietHours(start=time(22, 0), end=time(8, 0), time_zone="Asia/Tokyo")
    assert next_allowed(moment, new_york) == moment
    # 07:30 in Tokyo is inside: it waits half an hour, till 08:00 Tokyo (23:00 UTC).
    assert next_allowed(moment, tokyo) == at(2026, 1, 15, 23, 0)


def test_daylight_saving_change_during_the_night():
    # Europe/Madrid springs forward on 2026-03-29 at 02:00 → 03:00: 08:00 that morning
    # is 06:00 UTC, not 07:00.
    before_change = at(2026, 3, 28, 23, 0)  # 00:00 CET
    assert next_allowed(before_change, NIGHT_MADRID) == at(2026, 3, 29, 6, 0)


def test_a_daytime_window_and_no_window():
    lunch = QuietHours(start=time(12, 0), end=time(14, 0), time_zone="UTC")
    assert next_allowed(at(2026, 1, 15, 13, 0), lunch) == at(2026, 1, 15, 14, 0)
    assert next_allowed(at(2026, 1, 15, 15, 0), lunch) == at(2026, 1, 15, 15, 0)
    same = QuietHours(start=time(9, 0), end=time(9, 0), time_zone="UTC")
    assert next_allowed(at(2026, 1, 15, 9, 0), same) == at(2026, 1, 15, 9, 0)
    assert next_allowed(at(2026, 1, 15, 9, 0), None) == at(2026, 1, 15, 9, 0)


def test_unknown_time_zones_fall_back():
    assert resolve_time_zone("Mars/Olympus", "Europe/Madrid") == "Europe/Madrid"
    assert resolve_time_zone("", None) == "UTC"


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        next_allowed(datetime(2026, 1, 15, 23, 0), NIGHT_MADRID)


# --- End to end: a line Scheduled for the window's end, then sent by the sweeper ---------


@pytest.mark.django_db(transaction=True)
def test_a_text_inside_quiet_hours_is_scheduled_then_sent_when_due(
    client, admin_user, sms_memory_backend
):
    from tests.distributions.sms_builders import make_sms_workflow, send_sms_case

    now = timezone.now()
    local_now = now.astimezone(UTC)
    # A window around "now" in the contact's zone (UTC here): from an hour ago to in two
    # hours, so the send falls inside whatever time the test runs.
    start = (local_now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local_now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    workflow, mailing_list = make_sms_workflow(owner=admin_user, with_list=True)
    directory = mailing_list.directory
    directory.quiet_hours_start, directory.quiet_hours_end = start, end
    directory.default_time_zone = "UTC"
    directory.save()

    run = send_sms_case(client, workflow)
    task = run.task_runs.get()
    assert task.status == "succeeded", task.error
    line = Recipient.objects.get()
    assert line.get_status_display() == "Scheduled"
    assert line.scheduled_for is not None
    expected = next_allowed(now, QuietHours(start=start, end=end, time_zone="UTC"))
    assert abs((line.scheduled_for - expected).total_seconds()) < 120
    assert "deferred by quiet hours" in task.output["quiet_hours"]
    assert task.output["recipient_status"] == "Scheduled"
    assert sms_memory.outbox == []  # deferred, not dropped and not sent

    # Not due yet: the sweeper leaves it. Then the planned time comes (the window is
    # over: moved into the past here), and the sweeper sends it.
    assert recipients_sweep(now=now) == 0
    directory.quiet_hours_start = (local_now - timedelta(hours=3)).time()
    directory.quiet_hours_end = (local_now - timedelta(hours=2)).time()
    directory.save()
    Recipient.objects.filter(pk=line.pk).update(scheduled_for=now - timedelta(seconds=1))
    assert recipients_sweep() == 1
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert [sent.to for sent in sms_memory.outbox] == ["+14155550100"]


@pytest.mark.django_db(transaction=True)
def test_a_due_line_found_inside_quiet_hours_at_send_time_is_deferred_again(
    client, admin_user, sms_memory_backend
):
    from tests.distributions.sms_builders import make_sms_workflow, send_sms_case

    workflow, mailing_list = make_sms_workflow(owner=admin_user, with_list=True)
    run = send_sms_case(client, workflow)
    line = Recipient.objects.get()
    assert line.get_status_display() == "Sent", run.task_runs.get().error
    # Back to waiting and due now, while a window covering "now" is on.
    directory = mailing_list.directory
    now = timezone.now().astimezone(UTC)
    directory.quiet_hours_start = (now - timedelta(hours=1)).time()
    directory.quiet_hours_end = (now + timedelta(hours=1)).time()
    directory.save()
    Recipient.objects.filter(pk=line.pk).update(
        status="scheduled",
        provider_message_id="",
        sent_at=None,
        scheduled_for=None,
        sending_started_at=None,
    )
    assert recipient_send(recipient_id=line.pk) == "deferred by quiet hours"
    line.refresh_from_db()
    assert line.get_status_display() == "Scheduled"
    assert line.scheduled_for > timezone.now()
    assert "deferred by quiet hours" in line.error


# --- Email too (SPEC F4: "a send that falls inside them is deferred") --------------------


@pytest.mark.django_db(transaction=True)
def test_an_email_inside_quiet_hours_is_scheduled_then_sent_when_due(client, admin_user):
    from distributions.models import OutboxMessage
    from tests.distributions.builders import make_distribution_workflow, send_case
    from tests.factories import make_mailing_list

    now = timezone.now().astimezone(UTC)
    mailing_list = make_mailing_list()
    directory = mailing_list.directory
    directory.quiet_hours_start = (now - timedelta(hours=1)).time().replace(microsecond=0)
    directory.quiet_hours_end = (now + timedelta(hours=2)).time().replace(microsecond=0)
    directory.default_time_zone = "UTC"
    directory.save()
    workflow = make_distribution_workflow(owner=admin_user, mailing_list=mailing_list)

    task = send_case(client, workflow).task_runs.get()
    assert task.status == "succeeded", task.error
    assert "deferred by quiet hours" in task.output["quiet_hours"]
    line = Recipient.objects.get()
    assert line.get_status_display() == "Scheduled"
    assert line.scheduled_for > timezone.now() + timedelta(minutes=90)
    assert "deferred by quiet hours" in line.error
    assert not OutboxMessage.objects.exists()

    # Due while a window is on (moved): deferred again at send time, never dropped.
    Recipient.objects.filter(pk=line.pk).update(scheduled_for=None)
    assert recipient_send(recipient_id=line.pk) == "deferred by quiet hours"
    # The window over: the sweeper sends it.
    directory.quiet_hours_start = (now - timedelta(hours=3)).time()
    directory.quiet_hours_end = (now - timedelta(hours=2)).time()
    directory.save()
    Recipient.objects.filter(pk=line.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    assert recipients_sweep() == 1
    line.refresh_from_db()
    assert line.get_status_display() == "Sent"
    assert OutboxMessage.objects.get().to == "jonas.berg@example.org"


@pytest.mark.django_db
def test_quiet_hours_need_both_ends(api_client, client):
    from contacts.models import Directory
    from tests.factories import make_directory, make_user

    answer = api_client.post(
        "/api/v1/directories/", {"name": "Half", "quiet_hours_start": "21:00"}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json() == {"quiet_hours_end": ["set both ends of the quiet hours, or neither"]}
    directory = make_directory(quiet_hours_start=time(21, 0), quiet_hours_end=time(8, 0))
    answer = api_client.patch(
        f"/api/v1/directories/{directory.pk}/", {"quiet_hours_start": None}, format="json"
    )
    assert answer.json() == {"quiet_hours_start": ["set both ends of the quiet hours, or neither"]}

    client.force_login(make_user(username="root", is_superuser=True))
    page = client.post(
        f"/admin/contacts/directory/{directory.pk}/change/",
        {
            "name": directory.name,
            "default_country": "US",
            "match_rules": '["email", "external_data_reference"]',
            "default_time_zone": "UTC",
            "quiet_hours_start": "",
            "quiet_hours_end": "08:00",
            "working_hours_start": "09:00",
            "working_hours_end": "17:00",
            "working_days": "[1, 2, 3, 4, 5]",
        },
    )
    assert page.status_code == 200
    assert "set both ends of the quiet hours, or neither" in page.content.decode()
    assert Directory.objects.get(pk=directory.pk).quiet_hours_start == time(21, 0)
