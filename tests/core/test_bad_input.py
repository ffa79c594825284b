"""Bad input found by a sweep of every entry point: each is a 400 (or the form again)
naming what is wrong, never a 500 and never a stored bad value."""

import pytest

from contacts.models import Contact
from tests.factories import make_directory, make_survey, make_user, make_workflow
from xmflows.models import Workflow

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture
def root(client):
    user = make_user(username="root", is_superuser=True)
    client.force_login(user)
    return user


def test_copy_checks_its_name(api_client, admin_user):
    workflow = make_workflow(owner=admin_user, name="N" * 200)
    url = f"/api/v1/workflows/{workflow.pk}/copy/"
    for body in ({"name": "x" * 201}, {"name": {"a": 1}}, {"name": "a\x00b"}):
        answer = api_client.post(url, body, format="json")
        assert answer.status_code == 400 and "name" in answer.json(), body
    for body in ([], "x"):
        assert api_client.post(url, body, format="json").status_code == 400
    copied = api_client.post(url, {}, format="json").json()
    assert copied["name"] == ("Copy of " + "N" * 200)[:200]
    assert Workflow.objects.count() == 2


def test_follow_up_texts_that_are_not_strings(api_client):
    survey = make_survey()
    task = {
        "type": "distribute_survey",
        "survey": survey.pk,
        "mailing_list": 1,
        "contact": {"first_name": "a", "last_name": "b", "email": "c"},
        "embedded_data": {},
        "message": {"from_email": "x@example.com", "subject": "s", "body": "b"},
        "reminder": {"after_days": 2, "subject": 5, "body": ["x"]},
        "thank_you": {"subject": True, "body": "b"},
    }
    definition = {"name": "W", "event": {"object": "Case"}, "tasks": [task]}
    answer = api_client.post("/api/v1/workflows/", definition, format="json")
    assert answer.status_code == 400
    errors = answer.json()["tasks"][0]
    assert errors["reminder"]["body"] == ["Not a valid string."]  # (a number reads as text)
    assert errors["thank_you"]["subject"] == ["Not a valid string."]


def test_survey_questions_patch_without_type_and_scale_out_of_range(api_client, admin_user):
    survey = make_survey(owner=admin_user)
    url = f"/api/v1/surveys/{survey.pk}/"
    answer = api_client.patch(url, {"questions": [{"text": "hi"}]}, format="json")
    assert answer.status_code == 400
    assert answer.json()["questions"]["0"]["type"] == ["This field is required."]
    for scale in (-5, 10**20):
        question = {"type": "text", "text": "hi", "scale_max": scale}
        answer = api_client.patch(url, {"questions": [question]}, format="json")
        assert answer.status_code == 400 and "scale_max" in answer.json()["questions"]["0"]


def test_json_nested_too_deeply_or_not_finite(api_client, client, admin_user):
    for body in (DEEP, '{"name": NaN}', '{"name": 1e999}'):
        answer = api_client.generic(
            "POST", "/api/v1/directories/", body, content_type="application/json"
        )
        assert answer.status_code == 400
        assert answer.json()["detail"].startswith("JSON parse error - ")
    client.force_login(admin_user)
    page = client.post("/workflows/new/json/", {"definition": DEEP})
    assert page.status_code == 400
    assert "nested too deeply" in page.content.decode()
    for body in (DEEP, '{"run": 1e400}', '{"run": Infinity}', '{"run": "abc"}'):
        answer = client.generic(
            "POST", "/workflows/piped-text-preview/", body, content_type="application/json"
        )
        assert answer.status_code in (400, 404), body


def test_admin_contact_embedded_data_null_or_not_finite(client, root):
    directory = make_directory()
    for value in ("null", '{"a": NaN}', '{"a": Infinity}'):
        page = client.post(
            "/admin/contacts/contact/add/",
            {
                "directory": directory.pk,
                "first_name": "Ada",
                "last_name": "L",
                "email": "ada@example.org",
                "embedded_data": value,
                "transactions-TOTAL_FORMS": "0",
                "transactions-INITIAL_FORMS": "0",
            },
        )
        assert page.status_code == 200, value  # the form again, with its message
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/v1/deliveries/?workflow=abc", 400),
        ("/api/v1/deliveries/?workflow=99999999999999999999999", 400),
        ("/api/v1/runs/?since=2020-13-45", 400),
        ("/api/v1/runs/?until=2024-01-01T25:00", 400),
        ("/reports/distributions/?survey=%C2%B2", 200),
        ("/reports/distributions/?workflow=%C2%B2", 200),
        ("/workflows/dynamic-text-menu/?workflow=%C2%B2", 200),
        ("/outbox/?to=" + "a" * 2001, 400),
        ("/admin/contacts/contact/?q=" + "a" * 2001, 400),
    ],
)
def test_odd_query_parameters(api_client, client, root, url, status):
    answer = (api_client if url.startswith("/api/") else client).get(url)
    assert answer.status_code == status, answer.content[:300]


def test_run_retry_with_an_id_that_is_not_one(api_client):
    assert api_client.post("/api/v1/runs/abc/retry/").status_code == 404


def test_builder_with_an_odd_survey_id_or_a_huge_object_name(client, root):
    page = client.post(
        "/workflows/new/",
        {
            "name": "W",
            "event.object": "C" * 100_000,
            "tasks.1.type": "distribute_survey",
            "tasks.1.survey": "²",
            "on_failure": "stop",
            "op": "save",
        },
    )
    assert page.status_code == 400
    assert not Workflow.objects.exists()


def test_a_form_sent_without_the_csrf_cookie_says_what_to_do():
    from django.test import Client

    from surveys.models import SurveyStatus
    from tests.factories import make_survey_link

    link = make_survey_link(survey=make_survey(status=SurveyStatus.ACTIVE))
    browser = Client(enforce_csrf_checks=True)  # no page was loaded: no cookie
    refused = browser.post(f"/s/{link.token}/", {"action": "finish"})
    assert refused.status_code == 403
    text = refused.content.decode()
    assert "The form could not be sent" in text and "Nothing was saved" in text
    assert "Allow cookies for this site" in text
    assert "CSRF verification failed" not in text  # not Django's developer page
