"""Survey and response API: nested questions, activation, sharing permissions, response filter."""

import pytest
from rest_framework.test import APIClient

from surveys.models import Survey, SurveyCollaborator
from surveys.services import response_record_answers
from tests.factories import make_contact, make_survey, make_survey_link, make_user

pytestmark = pytest.mark.django_db

SURVEYS = "/api/v1/surveys/"


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _first_item_errors(errors):
    # DRF reports a nested list's errors as a list, or as an object keyed by index.
    return errors[0] if isinstance(errors, list) else errors["0"]


def test_create_survey_with_questions(api_client, admin_user):
    created = api_client.post(
        SURVEYS,
        {
            "name": "Case closed",
            "embedded_data_fields": ["CaseNumber", " Priority "],
            "questions": [
                {"type": "nps", "text": "Recommend us, ${m://FirstName}?"},
                {"type": "single_choice", "text": "Solved?", "choices": ["Yes", "No"]},
                {"type": "rating", "text": "Rate the agent", "scale_max": 7, "required": False},
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "draft"
    assert body["owner"] == admin_user.username
    assert body["embedded_data_fields"] == ["CaseNumber", "Priority"]
    assert [q["position"] for q in body["questions"]] == [1, 2, 3]
    assert body["questions"][1]["choices"] == ["Yes", "No"]
    assert body["questions"][2] | {"id": None} == {
        "id": None,
        "position": 3,
        "type": "rating",
        "text": "Rate the agent",
        "choices": [],
        "required": False,
        "scale_max": 7,
    }
    assert body["collaborators"] == []


@pytest.mark.parametrize(
    ("question", "field"),
    [
        ({"type": "single_choice", "text": "Pick"}, "choices"),
        ({"type": "multiple_choice", "text": "Pick", "choices": ["A", "A"]}, "choices"),
        ({"type": "nps", "text": "NPS", "choices": ["A"]}, "choices"),
        ({"type": "rating", "text": "Rate", "scale_max": 1}, "scale_max"),
        ({"type": "slider", "text": "Slide"}, "type"),
    ],
)
def test_invalid_questions_are_refused_per_field(api_client, question, field):
    answer = api_client.post(SURVEYS, {"name": "Bad", "questions": [question]}, format="json")
    assert answer.status_code == 400
    assert field in _first_item_errors(answer.json()["questions"])


def test_update_replaces_questions_keeping_ids_of_those_sent_back(api_client, admin_user):
    survey = make_survey(owner=admin_user)
    body = api_client.get(f"{SURVEYS}{survey.pk}/").json()
    nps = body["questions"][0]
    answer = api_client.patch(
        f"{SURVEYS}{survey.pk}/",
        {"questions": [nps | {"text": "Would you recommend us?"}, {"type": "text", "text": "New"}]},
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    questions = answer.json()["questions"]
    assert questions[0]["id"] == nps["id"]
    assert questions[0]["text"] == "Would you recommend us?"
    assert [q["text"] for q in questions] == ["Would you recommend us?", "New"]
    assert survey.questions.count() == 2


def test_question_of_another_survey_cannot_be_taken_over(api_client, admin_user):
    mine = make_survey(owner=admin_user)
    other = make_survey().questions.first()
    answer = api_client.patch(
        f"{SURVEYS}{mine.pk}/",
        {"questions": [{"id": other.pk, "type": "nps", "text": "Mine now"}]},
        format="json",
    )
    assert answer.status_code == 400
    other.refresh_from_db()
    assert other.survey_id != mine.pk


def test_activate_and_deactivate(api_client, admin_user):
    survey = make_survey(owner=admin_user, status="draft")
    answer = api_client.post(f"{SURVEYS}{survey.pk}/activate/")
    assert answer.status_code == 200
    assert answer.json()["status"] == "active"
    answer = api_client.post(f"{SURVEYS}{survey.pk}/deactivate/")
    assert answer.json()["status"] == "inactive"
    survey.refresh_from_db()
    assert survey.status == "inactive"


def test_survey_without_questions_cannot_be_activated(api_client):
    created = api_client.post(SURVEYS, {"name": "Empty"}, format="json").json()
    answer = api_client.post(f"{SURVEYS}{created['id']}/activate/")
    assert answer.status_code == 400
    assert "at least one question" in answer.json()["status"][0]


@pytest.fixture
def shared_survey():
    owner = make_user(username="owner1")
    survey = make_survey(owner=owner, status="draft")
    users = {"owner": owner, "stranger": make_user(username="stranger1")}
    for role, permissions in {
        "viewer": {"can_view": True},
        "editor": {"can_view": True, "can_edit": True},
        "distributor": {"can_view": False, "can_distribute": True},
    }.items():
        users[role] = make_user(username=f"{role}1")
        SurveyCollaborator.objects.create(survey=survey, user=users[role], **permissions)
    return survey, users


@pytest.mark.parametrize(
    ("role", "can_see", "can_edit"),
    [
        ("owner", True, True),
        ("editor", True, True),
        ("viewer", True, False),
        ("distributor", True, False),
        ("stranger", False, False),
    ],
)
def test_permission_matrix(shared_survey, role, can_see, can_edit):
    survey, users = shared_survey
    client = _client(users[role])
    detail = f"{SURVEYS}{survey.pk}/"

    listed = [item["id"] for item in client.get(SURVEYS).json()["results"]]
    assert (survey.pk in listed) is can_see
    assert client.get(detail).status_code == (200 if can_see else 403)

    renamed = client.patch(detail, {"name": f"Renamed by {role}"}, format="json")
    assert renamed.status_code == (200 if can_edit else 403)
    activated = client.post(f"{detail}activate/")
    assert activated.status_code == (200 if can_edit else 403)
    survey.refresh_from_db()
    assert (survey.status == "active") is can_edit
    assert (survey.name == f"Renamed by {role}") is can_edit


def test_anonymous_is_refused(shared_survey):
    survey, _ = shared_survey
    client = APIClient()
    assert client.get(SURVEYS).status_code in (401, 403)
    assert client.post(f"{SURVEYS}{survey.pk}/activate/").status_code in (401, 403)
    assert client.get("/api/v1/responses/").status_code in (401, 403)


def test_superuser_sees_every_survey(shared_survey):
    survey, _ = shared_survey
    client = _client(make_user(is_superuser=True))
    assert survey.pk in [item["id"] for item in client.get(SURVEYS).json()["results"]]


def test_only_the_owner_shares_and_deletes(shared_survey):
    survey, users = shared_survey
    detail = f"{SURVEYS}{survey.pk}/"
    editor = _client(users["editor"])
    current = editor.get(detail).json()["collaborators"]
    # Sending the collaborators back unchanged is fine; changing them is not.
    assert editor.patch(detail, {"collaborators": current}, format="json").status_code == 200
    grab = [c | {"can_distribute": True} for c in current]
    assert editor.patch(detail, {"collaborators": grab}, format="json").status_code == 403
    assert editor.delete(detail).status_code == 403

    owner = _client(users["owner"])
    shared = owner.patch(
        detail,
        {
            "collaborators": [
                {"user": "stranger1", "can_view": True, "can_edit": False, "can_distribute": True}
            ]
        },
        format="json",
    )
    assert shared.status_code == 200, shared.json()
    assert shared.json()["collaborators"] == [
        {"user": "stranger1", "can_view": True, "can_edit": False, "can_distribute": True}
    ]
    assert _client(users["stranger"]).get(detail).status_code == 200
    assert _client(users["editor"]).get(detail).status_code == 403
    assert owner.delete(detail).status_code == 204
    assert not Survey.objects.filter(pk=survey.pk).exists()


def test_unknown_collaborator_username_is_a_field_error(api_client, admin_user):
    survey = make_survey(owner=admin_user)
    answer = api_client.patch(
        f"{SURVEYS}{survey.pk}/",
        {"collaborators": [{"user": "nobody", "can_view": True}]},
        format="json",
    )
    assert answer.status_code == 400
    assert "user" in _first_item_errors(answer.json()["collaborators"])


def test_responses_list_filtered_by_survey(api_client, admin_user):
    first = make_survey(owner=admin_user, embedded_data_fields=["CaseNumber"])
    second = make_survey(owner=admin_user)
    hidden = make_survey()  # someone else's: never listed
    contact = make_contact()
    for survey in (first, second, hidden):
        link = make_survey_link(
            survey=survey,
            contact_id=contact.pk,
            snapshot={"transaction": {"CaseNumber": "00001026"}},
        )
        nps = survey.questions.order_by("position").first()
        response_record_answers(link=link, answers={nps.pk: 9}, finish=True)

    everything = api_client.get("/api/v1/responses/").json()
    assert everything["count"] == 2
    filtered = api_client.get(f"/api/v1/responses/?survey={first.pk}").json()
    assert filtered["count"] == 1
    row = filtered["results"][0]
    nps = first.questions.order_by("position").first()
    assert row["survey"] == first.pk
    assert row["contact"] == contact.pk
    assert row["answers"] == {str(nps.pk): 9}
    assert row["embedded_data"] == {"CaseNumber": "00001026"}
    assert row["started_at"] and row["finished_at"]
    assert api_client.get(f"/api/v1/responses/?survey={hidden.pk}").json()["count"] == 0
    assert api_client.get("/api/v1/responses/?survey=abc").status_code == 400


def test_responses_are_read_only(api_client):
    assert api_client.post("/api/v1/responses/", {}, format="json").status_code == 405


def test_unknown_keys_are_refused_not_dropped(api_client, admin_user):
    """A misspelled option would otherwise be dropped and the survey saved as something
    else than what was sent (a collaborator without the rights meant for them)."""
    make_user(username="alice")
    sent = {
        "name": "Case closed",
        "questions": [{"type": "nps", "text": "Recommend us?", "mandatory": True}],
        "collaborators": [{"user": "alice", "permissions": ["edit"]}],
        "owner_email": "x@example.org",
    }
    response = api_client.post(SURVEYS, sent, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert _first_item_errors(errors["collaborators"])["permissions"][0].startswith(
        "unknown key; expected one of: can_distribute, can_edit, can_view, user"
    )
    assert "mandatory" in _first_item_errors(errors["questions"])
    assert "owner_email" in errors
    assert not Survey.objects.exists()
    # What a GET returns can be sent back as is.
    sent = {**sent, "questions": [{"type": "nps", "text": "Recommend us?"}]}
    sent["collaborators"] = [{"user": "alice", "can_edit": True}]
    del sent["owner_email"]
    created = api_client.post(SURVEYS, sent, format="json").json()
    detail = f"{SURVEYS}{created['id']}/"
    again = api_client.put(detail, api_client.get(detail).json(), format="json")
    assert again.status_code == 200, again.json()


def test_the_browsable_api_form_posts_a_survey(client, admin_user):
    client.force_login(admin_user)
    page = client.get(SURVEYS, HTTP_ACCEPT="text/html")
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else ""
    response = client.post(
        SURVEYS,
        {"name": "From the form", "status": "draft", "csrfmiddlewaretoken": token},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201, response.content
    assert Survey.objects.get().name == "From the form"


@pytest.mark.django_db
def test_a_survey_a_workflow_distributes_is_not_deleted(api_client, admin_user, client):
    # The task names the survey inside its JSON config (no foreign key): deleting it
    # would fail every later run and break the workflow's export; 409 names the users.
    from tests.factories import make_workflow
    from xmflows.models import Task

    survey = make_survey(owner=admin_user, name="In use")
    unused = make_survey(owner=admin_user, name="Unused")
    workflow = make_workflow(owner=admin_user, name="Closed cases")
    Task.objects.create(
        workflow=workflow, position=0, type="distribute_survey", config={"survey": survey.pk}
    )
    reason = f"workflow 'Closed cases' (id {workflow.pk}), task 1, uses survey {survey.pk}"
    answer = api_client.delete(f"/api/v1/surveys/{survey.pk}/")
    assert answer.status_code == 409
    assert answer.json() == {"detail": f"cannot delete: {reason}"}
    client.force_login(make_user(username="root", is_superuser=True))
    page = client.get(f"/admin/surveys/survey/{survey.pk}/delete/").content.decode()
    assert "Cannot delete survey" in page and f"uses survey {survey.pk}" in page
    client.post(f"/admin/surveys/survey/{survey.pk}/delete/", {"post": "yes"})
    assert Survey.objects.filter(pk=survey.pk).exists()
    # A survey no workflow names but with distributions is kept too, also with 409.
    Task.objects.all().delete()
    from distributions.models import Distribution

    Distribution.objects.create(survey=survey, channel="email", created_by=admin_user)
    answer = api_client.delete(f"/api/v1/surveys/{survey.pk}/")
    assert (answer.status_code, answer.json()) == (
        409,
        {"detail": "cannot delete: the survey has distributions; deactivate it instead"},
    )
    assert api_client.delete(f"/api/v1/surveys/{unused.pk}/").status_code == 204


def test_choices_are_saved_stripped_and_ambiguous_ones_refused(api_client):
    question = {"type": "single_choice", "text": "Solved?", "choices": ["Yes ", " No"]}
    created = api_client.post(SURVEYS, {"name": "S", "questions": [question]}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["questions"][0]["choices"] == ["Yes", "No"]

    question["choices"] = ["a", "a "]
    answer = api_client.put(
        f"{SURVEYS}{created.json()['id']}/", {"name": "S", "questions": [question]}, format="json"
    )
    assert answer.status_code == 400
    assert _first_item_errors(answer.json()["questions"])["choices"] == [
        'choice "a" appears more than once (outer spaces do not count): '
        "each choice must be different"
    ]
    question["choices"] = ["Line1\nLine2"]
    answer = api_client.post(SURVEYS, {"name": "S", "questions": [question]}, format="json")
    assert answer.status_code == 400
    assert _first_item_errors(answer.json()["questions"])["choices"] == [
        'choice "Line1\\nLine2" holds a line break: write each choice on one line'
    ]


def test_a_put_dropping_an_answered_question_is_refused(api_client, admin_user):
    survey = make_survey(owner=admin_user)
    text = survey.questions.order_by("position").last()
    response_record_answers(
        link=make_survey_link(survey=survey), answers={text.pk: "Faster"}, finish=False
    )
    body = api_client.get(f"{SURVEYS}{survey.pk}/").json()
    body["questions"] = body["questions"][:1]
    answer = api_client.put(f"{SURVEYS}{survey.pk}/", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["questions"] == [
        'question 2 ("What could we do better?") has 1 answer: deleting it would lose them. '
        "Keep the question (it can be made optional), or deactivate this survey and create "
        "a new one without it"
    ]
    assert survey.questions.count() == 2
