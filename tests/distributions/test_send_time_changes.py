"""What an admin changes while a send waits is honoured when it goes: a contact deleted
from the directory gets nothing more (no delayed invitation, reminder or thank-you),
and a sender address no longer verified sends nothing more (a Failed line saying so)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from distributions.campaign import reminders_sweep, thank_you_create
from distributions.models import MessageKind, OutboxMessage, Recipient, VerifiedSender
from distributions.services import recipients_sweep
from tests.distributions.builders import SENDER, make_distribution_workflow, send_case
from tests.distributions.campaign_support import REMINDER, THANK_YOU, answer, csv_rows

pytestmark = pytest.mark.django_db(transaction=True)


def _due_now(line: Recipient) -> None:
    Recipient.objects.filter(pk=line.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))


def _delayed_invitation(client, admin_user, **task) -> Recipient:
    send_case(client, make_distribution_workflow(owner=admin_user, send_delay_minutes=60, **task))
    line = Recipient.objects.get()
    assert line.get_status_display() == "Scheduled"
    return line


# --- A deleted contact ------------------------------------------------------------------


def test_a_contact_deleted_before_a_delayed_send_gets_nothing(client, admin_user, api_client):
    line = _delayed_invitation(client, admin_user)
    assert api_client.delete(f"/api/v1/contacts/{line.contact_id}/").status_code == 204
    _due_now(line)
    recipients_sweep()
    line.refresh_from_db()
    assert line.get_status_display() == "Skipped"
    assert line.error == "the contact was deleted from the directory before the send"
    assert not OutboxMessage.objects.exists()
    # The history keeps who it was for, and says why nothing went.
    (row,) = csv_rows(admin_user, f"/surveys/{line.survey_id}/distribution-history.csv")
    assert (row["Status"], row["Email"]) == ("Skipped", "jonas.berg@example.org")
    assert row["Error"] == line.error


def test_a_deleted_contact_is_neither_reminded_nor_thanked(client, admin_user, api_client):
    send_case(
        client,
        make_distribution_workflow(owner=admin_user, reminder=REMINDER, thank_you=THANK_YOU),
    )
    invitation = Recipient.objects.get()
    assert invitation.get_status_display() == "Sent"
    assert api_client.delete(f"/api/v1/contacts/{invitation.contact_id}/").status_code == 204

    assert reminders_sweep(now=invitation.sent_at + timedelta(days=4)) == 0
    invitation.refresh_from_db()
    assert invitation.reminder_due_at is None
    # The respondent may still answer through the link; no thank-you follows.
    answer(invitation)
    assert thank_you_create(link_id=invitation.link_id) == (
        "no thank-you: the contact was deleted from the directory"
    )
    assert not Recipient.objects.exclude(kind=MessageKind.INVITATION).exists()
    assert OutboxMessage.objects.count() == 1


# --- A sender no longer verified -----------------------------------------------------------


def _unverify(api_client) -> None:
    sender = VerifiedSender.objects.get(address=SENDER)
    response = api_client.patch(
        f"/api/v1/verified-senders/{sender.pk}/", {"verified": False}, format="json"
    )
    assert response.status_code == 200, response.content


def test_a_delayed_send_from_a_sender_no_longer_verified_fails_saying_so(
    client, admin_user, api_client
):
    line = _delayed_invitation(client, admin_user)
    _unverify(api_client)
    _due_now(line)
    recipients_sweep()
    line.refresh_from_db()
    assert line.get_status_display() == "Failed"
    assert line.error == f"sender address {SENDER} is no longer verified"
    assert not OutboxMessage.objects.exists()
    client.force_login(admin_user)
    page = client.get(f"/reports/workflows/runs/{line.workflow_run_id}/").content.decode()
    assert f"sender address {SENDER} is no longer verified" in page


def test_reminders_and_thank_yous_stop_when_the_sender_is_no_longer_verified(
    client, admin_user, api_client
):
    send_case(
        client,
        make_distribution_workflow(owner=admin_user, reminder=REMINDER, thank_you=THANK_YOU),
    )
    invitation = Recipient.objects.get()
    _unverify(api_client)
    reminders_sweep(now=invitation.sent_at + timedelta(days=4))
    answer(invitation)
    follow_ups = Recipient.objects.exclude(kind=MessageKind.INVITATION).order_by("kind")
    assert [(line.kind, line.get_status_display()) for line in follow_ups] == [
        (MessageKind.REMINDER, "Failed"),
        (MessageKind.THANK_YOU, "Failed"),
    ]
    assert {line.error for line in follow_ups} == {f"sender address {SENDER} is no longer verified"}
    assert OutboxMessage.objects.count() == 1  # the invitation, sent before
    # Verified again: the next invitation goes.
    VerifiedSender.objects.filter(address=SENDER).update(verified=True)
    send_case(client, make_distribution_workflow(owner=admin_user))
    assert OutboxMessage.objects.count() == 2
