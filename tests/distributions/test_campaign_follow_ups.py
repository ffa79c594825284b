"""Reminders and thank-yous: their own messages (lines of their own distributions),
rendered from the invitation's frozen snapshot, sent once, and shown in the CSV."""

import html
import re
from datetime import timedelta

import pytest
from django.db.models import F
from django_q.brokers import get_broker
from django_q.conf import Conf

from contacts.models import Contact
from contacts.services import contact_set_opt_out
from distributions import jobs
from distributions.campaign import reminder_consider, reminders_sweep, thank_you_create
from distributions.models import Distribution, MessageKind, OutboxMessage, Recipient
from distributions.services import recipient_send
from surveys.models import SurveyLink
from tests.distributions.builders import make_distribution_workflow, make_survey, send_case
from tests.distributions.campaign_support import REMINDER, THANK_YOU, answer, csv_rows

pytestmark = pytest.mark.django_db(transaction=True)


def _invite(client, admin_user, **task) -> Recipient:
    survey = task.pop("survey", None) or make_survey(owner=admin_user)
    send_case(client, make_distribution_workflow(owner=admin_user, survey=survey, **task))
    return Recipient.objects.get(kind=MessageKind.INVITATION)


def _sent_days_ago(line: Recipient, days: float) -> Recipient:
    """As if the invitation had gone `days` ago: every moment of the line and its link
    moves back by that much (the reminder's due time and the link's expiry too)."""
    shift = timedelta(days=days)
    Recipient.objects.filter(pk=line.pk).update(
        sent_at=F("sent_at") - shift,
        created_at=F("created_at") - shift,
        reminder_due_at=F("reminder_due_at") - shift,
    )
    SurveyLink.objects.filter(pk=line.link_id).update(
        created_at=F("created_at") - shift, expires_at=F("expires_at") - shift
    )
    line.refresh_from_db()
    return line


def _outbox(subject_start: str) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(subject__startswith=subject_start))


# --- Reminders ---------------------------------------------------------------------------


def test_a_reminder_goes_after_exactly_n_days_to_who_has_not_started(client, admin_user):
    invitation = _invite(client, admin_user, reminder=REMINDER)
    assert invitation.get_status_display() == "Sent"
    assert invitation.reminder_due_at is not None
    sent_at = invitation.sent_at

    assert reminders_sweep(now=sent_at + timedelta(days=3) - timedelta(seconds=1)) == 0
    assert not Recipient.objects.filter(kind=MessageKind.REMINDER).exists()
    assert reminders_sweep(now=sent_at + timedelta(days=3)) == 1

    reminder = Recipient.objects.get(kind=MessageKind.REMINDER)
    assert reminder.parent == invitation
    assert reminder.get_status_display() == "Sent"
    assert reminder.distribution.kind == MessageKind.REMINDER
    assert reminder.distribution.parent_id == invitation.distribution_id
    assert reminder.distribution.workflow_run_id == invitation.workflow_run_id
    (email,) = _outbox("A reminder")
    assert email.subject == "A reminder, Jonas"
    assert email.to == "jonas.berg@example.org"
    assert email.from_address.endswith("<surveys@example.com>")
    # The same personal link as the invitation: one response per person.
    assert f"http://testserver/s/{invitation.link.token}/" in email.html_body
    assert "Still time to answer" in email.html_body

    # Never twice: the sweep, the job and the send are all idempotent.
    invitation.refresh_from_db()
    assert invitation.reminder_due_at is None
    assert reminders_sweep(now=sent_at + timedelta(days=30)) == 0
    assert reminder_consider(line_id=invitation.pk, now=sent_at + timedelta(days=30)) == "not due"
    assert jobs.send_recipient(reminder.pk) == "already sent"
    assert len(_outbox("A reminder")) == 1


def test_a_reminder_is_rendered_from_the_invitations_frozen_snapshot(client, admin_user):
    invitation = _sent_days_ago(_invite(client, admin_user, reminder=REMINDER), 4)
    # The contact changed since the invitation (a later Salesforce update).
    Contact.objects.update(first_name="Johannes", embedded_data={"CaseNumber": "99999999"})
    reminders_sweep()
    (email,) = _outbox("A reminder")
    assert email.subject == "A reminder, Jonas"
    case_number = invitation.message.snapshot["embedded_data"]["CaseNumber"]
    assert f"Case {case_number}:" in email.html_body
    reminder = Recipient.objects.get(kind=MessageKind.REMINDER)
    assert reminder.first_name == "Jonas"


def test_no_reminder_for_who_opened_the_survey_when_not_started(client, admin_user):
    invitation = _sent_days_ago(_invite(client, admin_user, reminder=REMINDER), 4)
    answer(invitation, finish=False)  # opening the link counts as started
    assert reminders_sweep() == 0
    invitation.refresh_from_db()
    assert invitation.reminder_due_at is None
    assert not Recipient.objects.filter(kind=MessageKind.REMINDER).exists()


def test_not_finished_reminds_who_started_but_not_who_finished(client, admin_user):
    reminder = {**REMINDER, "when": "not_finished", "after_days": 2}
    survey = make_survey(owner=admin_user)
    started = _invite(client, admin_user, survey=survey, reminder=reminder)
    answer(started, finish=False)
    _sent_days_ago(started, 2.5)
    assert reminders_sweep() == 1
    assert Recipient.objects.get(kind=MessageKind.REMINDER).parent == started

    send_case(
        client,
        make_distribution_workflow(owner=admin_user, survey=survey, reminder=reminder),
        ContactEmail="ana.diaz@example.org",
    )
    finished = Recipient.objects.get(kind=MessageKind.INVITATION, email="ana.diaz@example.org")
    answer(finished)
    _sent_days_ago(finished, 2.5)
    assert reminders_sweep() == 0
    assert Recipient.objects.filter(kind=MessageKind.REMINDER).count() == 1


def test_no_reminder_once_the_link_expired(client, admin_user):
    invitation = _invite(client, admin_user, reminder=REMINDER, link_expiry_days=2)
    _sent_days_ago(invitation, 3)
    assert reminders_sweep() == 0
    assert not Recipient.objects.filter(kind=MessageKind.REMINDER).exists()


def test_a_reminder_waits_for_a_scheduled_invitation(client, admin_user):
    invitation = _invite(client, admin_user, reminder=REMINDER, send_delay_minutes=120)
    assert invitation.get_status_display() == "Scheduled"
    # First considered 3 days after the planned send…
    assert invitation.reminder_due_at == invitation.scheduled_for + timedelta(days=3)
    # …and if it has still not gone by then, looked at again later, never dropped.
    later = invitation.reminder_due_at + timedelta(minutes=1)
    assert reminder_consider(line_id=invitation.pk, now=later) == "invitation not sent yet"
    invitation.refresh_from_db()
    assert invitation.reminder_due_at > later


def test_a_reminder_to_who_started_in_the_meantime_is_skipped_at_send_time(
    client, admin_user, monkeypatch
):
    invitation = _sent_days_ago(_invite(client, admin_user, reminder=REMINDER), 4)
    monkeypatch.setattr(Conf, "SYNC", False)  # the reminder is queued, not yet sent
    broker = get_broker()
    broker.purge_queue()
    assert reminders_sweep() == 1
    broker.purge_queue()
    monkeypatch.setattr(Conf, "SYNC", True)
    answer(invitation, finish=False)
    reminder = Recipient.objects.get(kind=MessageKind.REMINDER)
    assert recipient_send(recipient_id=reminder.pk) == "skipped"
    reminder.refresh_from_db()
    assert reminder.get_status_display() == "Skipped"
    assert reminder.error.startswith("reminder not needed: the survey was already started on ")
    assert not _outbox("A reminder")


def test_an_opted_out_contact_gets_no_reminder(client, admin_user):
    invitation = _sent_days_ago(_invite(client, admin_user, reminder=REMINDER), 4)
    contact_set_opt_out(
        contact=invitation.contact, channel="email", opted_out=True, source="unsubscribe link"
    )
    reminders_sweep()
    reminder = Recipient.objects.get(kind=MessageKind.REMINDER)
    assert reminder.get_status_display() == "Opted Out"
    assert not _outbox("A reminder")


# --- Thank-yous ----------------------------------------------------------------------------


def test_a_thank_you_goes_once_after_finishing(client, admin_user):
    invitation = _invite(client, admin_user, thank_you=THANK_YOU)
    assert not Recipient.objects.filter(kind=MessageKind.THANK_YOU).exists()
    answer(invitation)
    thank_you = Recipient.objects.get(kind=MessageKind.THANK_YOU)
    assert thank_you.parent == invitation
    assert thank_you.get_status_display() == "Sent"
    assert thank_you.distribution.kind == MessageKind.THANK_YOU
    (email,) = _outbox("Thank you")
    assert email.subject == "Thank you, Jonas"
    case_number = invitation.message.snapshot["embedded_data"]["CaseNumber"]
    assert f"case {case_number}." in email.html_body
    # The signal's job run again (a redelivered job) does nothing.
    assert jobs.create_thank_you(invitation.link_id) == "already thanked"
    assert thank_you_create(link_id=invitation.link_id) == "already thanked"
    assert len(_outbox("Thank you")) == 1


def test_no_thank_you_before_finishing_or_when_none_is_configured(client, admin_user):
    invitation = _invite(client, admin_user, thank_you=THANK_YOU)
    answer(invitation, finish=False)
    assert thank_you_create(link_id=invitation.link_id) == "survey not finished"
    Recipient.objects.all().delete()
    plain = _invite(client, admin_user)
    answer(plain)
    assert not Recipient.objects.filter(kind=MessageKind.THANK_YOU).exists()
    assert not _outbox("Thank you")


def test_a_thank_you_goes_even_if_the_survey_was_closed_since(client, admin_user, monkeypatch):
    invitation = _invite(client, admin_user, thank_you=THANK_YOU)
    monkeypatch.setattr(Conf, "SYNC", False)
    broker = get_broker()
    broker.purge_queue()
    answer(invitation)  # the thank-you job is queued…
    broker.purge_queue()
    monkeypatch.setattr(Conf, "SYNC", True)
    invitation.survey.status = "inactive"  # …and the survey closes before it runs
    invitation.survey.save()
    assert thank_you_create(link_id=invitation.link_id) == "created"
    assert Recipient.objects.get(kind=MessageKind.THANK_YOU).get_status_display() == "Sent"


# --- CSV, API, admin -------------------------------------------------------------------------


def test_each_message_is_its_own_row_in_the_csv_and_the_api(client, admin_user, api_client):
    survey = make_survey(owner=admin_user)
    invitation = _sent_days_ago(
        _invite(client, admin_user, survey=survey, reminder=REMINDER, thank_you=THANK_YOU), 4
    )
    reminders_sweep()
    answer(invitation)
    reminder = Recipient.objects.get(kind=MessageKind.REMINDER)
    thank_you = Recipient.objects.get(kind=MessageKind.THANK_YOU)

    rows = csv_rows(admin_user, f"/surveys/{survey.pk}/distribution-history.csv")
    assert [(row["Distribution ID"], row["Status"]) for row in rows] == [
        (str(invitation.distribution_id), "Survey Finished"),
        (str(reminder.distribution_id), "Sent"),
        (str(thank_you.distribution_id), "Sent"),
    ]
    assert {row["Contact ID"] for row in rows} == {str(invitation.contact_id)}
    assert {row["Channel"] for row in rows} == {"email"}
    # Survey progress and the link stay on the invitation's row.
    assert rows[0]["Survey Link"] and rows[0]["Survey Finished At"]
    assert rows[1]["Survey Link"] == rows[1]["Survey Finished At"] == ""
    # The invitation distribution's own CSV holds the invitation only; ?kind= filters.
    own = csv_rows(admin_user, f"/distributions/{invitation.distribution_id}/history.csv")
    assert len(own) == 1
    only = csv_rows(admin_user, f"/surveys/{survey.pk}/distribution-history.csv?kind=reminder")
    assert [row["Distribution ID"] for row in only] == [str(reminder.distribution_id)]
    client.force_login(admin_user)
    bad = client.get(f"/surveys/{survey.pk}/distribution-history.csv?kind=nudge")
    assert bad.status_code == 400
    assert "unknown kind 'nudge'" in bad.content.decode()

    listed = api_client.get("/api/v1/distributions/", {"survey": survey.pk}).json()["results"]
    assert [(item["kind"], item["parent"]) for item in listed] == [
        ("thank_you", invitation.distribution_id),
        ("reminder", invitation.distribution_id),
        ("invitation", None),
    ]
    reminders_only = api_client.get("/api/v1/distributions/", {"kind": "reminder"}).json()
    assert [item["id"] for item in reminders_only["results"]] == [reminder.distribution_id]
    (line,) = api_client.get(
        f"/api/v1/distributions/{invitation.distribution_id}/recipients/"
    ).json()["results"]
    assert line["kind"] == "invitation"
    assert [(item["kind"], item["status"], item["id"]) for item in line["follow_ups"]] == [
        ("reminder", "Sent", reminder.pk),
        ("thank_you", "Sent", thank_you.pk),
    ]
    assert all(item["sent_at"] and item["provider_message_id"] for item in line["follow_ups"])


def test_the_admin_shows_follow_ups_on_the_line(client, admin_user):
    invitation = _invite(client, admin_user, thank_you=THANK_YOU)
    answer(invitation)
    admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    page = client.get(f"/admin/distributions/recipient/{invitation.pk}/change/")
    assert page.status_code == 200
    assert "follow-up messages (reminder, thank-you)" in page.content.decode().lower()
    assert "Thank you, Jonas" in page.content.decode()
    listing = client.get("/admin/distributions/distribution/?kind__exact=thank_you")
    assert listing.status_code == 200
    assert Distribution.objects.filter(kind="thank_you").count() == 1


def test_reports_count_invitations_reminders_and_thank_yous_apart(client, admin_user):
    invitation = _invite(client, admin_user, reminder=REMINDER, thank_you=THANK_YOU)
    reminders_sweep(now=invitation.sent_at + timedelta(days=4))
    answer(invitation)
    assert Recipient.objects.count() == 3
    client.force_login(admin_user)
    survey_id = invitation.survey_id

    page = client.get("/reports/distributions/", {"survey": survey_id}).content.decode()
    by_kind = page.split('id="by-kind"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td>", by_kind)
    assert rows == [("Invitation", "1"), ("Reminder", "1"), ("Thank-you", "1")]
    # Starting and finishing are the invitation's (its link): "—" for the follow-ups.
    invitation_row, *follow_up_rows = by_kind.split("<tr>")[2:]
    assert "—" not in invitation_row
    assert all(
        row.count('title="recorded on the invitation\'s line">—') == 2 for row in follow_up_rows
    )
    # Invitations alone: one line, sent and finished (100% of sent).
    only = client.get(
        "/reports/distributions/", {"survey": survey_id, "kind": "invitation"}
    ).content.decode()
    totals = only.split('id="totals"')[1].split("</table>")[0]
    assert re.search(r"<tbody><tr><td>1</td>", totals)
    assert '<option value="invitation" selected>Invitations</option>' in only
    # Its CSV download holds what the page counts: the invitations.
    link = re.search(r'id="download-survey-csv" href="([^"]+)"', only).group(1)
    assert link.endswith("&amp;kind=invitation")
    assert [row["Distribution ID"] for row in csv_rows(admin_user, html.unescape(link))] == [
        str(invitation.distribution_id)
    ]
    assert 'id="totals-note"' not in only
    # A kind the report does not know is said, and not applied.
    bad = client.get("/reports/distributions/", {"survey": survey_id, "kind": "nudge"})
    assert (
        "Message: &#x27;nudge&#x27; is not one of Invitations, Reminders, Thank-yous; "
        "not applied" in bad.content.decode()
    )
    assert 'id="totals-note"' in bad.content.decode()
    assert re.search(r"<tbody><tr><td>3</td>", bad.content.decode().split('id="totals"')[1])

    # The run's page and "Why not sent?" name the follow-ups: two lines to one address
    # must not read as one message sent twice.
    run_page = client.get(f"/reports/workflows/runs/{invitation.workflow_run_id}/").content.decode()
    assert f'Reminder <span class="muted">of line #{invitation.pk}</span>' in run_page
    assert f'Thank-you <span class="muted">of line #{invitation.pk}</span>' in run_page
    why = client.get("/reports/workflows/why/", {"q": invitation.to_address}).content.decode()
    assert f"reminder sent to {invitation.to_address}" in why
    assert f"thank-you sent to {invitation.to_address}" in why
    # The survey's Distributions tab names each message and the invitation it follows.
    tab = client.get(f"/surveys/{survey_id}/distributions/").content.decode()
    parent = invitation.distribution_id
    assert f'Reminder <span class="muted">of <a href="?distribution={parent}">#{parent}</a>' in tab
    assert f'Thank-you <span class="muted">of <a href="?distribution={parent}">' in tab
