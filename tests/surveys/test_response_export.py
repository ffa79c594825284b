"""A survey's responses CSV (SPEC F6 "exportable"): its layout, the formula guard,
nothing recorded left out, who may download it, and a respondent's answers from a
Salesforce-triggered invitation through to the file."""

import csv
import io
from datetime import UTC, datetime

import pytest
from rest_framework.authtoken.models import Token

from distributions.models import Recipient, VerifiedSender
from surveys.models import Response, SurveyCollaborator
from surveys.response_export import (
    FIXED_COLUMNS,
    ExportQuestion,
    ResponseRow,
    cells,
    columns,
    csv_chunks,
)
from tests.factories import make_mailing_list, make_survey, make_user, make_workflow, post_soap
from tests.soap_builders import build_outbound_message

QUESTIONS = [ExportQuestion(id=7, text="How likely…?"), ExportQuestion(id=9, text="Which?")]


def row(**changes) -> ResponseRow:
    values = {
        "id": 1,
        "started_at": datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
        "finished_at": None,
        "contact_id": 4,
        "first_name": "Ada",
        "last_name": '=HYPERLINK("http://x")',
        "email": "ada@example.org",
        "phone": "+15550100",
        "external_data_reference": "",
        "record_id": "",
        "workflow_run_id": None,
        "distribution_id": None,
        "answers": {"7": 9, "9": ["Red", "Blue"]},
        "embedded_data": {"CaseNumber": "00001026", "Removed since": "-1"},
    }
    values.update(changes)
    return ResponseRow(**values)


def test_columns_name_each_question_and_embedded_field_once():
    header = columns(QUESTIONS, ["CaseNumber", "Email"])
    assert header[: len(FIXED_COLUMNS)] == list(FIXED_COLUMNS)
    assert header[len(FIXED_COLUMNS) :] == [
        "Q1: How likely…?",
        "Q2: Which?",
        "CaseNumber",
        "Email (embedded data)",  # "Email" is a fixed column already
        "Other Embedded Data",
    ]


def test_cells_guard_formulas_join_choices_and_keep_undeclared_embedded_data():
    values = cells(row(), QUESTIONS, ["CaseNumber"])
    by_column = dict(zip(columns(QUESTIONS, ["CaseNumber"]), values, strict=True))
    assert by_column["Status"] == "In Progress"
    assert by_column["Started At"] == "2026-11-27T09:30:00Z"
    assert by_column["Finished At"] == ""
    assert by_column["Last Name"] == '\'=HYPERLINK("http://x")'
    assert by_column["Q1: How likely…?"] == "9"
    assert by_column["Q2: Which?"] == "Red; Blue"
    assert by_column["CaseNumber"] == "00001026"
    assert by_column["Other Embedded Data"] == '{"Removed since": "-1"}'
    assert by_column["Workflow Run ID"] == ""


def test_csv_streams_in_chunks_with_bom_and_quoting():
    header = columns(QUESTIONS, [])
    rows = (cells(row(id=n, first_name=f"Ada, {n}"), QUESTIONS, []) for n in range(1, 1201))
    chunks = list(csv_chunks(header, rows, rows_per_chunk=500))
    assert len(chunks) == 1 + 3  # header, then 500 + 500 + 200 rows
    text = b"".join(chunks).decode("utf-8")
    assert text.startswith("\ufeffResponse ID,Status,")
    parsed = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(parsed) == 1201
    assert parsed[1200][5] == "Ada, 1200"


# --- Through the application -------------------------------------------------------------


def download(client, survey, **headers) -> list[dict[str, str]]:
    answer = client.get(f"/surveys/{survey.pk}/responses.csv", **headers)
    assert answer.status_code == 200, answer.content[:500]
    assert answer["Content-Type"] == "text/csv; charset=utf-8"
    assert answer["Content-Disposition"] == (
        f'attachment; filename="survey-{survey.pk}-responses.csv"'
    )
    text = b"".join(answer.streaming_content).decode("utf-8").lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.django_db(transaction=True)
def test_an_invited_respondents_answers_reach_the_file(client, settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"
    owner = make_user(username="owner")
    survey = make_survey(owner=owner, embedded_data_fields=["CaseNumber", "Priority"])
    VerifiedSender.objects.get_or_create(address="surveys@example.com")
    task = {
        "type": "distribute_survey",
        "channel": "email",
        "survey": survey.pk,
        "mailing_list": make_mailing_list().pk,
        "contact": {
            "first_name": "${event://First_Name__c}",
            "last_name": "${event://Last_Name__c}",
            "email": "${event://ContactEmail}",
        },
        "embedded_data": {"CaseNumber": "${event://CaseNumber}", "Priority": "="},
        "message": {
            "from_name": "Care",
            "from_email": "surveys@example.com",
            "reply_to": "",
            "subject": "How did we do?",
            "body": "<p>${l://SurveyLink}</p>",
        },
    }
    workflow = make_workflow(owner=owner, tasks=[task])
    fields = {
        "Id": "5008a00009Zz0001AAB",
        "CaseNumber": "00001026",
        "ContactEmail": "jonas@example.org",
        "First_Name__c": "Jonas",
        "Last_Name__c": "Berg",
    }
    message = build_outbound_message([{"id": "04l8a00000Q000001AAR", "fields": fields}])
    assert post_soap(client, workflow, message).status_code == 200
    line = Recipient.objects.get()
    nps, text = survey.questions.order_by("position").values_list("pk", flat=True)
    answered = client.post(
        f"/s/{line.link.token}/", {f"q{nps}": "9", f"q{text}": "-2 stars", "action": "finish"}
    )
    assert answered.status_code == 200
    assert Response.objects.get().finished_at is not None

    client.force_login(owner)
    (only,) = download(client, survey)
    assert only["Status"] == "Finished"
    assert (only["First Name"], only["Email"]) == ("Jonas", "jonas@example.org")
    assert only["Salesforce Record ID"] == "5008a00009Zz0001AAB"
    assert only["Workflow Run ID"] == str(line.workflow_run_id)
    assert only["Distribution ID"] == str(line.distribution_id)
    assert only["Q1: How likely are you to recommend us, ${m://FirstName}?"] == "9"
    assert only["Q2: What could we do better?"] == "'-2 stars"
    assert only["CaseNumber"] == "00001026"
    assert only["Priority"] == "'="
    assert only["Other Embedded Data"] == ""

    # The survey's Distributions tab links to it, with the count.
    page = client.get(f"/surveys/{survey.pk}/distributions/").content.decode()
    assert f'href="/surveys/{survey.pk}/responses.csv"' in page
    assert "Responses CSV (1 response)" in page
    # Each line's personal page is linked as a preview, which records nothing.
    assert f'href="/s/{line.link.token}/?preview=1"' in page

    # Unsubscribing after finishing opts the contact out but keeps the line Finished
    # (a status filter on "Survey Finished" still finds the response).
    client.logout()
    assert client.post(f"/o/{line.link.token}/").status_code == 200
    line.refresh_from_db()
    assert line.get_status_display() == "Survey Finished"
    assert line.error == "opted out with the unsubscribe link after finishing the survey"
    line.contact.refresh_from_db()
    assert line.contact.email_opted_out


@pytest.mark.django_db
def test_who_may_download(client):
    owner = make_user(username="owner")
    survey = make_survey(owner=owner)
    stranger = make_user(username="stranger")
    viewer = make_user(username="viewer")
    SurveyCollaborator.objects.create(survey=survey, user=viewer, can_view=True)

    assert client.get(f"/surveys/{survey.pk}/responses.csv").status_code == 401
    client.force_login(stranger)
    refused = client.get(f"/surveys/{survey.pk}/responses.csv")
    assert refused.status_code == 403
    assert refused.content == b"you do not have access to this survey"
    client.force_login(viewer)
    assert download(client, survey) == []  # a header, no rows yet
    client.logout()
    token = Token.objects.create(user=owner)
    assert download(client, survey, HTTP_AUTHORIZATION=f"Token {token.key}") == []
    assert client.get("/surveys/999999/responses.csv").status_code in (401, 404)
