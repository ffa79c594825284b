"""The whole journey through real entry points: Salesforce POST → email → survey → CSV."""

import csv
import io
import json
import re

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import fixture_bytes
from tests.factories import post_soap

pytestmark = pytest.mark.django_db(transaction=True)

CASE_EMAIL = "jonas.berg@example.org"


def _seed() -> dict:
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out)
    return json.loads(out.getvalue())


def _token_client(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def test_closed_case_to_finished_survey_in_the_history_csv():
    demo = _seed()
    api = _token_client(demo["api_token"])
    event_path = demo["event_url"].removeprefix("http://testserver")

    # 1. Salesforce posts the closed case; the workflow saves the contact and emails it.
    answer = post_soap(Client(), event_path, fixture_bytes("salesforce/case_closed.xml"))
    assert answer.status_code == 200
    assert b"<Ack>true</Ack>" in answer.content
    runs = api.get("/api/v1/runs/", {"workflow": demo["workflow_id"]}).json()["results"]
    assert [run["status"] for run in runs] == ["succeeded"]
    distribute = next(task for task in runs[0]["tasks"] if task["type"] == "distribute_survey")
    assert distribute["status"] == "succeeded"
    assert distribute["output"]["recipient_status"] == "Pending"

    # 2. The invitation is in the outbox, personal link and opt-out link included.
    outbox = api.get("/api/v1/outbox/", {"to": CASE_EMAIL, "channel": "email"}).json()
    assert outbox["count"] == 1
    email = outbox["results"][0]
    assert email["subject"] == "How did we do, Jonas?"
    assert email["from"] == "Customer Care <surveys@example.com>"
    assert email["headers"]["List-Unsubscribe"].startswith("<http://testserver/o/")
    token = re.search(r'href="http://testserver/s/([\w-]+)/"', email["body"]).group(1)
    assert f"http://testserver/s/{token}/" in email["text"]  # the plain-text part too
    assert distribute["output"]["survey_link"] == f"http://testserver/s/{token}/"

    # 3. The respondent opens the link and answers; the question is piped.
    respondent = Client()
    page = respondent.get(f"/s/{token}/")
    assert page.status_code == 200
    assert "How likely are you to recommend us to a friend, Jonas?" in page.content.decode()
    survey = api.get(f"/api/v1/surveys/{demo['survey_id']}/").json()
    nps, text = (question["id"] for question in survey["questions"])
    done = respondent.post(
        f"/s/{token}/", {f"q{nps}": "9", f"q{text}": "Quick", "action": "finish"}
    )
    assert done.status_code == 200

    # 4. The response carries the case's data as embedded data.
    responses = api.get("/api/v1/responses/", {"survey": demo["survey_id"]}).json()["results"]
    assert len(responses) == 1
    assert responses[0]["embedded_data"] == {"CaseNumber": "00003101", "Priority": "High"}
    assert responses[0]["answers"][str(nps)] == 9

    # 5. The distribution and the CSV say it was finished, with every id to trace it.
    distributions = api.get("/api/v1/distributions/", {"survey": demo["survey_id"]}).json()
    assert distributions["count"] == 1
    assert distributions["results"][0]["counts"] == {"Survey Finished": 1}
    assert distributions["results"][0]["workflow_run"] == runs[0]["id"]
    download = api.get(f"/surveys/{demo['survey_id']}/distribution-history.csv")
    assert download.status_code == 200
    text_body = b"".join(download.streaming_content).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text_body.removeprefix("\ufeff"))))
    assert len(rows) == 1
    row = rows[0]
    assert row["Status"] == "Survey Finished"
    assert row["Email"] == CASE_EMAIL
    assert (row["First Name"], row["Last Name"]) == ("Jonas", "Berg")
    assert row["Response ID"] == str(responses[0]["id"])
    assert row["Survey Link"] == f"http://testserver/s/{token}/"
    assert row["Workflow Run ID"] == str(runs[0]["id"])
    assert row["Salesforce Record ID"] == "5008a00002Ab01aAAB"
    assert row["Channel"] == "email"
    for column in ("Sent At", "Opened At", "Survey Started At", "Survey Finished At"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[column]), column


def test_seed_demo_is_idempotent_and_reports_the_survey_and_sender():
    first = _seed()
    second = _seed()
    assert first["survey_id"] == second["survey_id"]
    assert first["sender_email"] == "surveys@example.com"
    assert first["workflow_id"] == second["workflow_id"]
    assert set(first) >= {
        "admin_username",
        "admin_password",
        "api_token",
        "workflow_id",
        "event_url",
        "survey_id",
        "mailing_list_id",
        "sender_email",
    }


def test_seeding_again_keeps_the_admin_signed_in_and_a_changed_password():
    # run.sh seeds on every start: that must not sign people out or undo a new password.
    first = _seed()
    client = Client()
    assert client.login(username=first["admin_username"], password=first["admin_password"])
    _seed()
    assert client.get("/workflows/").status_code == 200
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username=first["admin_username"])
    admin.set_password("a-new-password-123")
    admin.save()
    _seed()
    admin.refresh_from_db()
    assert admin.check_password("a-new-password-123")


def test_the_documented_example_workflow_saves_after_seeding():
    # The API documentation's example definition (tests/fixtures/api/), posted as it is
    # onto the seeded demo (its survey, mailing list and a From at example.com).
    demo = _seed()
    api = _token_client(demo["api_token"])
    definition = json.loads(fixture_bytes("api/example_workflow.json"))
    # On a fresh database the seeded ids are 1; here earlier tests used some up.
    for task in definition["tasks"]:
        task["mailing_list"] = demo["mailing_list_id"]
    definition["tasks"][1]["survey"] = demo["survey_id"]
    created = api.post("/api/v1/workflows/", definition, content_type="application/json")
    assert created.status_code == 201, created.json()
    assert created.json()["tasks"][1]["message"]["from_email"] == "support@example.com"
    # Another domain is still refused when the workflow is saved.
    definition["tasks"][1]["message"]["from_email"] = "support@elsewhere.test"
    refused = api.post("/api/v1/workflows/", definition, content_type="application/json")
    assert refused.status_code == 400
    assert "is not a verified sender" in json.dumps(refused.json())
