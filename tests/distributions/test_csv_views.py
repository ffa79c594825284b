"""Distribution history CSV downloads (CONTRACT.md §6): columns, filters, auth, streaming."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from distributions.csv_export import COLUMNS
from distributions.models import Recipient
from distributions.services import distribution_create
from surveys.models import SurveyCollaborator
from tests.conftest import drain
from tests.distributions.builders import make_survey
from tests.factories import make_contact, make_user

pytestmark = pytest.mark.django_db


def _line(distribution, **values) -> Recipient:
    contact = values.pop("contact", None) or make_contact()
    defaults = {
        "survey_id": distribution.survey_id,
        "channel": distribution.channel,
        "contact": contact,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "email": contact.email,
        "to_address": contact.email,
        "status": "sent",
        "workflow_run_id": distribution.workflow_run_id,
        "record_id": "5008a00002Ab01aAAB",
    }
    defaults.update(values)
    return Recipient.objects.create(distribution=distribution, **defaults)


@pytest.fixture
def survey(admin_user):
    return make_survey(owner=admin_user)


@pytest.fixture
def distribution(survey):
    return distribution_create(survey=survey, channel="email", workflow_run_id=41, workflow_id=3)


def _rows(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_survey_csv_has_the_contract_header_bom_and_content_type(admin_user, survey, distribution):
    sent = datetime(2026, 11, 27, 10, 0, 1, 500, tzinfo=UTC)
    line = _line(
        distribution, status="delivered", sent_at=sent, delivered_at=sent, phone="+4685550"
    )
    response = _client(admin_user).get(f"/surveys/{survey.pk}/distribution-history.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="survey-{survey.pk}-distribution-history.csv"'
    )
    body = b"".join(response.streaming_content)
    assert body.startswith("\ufeff".encode() + b"Distribution ID,Contact ID,First Name,")
    header = next(csv.reader(io.StringIO(body.decode().removeprefix("\ufeff"))))
    assert header == list(COLUMNS)
    row = next(csv.DictReader(io.StringIO(body.decode().removeprefix("\ufeff"))))
    assert row["Distribution ID"] == str(distribution.pk)
    assert row["Contact ID"] == str(line.contact_id)
    assert row["Status"] == "Delivered"
    assert row["Sent At"] == "2026-11-27T10:00:01Z"
    assert row["Delivered At"] == "2026-11-27T10:00:01Z"
    assert row["Opened At"] == ""
    assert row["Phone"] == "'+4685550"
    assert row["Workflow Run ID"] == "41"
    assert row["Salesforce Record ID"] == "5008a00002Ab01aAAB"


def test_every_status_has_its_label(admin_user, survey, distribution):
    for code in ["pending", "skipped", "opted_out", "failed", "hard_bounce", "complaint"]:
        _line(distribution, status=code, error=f"because {code}")
    rows = _rows(_client(admin_user).get(f"/distributions/{distribution.pk}/history.csv"))
    assert [row["Status"] for row in rows] == [
        "Pending",
        "Skipped",
        "Opted Out",
        "Failed",
        "Hard Bounce",
        "Complaint",
    ]
    assert rows[1]["Error"] == "because skipped"


def test_formula_cells_come_out_as_text(admin_user, survey, distribution):
    contact = make_contact(first_name='=HYPERLINK("http://evil.example","x")', last_name="@SUM(1)")
    _line(distribution, contact=contact, error="-1+1", record_id="+cmd")
    row = _rows(_client(admin_user).get(f"/surveys/{survey.pk}/distribution-history.csv"))[0]
    assert row["First Name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["Last Name"] == "'@SUM(1)"
    assert row["Error"] == "'-1+1"
    assert row["Salesforce Record ID"] == "'+cmd"


def test_status_filter_takes_labels_codes_and_lists(admin_user, survey, distribution):
    _line(distribution, status="finished")
    _line(distribution, status="opened")
    _line(distribution, status="hard_bounce")
    client = _client(admin_user)
    url = f"/surveys/{survey.pk}/distribution-history.csv"
    assert [r["Status"] for r in _rows(client.get(url, {"status": "Survey Finished"}))] == [
        "Survey Finished"
    ]
    assert [r["Status"] for r in _rows(client.get(url, {"status": "hard_bounce"}))] == [
        "Hard Bounce"
    ]
    both = _rows(client.get(url, {"status": "opened,Hard Bounce"}))
    assert sorted(r["Status"] for r in both) == ["Hard Bounce", "Opened"]
    refused = client.get(url, {"status": "Lost"})
    assert refused.status_code == 400
    assert "unknown status 'Lost'" in refused.content.decode()


def test_date_filters_on_when_the_line_was_created(admin_user, survey, distribution):
    old = _line(distribution)
    new = _line(distribution)
    Recipient.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    client = _client(admin_user)
    url = f"/surveys/{survey.pk}/distribution-history.csv"
    today = timezone.now().date()
    recent = _rows(client.get(url, {"since": str(today - timedelta(days=1))}))
    assert [r["Contact ID"] for r in recent] == [str(new.contact_id)]
    older = _rows(client.get(url, {"until": str(today - timedelta(days=5))}))
    assert [r["Contact ID"] for r in older] == [str(old.contact_id)]
    moment = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(_rows(client.get(url, {"since": moment}))) == 1
    assert client.get(url, {"since": "yesterday"}).status_code == 400
    # Every wrong parameter is named, an impossible date as well as an unreadable one.
    refused = client.get(url, {"since": "yesterday", "until": "2026-13-45", "kind": "invitation"})
    assert refused.status_code == 400
    lines = refused.content.decode().splitlines()
    assert lines[0] == "since: not a date or date-time: 'yesterday'"
    assert lines[1].startswith("until: not a valid date or date-time: '2026-13-45' (month")
    assert len(lines) == 2


def test_the_survey_csv_covers_all_its_distributions_only(admin_user, survey, distribution):
    second = distribution_create(survey=survey, channel="email")
    other_survey = make_survey(owner=admin_user, name="Other")
    elsewhere = distribution_create(survey=other_survey, channel="email")
    _line(distribution)
    _line(second)
    _line(elsewhere)
    rows = _rows(_client(admin_user).get(f"/surveys/{survey.pk}/distribution-history.csv"))
    assert sorted(int(r["Distribution ID"]) for r in rows) == sorted([distribution.pk, second.pk])
    rows = _rows(_client(admin_user).get(f"/distributions/{second.pk}/history.csv"))
    assert [int(r["Distribution ID"]) for r in rows] == [second.pk]


def test_token_auth_works_for_scripts(admin_user, survey, distribution):
    _line(distribution)
    token = Token.objects.create(user=admin_user)
    response = Client().get(
        f"/surveys/{survey.pk}/distribution-history.csv", HTTP_AUTHORIZATION=f"Token {token.key}"
    )
    assert response.status_code == 200
    assert len(_rows(response)) == 1


@pytest.mark.parametrize(
    "path",
    ["/surveys/{survey}/distribution-history.csv", "/distributions/{distribution}/history.csv"],
)
def test_anonymous_is_refused(survey, distribution, path):
    url = path.format(survey=survey.pk, distribution=distribution.pk)
    assert Client().get(url).status_code == 401
    bad = Client().get(url, HTTP_AUTHORIZATION="Token not-a-token")
    assert bad.status_code == 401
    browser = Client().get(url, HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert browser.status_code == 302
    assert browser["Location"].startswith("/accounts/login/")


def test_a_user_who_cannot_see_the_survey_is_refused(survey, distribution):
    stranger = make_user(username="mallory")
    assert (
        _client(stranger).get(f"/surveys/{survey.pk}/distribution-history.csv").status_code == 403
    )
    assert _client(stranger).get(f"/distributions/{distribution.pk}/history.csv").status_code == 403
    SurveyCollaborator.objects.create(survey=survey, user=stranger, can_view=True)
    allowed = _client(stranger).get(f"/surveys/{survey.pk}/distribution-history.csv")
    drain(allowed)  # read now, not closed by the garbage collector mid-query
    assert allowed.status_code == 200


def test_unknown_ids_are_404(admin_user):
    assert _client(admin_user).get("/surveys/999999/distribution-history.csv").status_code == 404
    assert _client(admin_user).get("/distributions/999999/history.csv").status_code == 404


def test_many_rows_stream_in_chunks(admin_user, survey, distribution):
    contact = make_contact()
    Recipient.objects.bulk_create(
        [
            Recipient(
                distribution=distribution,
                survey_id=survey.pk,
                channel="email",
                contact=contact,
                email=f"person{number}@example.org",
                status="sent",
            )
            for number in range(5000)
        ]
    )
    response = _client(admin_user).get(f"/surveys/{survey.pk}/distribution-history.csv")
    chunks = list(response.streaming_content)
    assert len(chunks) > 3  # streamed, not one body
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode().removeprefix("\ufeff"))))
    assert len(rows) == 5000
    assert rows[-1]["Email"] == "person4999@example.org"


def test_until_as_a_bare_date_includes_that_whole_day():
    from datetime import UTC, datetime

    from distributions.selectors import parse_moment

    assert parse_moment("2026-11-27", upper=True) == datetime(
        2026, 11, 27, 23, 59, 59, 999999, tzinfo=UTC
    )
    assert parse_moment("2026-11-27", upper=False) == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_moment("2026-11-27T10:00:00Z", upper=True) == datetime(
        2026, 11, 27, 10, tzinfo=UTC
    )


def test_the_csv_is_whole_with_the_query_log_on(admin_user, survey, distribution):
    # DEBUG (./run.sh) logs every query by formatting its SQL with its parameters: a
    # literal % in the SQL once cut every download after its header.
    from django.db import connection

    sent = datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC)
    _line(distribution, sent_at=sent)
    connection.force_debug_cursor = True
    try:
        rows = _rows(_client(admin_user).get(f"/surveys/{survey.pk}/distribution-history.csv"))
    finally:
        connection.force_debug_cursor = False
    assert [row["Sent At"] for row in rows] == ["2026-11-27T10:00:01Z"]


def test_a_query_that_fails_is_an_error_not_a_short_file(admin_user, survey, monkeypatch):
    from django.db import DatabaseError

    from distributions import views

    def broken(**filters):
        yield from ()
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(views, "history_rows", broken)
    client = _client(admin_user)
    client.raise_request_exception = False
    response = client.get(f"/surveys/{survey.pk}/distribution-history.csv")
    assert response.status_code == 500
