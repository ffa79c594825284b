"""A NUL character (%00) anywhere a person or a script can type: refused with a 400
that says where, never a 500 (PostgreSQL refuses NUL in text) or a stored row."""

import json

import pytest

from contacts.models import Contact
from surveys.models import Response
from tests.factories import make_directory, make_survey, make_survey_link, make_user

pytestmark = pytest.mark.django_db

NUL = "\x00"


@pytest.fixture
def staff(client):
    user = make_user(username="root", is_superuser=True)
    client.force_login(user)
    return user


@pytest.mark.parametrize(
    "url",
    [
        "/reports/workflows/?q=a%00b",
        "/reports/workflows/why/?q=%00",
        "/outbox/?to=%2B1%00",
        "/admin/contacts/contact/?q=%00",
        "/workflows/?mine=%00",
    ],
)
def test_a_query_parameter_with_nul_is_named_on_pages(client, staff, url):
    answer = client.get(url)
    assert answer.status_code == 400
    assert answer["Content-Type"] == "text/plain; charset=utf-8"
    assert b"contains a NUL character (%00)" in answer.content
    assert b"query parameter '" in answer.content


def test_api_filters_answer_json(api_client):
    for url, name in (
        ("/api/v1/runs/?record_id=500%00", "record_id"),
        ("/api/v1/contacts/?email=a%00@example.org", "email"),
    ):
        answer = api_client.get(url)
        assert answer.status_code == 400
        assert answer.json() == {
            "detail": f"query parameter '{name}' contains a NUL character (%00)"
        }


def test_a_form_field_with_nul_is_refused_urlencoded_or_multipart(client):
    survey = make_survey()
    link = make_survey_link(survey=survey)
    text = survey.questions.order_by("position").last()
    for content in ("urlencoded", "multipart"):
        data = {f"q{text.pk}": f"fine{NUL}", "action": "save"}
        if content == "urlencoded":
            answer = client.post(
                f"/s/{link.token}/",
                f"q{text.pk}=fine%00&action=save",
                content_type="application/x-www-form-urlencoded",
            )
        else:
            answer = client.post(f"/s/{link.token}/", data)
        assert answer.status_code == 400, content
        assert answer.content == f"form field 'q{text.pk}' contains a NUL character (%00)".encode()
    assert not Response.objects.exists()


def test_a_path_with_nul_is_refused(client):
    answer = client.get("/s/abc%00/")
    assert answer.status_code == 400
    assert answer.content == b"the URL contains a NUL character (%00)"


def test_contact_api_names_the_field_that_holds_a_nul(api_client):
    directory = make_directory()
    base = {"directory": directory.pk, "first_name": "Ada", "last_name": "L", "email": "a@x.org"}
    answer = api_client.post(
        "/api/v1/contacts/",
        {**base, "first_name": f"A{NUL}da"},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json() == {"first_name": ["first name contains a NUL character (\\x00)"]}
    answer = api_client.post(
        "/api/v1/contacts/", {**base, "embedded_data": {f"Re{NUL}gion": "Norte"}}, format="json"
    )
    assert answer.status_code == 400
    assert "contains a NUL character" in json.dumps(answer.json()["embedded_data"])
    assert not Contact.objects.exists()


def test_admin_contact_embedded_data_with_nul_is_a_form_error(client, staff):
    directory = make_directory()
    answer = client.post(
        "/admin/contacts/contact/add/",
        {
            "directory": directory.pk,
            "first_name": "Ada",
            "last_name": "L",
            "email": "ada@example.org",
            "embedded_data": '{"Region": "No\\u0000rte"}',
            "contact_transactions-TOTAL_FORMS": "0",
            "contact_transactions-INITIAL_FORMS": "0",
            "transactions-TOTAL_FORMS": "0",
            "transactions-INITIAL_FORMS": "0",
        },
    )
    assert answer.status_code == 200  # the form again, with the message
    assert "contains a NUL character" in answer.content.decode()
    assert not Contact.objects.exists()
