"""Ids past what a database column holds and dates at the ends of the calendar: a
clear 400 or an empty answer, never a 500 (SQLite cannot even be asked about an
integer above 2**63 - 1; date arithmetic past 9999-12-31 overflows)."""

import pytest

from core.params import MAX_ID, parse_id
from tests.factories import make_survey, make_user

pytestmark = pytest.mark.django_db

BIG = str(10**20)


def test_parse_id_accepts_exactly_the_ids():
    assert parse_id("7") == 7 and parse_id(" 7 ") == 7 and parse_id(str(MAX_ID)) == MAX_ID
    assert parse_id("") is None and parse_id(None) is None
    for wrong in ("0", "-3", str(MAX_ID + 1), "1.5", "abc"):
        with pytest.raises(ValueError):
            parse_id(wrong)


@pytest.mark.parametrize(
    ("url", "name", "label"),
    [
        (f"/api/v1/runs/?workflow={BIG}", "workflow", "workflow"),
        (f"/api/v1/responses/?survey={BIG}", "survey", "survey"),
        (f"/api/v1/distributions/?survey={BIG}", "survey", "survey"),
        ("/api/v1/distributions/?workflow_run=-1", "workflow_run", "workflow run"),
        (f"/api/v1/contacts/?directory={BIG}", "directory", "directory"),
        ("/api/v1/contacts/?mailing_list=abc", "mailing_list", "mailing list"),
    ],
)
def test_api_id_filters_name_the_parameter(api_client, url, name, label):
    answer = api_client.get(url)
    assert answer.status_code == 400
    value = url.rsplit("=", 1)[1]
    assert answer.json() == {name: [f"must be a {label} id, not '{value}'"]}


@pytest.mark.parametrize(
    "url",
    [
        f"/reports/workflows/?workflow={BIG}",
        f"/reports/workflows/deliveries/?workflow={BIG}&before={BIG}",
        "/reports/workflows/?since=0001-01-01&until=9999-12-31",
        "/reports/distributions/?since=0001-01-01&until=9999-12-31",
        "/reports/distributions/?since=0001-01-01&until=0001-01-05",
        "/reports/distributions/?since=9999-12-30&until=9999-12-31",
        f"/reports/distributions/?workflow={BIG}",
    ],
)
def test_pages_answer_extreme_filters(client, url):
    client.force_login(make_user(username="root", is_superuser=True))
    make_survey()
    answer = client.get(url)
    assert answer.status_code == 200, url


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/admin/xmflows/run/?created_at__year=99999", "created_at__year"),
        ("/admin/xmflows/delivery/?received_at__year=0", "received_at__year"),
        ("/admin/distributions/recipient/?created_at__iso_year=%EF%BC%92", "created_at__iso_year"),
    ],
)
def test_admin_year_filters_outside_the_calendar_are_a_400(client, url, name):
    # The admin's date filters pass any `__year` on to the database layer, which
    # raised ValueError ("year 99999 is out of range"): a 500.
    client.force_login(make_user(username="root", is_superuser=True))
    answer = client.get(url)
    assert answer.status_code == 400
    assert answer.content.decode() == f"query parameter {name!r} must be a year from 1 to 9999"
    assert client.get(url.split("=")[0] + "=2026").status_code == 200
