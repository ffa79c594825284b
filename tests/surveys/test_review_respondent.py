"""Review of the respondent's pages: every question type through the page, what the
respondent reads at each step, and what the admin's responses CSV then shows."""

import csv
import io
import re

import pytest

from surveys.models import Response
from tests.factories import make_survey, make_survey_link

pytestmark = pytest.mark.django_db

QUESTIONS = [
    {"type": "nps", "text": "Recommend us, ${m://FirstName}?"},
    {"type": "rating", "text": "Rate the staff", "scale_max": 5, "required": False},
    {"type": "single_choice", "text": "Channel", "choices": ["Phone", "Email"], "required": False},
    {"type": "multiple_choice", "text": "What mattered?", "choices": ["Speed", "Price", "Staff"]},
    {"type": "text", "text": "Anything else?", "required": False},
]


def _errors(page) -> list[str]:
    return re.findall(r'<li><a href="#[^"]+">(.*?)</a></li>', page.content.decode())


def test_every_question_type_through_the_page_and_into_the_responses_csv(client, admin_user):
    survey = make_survey(
        owner=admin_user, questions=QUESTIONS, thank_you_text="Bye ${m://FirstName} <b>!</b>"
    )
    nps, rating, single, multiple, text = (f"q{q.pk}" for q in survey.questions.all())
    link = make_survey_link(survey=survey)
    path = f"/s/{link.token}/"
    assert "Recommend us, Ada?" in client.get(path).content.decode()

    refused = client.post(
        path, {nps: "11", rating: "0", single: "Fax", multiple: ["Speed", "Nope"], text: "x" * 5001}
    )
    assert refused.status_code == 400
    assert _errors(refused) == [
        "Question 1: Choose a whole number from 0 to 10.",
        "Question 2: Choose a whole number from 1 to 5.",
        "Question 3: Choose one of the options listed.",
        "Question 4: Choose only among the options listed.",
        "Question 5: Keep your answer to 5000 characters or fewer (it has 5001).",
    ]
    assert not Response.objects.exists()
    missing = client.post(path, {rating: "4"})
    assert _errors(missing) == [
        "Question 1: This question requires an answer.",
        "Question 4: This question requires an answer.",
    ]
    # What was typed is shown again, checked.
    assert f'id="{rating}-3" name="{rating}" value="4" checked' in missing.content.decode()

    saved = client.post(path, {nps: "9", multiple: ["Staff", "Speed"], "action": "save"})
    assert saved.status_code == 303
    done = client.post(
        path, {nps: "9", rating: "", multiple: ["Staff", "Speed"], text: "=1+1 ünïcode"}
    )
    assert done.status_code == 200
    assert "Bye Ada &lt;b&gt;!&lt;/b&gt;" in done.content.decode()
    # Back, then Submit again (or the browser re-posting the form): never twice.
    for again in (client.get(path), client.post(path, {nps: "0", multiple: ["Price"]})):
        assert again.status_code == 200
        assert "You have already completed this survey" in again.content.decode()
    response = Response.objects.get()
    assert list(response.answers.values()) == [9, ["Speed", "Staff"], "=1+1 ünïcode"]

    client.force_login(admin_user)
    download = client.get(f"/surveys/{survey.pk}/responses.csv")
    body = b"".join(download.streaming_content).decode().removeprefix("\ufeff")
    (row,) = csv.DictReader(io.StringIO(body))
    assert row["Status"] == "Finished"
    assert row["Q1: Recommend us, ${m://FirstName}?"] == "9"
    assert row["Q2: Rate the staff"] == row["Q3: Channel"] == ""
    assert row["Q4: What mattered?"] == "Speed; Staff"
    assert row["Q5: Anything else?"] == "'=1+1 ünïcode"


@pytest.mark.parametrize(
    "path",
    ["/s/not-a-token/", "/s/" + "a" * 3000 + "/", "/s/%E2%80%AE/", "/o/not-a-token/"],
)
def test_a_tampered_link_gets_the_not_found_page(client, path):
    make_survey_link()
    page = client.get(path)
    assert page.status_code == 404
    assert "We could not find this survey" in page.content.decode()


def test_save_and_finish_later_with_nothing_answered_stores_no_response(client, admin_user):
    survey = make_survey(owner=admin_user, questions=QUESTIONS)
    link = make_survey_link(survey=survey)
    path = f"/s/{link.token}/"
    client.get(path)
    saved = client.post(path, {"action": "save"})
    assert saved.status_code == 303
    # Nothing to keep: no In Progress response without a start or an answer.
    assert not Response.objects.exists()
    nps = f"q{survey.questions.first().pk}"
    client.post(path, {nps: "7", "action": "save"})
    response = Response.objects.get()
    assert response.answers == {nps[1:]: 7} and response.started_at is not None
    assert response.finished_at is None
