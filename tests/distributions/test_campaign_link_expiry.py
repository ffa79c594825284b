"""Link expiry per distribution: the respondent's page says so, and the CSV says so in
its Error column (the Status stays the one reached: the contract's statuses are fixed)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from distributions.models import Recipient
from distributions.services import delivery_event_record, recipients_sweep
from surveys.models import SurveyLink
from tests.distributions.builders import make_distribution_workflow, make_survey, send_case
from tests.distributions.campaign_support import answer, csv_rows

pytestmark = pytest.mark.django_db(transaction=True)


def _expire(line: Recipient) -> SurveyLink:
    moment = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    SurveyLink.objects.filter(pk=line.link_id).update(expires_at=moment)
    return SurveyLink.objects.get(pk=line.link_id)


def _stamp(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_link_lasts_the_configured_days_then_shows_an_expired_page(client, admin_user):
    before = timezone.now()
    send_case(client, make_distribution_workflow(owner=admin_user, link_expiry_days=14))
    line = Recipient.objects.select_related("link").get()
    assert (
        before + timedelta(days=14) <= line.link.expires_at <= timezone.now() + timedelta(days=14)
    )
    respondent = Client()
    assert respondent.get(f"/s/{line.link.token}/").status_code == 200
    _expire(line)
    page = respondent.get(f"/s/{line.link.token}/")
    assert page.status_code == 410
    assert "This survey link has expired" in page.content.decode()
    refused = respondent.post(f"/s/{line.link.token}/", {"action": "finish"})
    assert refused.status_code == 410
    line.refresh_from_db()
    assert line.finished_at is None


def test_the_csv_shows_an_expired_link_in_the_error_column(client, admin_user):
    survey = make_survey(owner=admin_user)
    workflow = make_distribution_workflow(owner=admin_user, survey=survey, link_expiry_days=14)
    send_case(client, workflow, ContactEmail="never.opened@example.org")
    send_case(client, workflow, ContactEmail="started@example.org")
    send_case(client, workflow, ContactEmail="finished@example.org")
    send_case(client, workflow, ContactEmail="still.valid@example.org")
    send_case(client, workflow, ContactEmail="deferred@example.org")
    lines = {line.email: line for line in Recipient.objects.select_related("link")}
    answer(lines["started@example.org"], finish=False)
    answer(lines["finished@example.org"])
    delivery_event_record(
        provider="Outbox",
        event_id="deferred-1",
        message_id=lines["deferred@example.org"].provider_message_id,
        event_type="deferred",
        timestamp=timezone.now(),
        reason="mailbox full",
    )
    expired = {
        email: _expire(lines[email])
        for email in (
            "never.opened@example.org",
            "started@example.org",
            "finished@example.org",
            "deferred@example.org",
        )
    }

    rows = {
        row["Email"]: row
        for row in csv_rows(admin_user, f"/surveys/{survey.pk}/distribution-history.csv")
    }
    note = "link expired on " + _stamp(expired["never.opened@example.org"].expires_at)
    assert (
        rows["never.opened@example.org"]["Status"],
        rows["never.opened@example.org"]["Error"],
    ) == (
        "Sent",
        note,
    )
    assert rows["started@example.org"]["Status"] == "Survey Started"
    assert rows["started@example.org"]["Error"].startswith("link expired on ")
    # Finished before it expired: nothing to say.
    assert (rows["finished@example.org"]["Status"], rows["finished@example.org"]["Error"]) == (
        "Survey Finished",
        "",
    )
    assert rows["still.valid@example.org"]["Error"] == ""
    # An error already on the line is kept, the expiry added.
    assert rows["deferred@example.org"]["Status"] == "Soft Bounce"
    assert rows["deferred@example.org"]["Error"].startswith("mailbox full; link expired on ")
    # The API shows the expiry moment on each line.
    api = APIClient()
    api.force_authenticate(admin_user)
    distribution_id = lines["never.opened@example.org"].distribution_id
    (item,) = api.get(f"/api/v1/distributions/{distribution_id}/recipients/").json()["results"]
    assert item["link_expires_at"].startswith(
        expired["never.opened@example.org"].expires_at.strftime("%Y-%m-%dT%H:%M:%S")
    )


def test_the_days_count_from_the_planned_send(client, admin_user):
    send_case(
        client,
        make_distribution_workflow(owner=admin_user, link_expiry_days=14, send_delay_minutes=120),
    )
    line = Recipient.objects.select_related("link").get()
    assert line.link.expires_at == line.scheduled_for + timedelta(days=14)


def test_a_scheduled_invitation_whose_link_expired_meanwhile_is_skipped(client, admin_user):
    survey = make_survey(owner=admin_user)
    send_case(
        client,
        make_distribution_workflow(
            owner=admin_user, survey=survey, link_expiry_days=1, send_delay_minutes=60
        ),
    )
    line = Recipient.objects.get()
    link = _expire(line)
    Recipient.objects.filter(pk=line.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    recipients_sweep()
    line.refresh_from_db()
    assert line.get_status_display() == "Skipped"
    assert line.error == (
        f"the survey link expired on {link.expires_at:%Y-%m-%d %H:%M} UTC before the send"
    )
    (row,) = csv_rows(admin_user, f"/surveys/{survey.pk}/distribution-history.csv")
    assert (row["Status"], row["Error"]) == ("Skipped", line.error)
