"""Review of the analyst's side: the distribution history CSV, its filters, and the
Distributions tab showing what the CSV shows."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from distributions.csv_export import COLUMNS
from distributions.models import Recipient
from distributions.services import delivery_event_record, distribution_create
from surveys.models import SurveyLink
from tests.distributions.builders import make_distribution_workflow, make_survey, send_case
from tests.distributions.campaign_support import answer
from tests.factories import make_contact

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(response) -> list[dict]:
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    reader = csv.reader(io.StringIO(body.removeprefix("\ufeff")))
    header = next(reader)
    assert header == list(COLUMNS)
    return [dict(zip(header, row, strict=True)) for row in reader]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_time_zone_offset_typed_unencoded_in_the_query_string_is_understood(admin_user):
    """`curl '…/history.csv?since=2026-11-27T10:00:00+02:00'`: the query string turns
    the "+" into a space; the filter must still read it as +02:00, not refuse it."""
    survey = make_survey(owner=admin_user)
    distribution = distribution_create(survey=survey, channel="email")
    early, late = (make_contact() for _ in range(2))
    for contact, created in (
        (early, datetime(2026, 11, 27, 7, 30, tzinfo=UTC)),  # 09:30 at +02:00
        (late, datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),  # 10:30 at +02:00
    ):
        line = Recipient.objects.create(
            distribution=distribution, survey=survey, channel="email", contact=contact
        )
        Recipient.objects.filter(pk=line.pk).update(created_at=created)

    client = _client(admin_user)
    path = f"/distributions/{distribution.pk}/history.csv"
    encoded = _rows(client.get(path, {"since": "2026-11-27T10:00:00+02:00"}))
    typed = client.get(f"{path}?since=2026-11-27T10:00:00+02:00")
    assert [row["Contact ID"] for row in _rows(typed)] == [str(late.pk)]
    assert [row["Contact ID"] for row in encoded] == [str(late.pk)]
    until = _rows(client.get(f"{path}?until=2026-11-27T10:00+0200"))
    assert [row["Contact ID"] for row in until] == [str(early.pk)]


def test_the_distributions_tab_shows_the_error_the_csv_shows(client, admin_user):
    """A line whose personal link expired unfinished: the CSV's Error says so, and so
    must the recipients table of the Distributions tab, which admins read beside it."""
    survey = make_survey(owner=admin_user)
    workflow = make_distribution_workflow(owner=admin_user, survey=survey, link_expiry_days=7)
    send_case(client, workflow, ContactEmail="expired@example.org")
    send_case(client, workflow, ContactEmail="bounced@example.org")
    send_case(client, workflow, ContactEmail="answered@example.org")
    lines = {line.email: line for line in Recipient.objects.select_related("link")}
    answer(lines["answered@example.org"])
    delivery_event_record(
        provider="Outbox",
        event_id="deferred-1",
        message_id=lines["bounced@example.org"].provider_message_id,
        event_type="deferred",
        timestamp=timezone.now(),
        reason="mailbox full",
    )
    SurveyLink.objects.update(expires_at=timezone.now() - timedelta(hours=1))

    admin = _client(admin_user)
    rows = {
        row["Email"]: row
        for row in _rows(admin.get(f"/surveys/{survey.pk}/distribution-history.csv"))
    }
    assert rows["expired@example.org"]["Error"].startswith("link expired on ")
    assert rows["bounced@example.org"]["Error"].startswith("mailbox full; link expired on ")
    assert rows["answered@example.org"]["Error"] == ""
    for email, line in lines.items():
        page = admin.get(
            f"/surveys/{survey.pk}/distributions/", {"distribution": line.distribution_id}
        )
        html = page.content.decode()
        error = rows[email]["Error"]
        if error:
            assert f'<td class="error">{error}</td>' in html, email
        else:
            assert '<td class="error">' not in html, email
