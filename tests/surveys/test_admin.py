"""Survey admin: pages render, activation actions go through the services, records are read-only."""

import html
import re

import pytest
from django.contrib.auth.models import Permission

from surveys.models import Response, Survey, SurveyCollaborator, SurveyStatus
from surveys.services import response_record_answers, survey_create
from tests.factories import make_survey, make_survey_link, make_user
from tests.html_forms import form_fields

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(make_user(is_superuser=True))
    return client


def test_admin_pages_render(admin_client):
    survey = make_survey(embedded_data_fields=["CaseNumber"])
    link = make_survey_link(survey=survey, snapshot={"transaction": {"CaseNumber": "00001026"}})
    nps = survey.questions.order_by("position").first()
    response = response_record_answers(link=link, answers={nps.pk: 9}, finish=True)
    for path in [
        "/admin/surveys/survey/",
        f"/admin/surveys/survey/{survey.pk}/change/",
        "/admin/surveys/survey/add/",
        "/admin/surveys/response/",
        f"/admin/surveys/response/{response.pk}/change/",
        "/admin/surveys/surveylink/",
        f"/admin/surveys/surveylink/{link.pk}/change/",
    ]:
        assert admin_client.get(path).status_code == 200, path
    page = admin_client.get(f"/admin/surveys/response/{response.pk}/change/").content.decode()
    assert "&quot;CaseNumber&quot;: &quot;00001026&quot;" in page
    assert f"{nps.pk}. How likely are you to recommend us" in page
    # The survey's page leads to where its results are read, and each link works.
    page = admin_client.get(f"/admin/surveys/survey/{survey.pk}/change/").content.decode()
    links = [
        f"/surveys/{survey.pk}/distributions/",
        f"/reports/distributions/?survey={survey.pk}",
        f"/admin/surveys/response/?survey__id__exact={survey.pk}",
        f"/surveys/{survey.pk}/responses.csv",
    ]
    for url in links:
        assert f'href="{url}"' in page, url
        assert admin_client.get(url).status_code == 200, url
    assert "1 response in the admin" in page


def test_responses_cannot_be_edited_in_the_admin(admin_client):
    link = make_survey_link()
    nps = link.survey.questions.order_by("position").first()
    response = response_record_answers(link=link, answers={nps.pk: 9}, finish=True)
    admin_client.post(f"/admin/surveys/response/{response.pk}/change/", {"answers": '{"1": 0}'})
    assert Response.objects.get(pk=response.pk).answers == {str(nps.pk): 9}


def test_activate_action_refuses_a_survey_without_questions(admin_client):
    ready = make_survey(status="draft")
    empty = survey_create(owner=make_user(), name="Empty")
    page = admin_client.post(
        "/admin/surveys/survey/",
        {"action": "activate_surveys", "_selected_action": [ready.pk, empty.pk]},
        follow=True,
    )
    ready.refresh_from_db()
    empty.refresh_from_db()
    assert ready.status == SurveyStatus.ACTIVE
    assert empty.status == SurveyStatus.DRAFT
    assert "at least one question" in page.content.decode()

    admin_client.post(
        "/admin/surveys/survey/",
        {"action": "deactivate_surveys", "_selected_action": [ready.pk]},
    )
    ready.refresh_from_db()
    assert ready.status == SurveyStatus.INACTIVE


def test_lists_are_typed_one_item_per_line(admin_client):
    owner = make_user(username="owner")
    page = admin_client.post(
        "/admin/surveys/survey/add/",
        {
            "name": "Lines",
            "owner": owner.pk,
            "embedded_data_fields": "Company\r\nStore Region\r\n\r\n",
            "thank_you_text": "Thanks",
            "questions-TOTAL_FORMS": "1",
            "questions-INITIAL_FORMS": "0",
            "questions-0-position": "0",
            "questions-0-type": "single_choice",
            "questions-0-text": "How did you hear of us?",
            "questions-0-choices": "Web\r\nFriend\r\nAd",
            "questions-0-required": "on",
            "questions-0-scale_max": "5",
            "collaborators-TOTAL_FORMS": "0",
            "collaborators-INITIAL_FORMS": "0",
        },
    )
    import re as _re

    assert page.status_code == 302, _re.findall(
        r"errorlist[^>]*>(.*?)</ul>", page.content.decode(), _re.S
    )
    from surveys.models import Survey

    survey = Survey.objects.get(name="Lines")
    assert survey.embedded_data_fields == ["Company", "Store Region"]
    assert survey.questions.get().choices == ["Web", "Friend", "Ad"]
    # And they are shown the same way to edit.
    change = admin_client.get(f"/admin/surveys/survey/{survey.pk}/change/").content.decode()
    assert "Company\nStore Region</textarea>" in change
    assert "Web\nFriend\nAd</textarea>" in change


def _change_form(client, survey) -> dict[str, str]:
    """The survey's admin form as a browser would post it back unchanged."""
    page = client.get(f"/admin/surveys/survey/{survey.pk}/change/")
    assert page.status_code == 200
    return dict(form_fields(page.content.decode(), "survey_form"))


def _errors(page) -> list[str]:
    return [
        html.unescape(re.sub(r"<[^>]+>", "", item)).strip()
        for item in re.findall(
            r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page.content.decode(), re.S
        )
    ]


def _positions(survey) -> list[tuple[str, int]]:
    return list(survey.questions.order_by("position").values_list("type", "position"))


def test_swapping_two_questions_positions_saves(admin_client):
    survey = make_survey()
    fields = _change_form(admin_client, survey)
    assert (fields["questions-0-position"], fields["questions-1-position"]) == ("1", "2")
    fields["questions-0-position"], fields["questions-1-position"] = "2", "1"
    page = admin_client.post(f"/admin/surveys/survey/{survey.pk}/change/", fields)
    assert page.status_code == 302, _errors(page)
    assert _positions(survey) == [("text", 1), ("nps", 2)]


def test_two_questions_given_one_position_get_a_form_error(admin_client):
    survey = make_survey()
    fields = _change_form(admin_client, survey)
    fields["questions-1-position"] = "1"
    page = admin_client.post(f"/admin/surveys/survey/{survey.pk}/change/", fields)
    assert page.status_code == 200
    assert "2 questions have position 1: give each question its own position" in _errors(page)
    assert _positions(survey) == [("nps", 1), ("text", 2)]


def test_an_answered_question_is_not_deleted_from_the_admin(admin_client):
    survey = make_survey()
    nps = survey.questions.order_by("position").first()
    for score in (3, 8):
        response_record_answers(
            link=make_survey_link(survey=survey), answers={nps.pk: score}, finish=True
        )
    fields = _change_form(admin_client, survey)
    fields["questions-0-DELETE"] = "on"
    page = admin_client.post(f"/admin/surveys/survey/{survey.pk}/change/", fields)
    assert page.status_code == 200
    assert _errors(page) == [
        'question 1 ("How likely are you to recommend us, ${m://FirstName}?") has 2 answers: '
        "deleting it would lose them. Keep the question (it can be made optional), or "
        "deactivate this survey and create a new one without it"
    ]
    assert survey.questions.count() == 2
    # An unanswered question is deleted, and the answered one may take its place.
    fields = _change_form(admin_client, survey)
    fields["questions-1-DELETE"] = "on"
    fields["questions-0-position"] = "2"
    page = admin_client.post(f"/admin/surveys/survey/{survey.pk}/change/", fields)
    assert page.status_code == 302, _errors(page)
    assert _positions(survey) == [("nps", 2)]


def test_pasted_json_choices_are_stripped_and_checked(admin_client):
    survey = make_survey(questions=[{"type": "single_choice", "text": "Pick", "choices": ["A"]}])
    fields = _change_form(admin_client, survey)
    fields["questions-0-choices"] = '["Line1\\nLine2", "Other"]'
    page = admin_client.post(f"/admin/surveys/survey/{survey.pk}/change/", fields)
    assert page.status_code == 200
    assert _errors(page) == [
        'choice "Line1\\nLine2" holds a line break: write each choice on one line'
    ]
    fields["questions-0-choices"] = '["Yes ", " Alpha"]'
    page = admin_client.post(f"/admin/surveys/survey/{survey.pk}/change/", fields)
    assert page.status_code == 302, _errors(page)
    assert survey.questions.get().choices == ["Yes", "Alpha"]


# --- Ownership and sharing ------------------------------------------------------------


def _staff_with_every_survey_permission(**overrides):
    """Staff with the surveys app's model permissions: what lets them into these pages,
    not what lets them see another owner's survey."""
    user = make_user(**overrides)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="surveys"))
    return user


@pytest.fixture
def others_survey():
    survey = make_survey(owner=make_user(username="alice"), name="Alice's survey")
    link = make_survey_link(survey=survey)
    nps = survey.questions.order_by("position").first()
    response = response_record_answers(link=link, answers={nps.pk: 9}, finish=True)
    return survey, link, response


def test_staff_see_only_the_surveys_shared_with_them(client, others_survey):
    survey, link, response = others_survey
    staff = _staff_with_every_survey_permission(username="mallory")
    own = make_survey(owner=staff, name="Mallory's survey")
    client.force_login(staff)

    listing = client.get("/admin/surveys/survey/").content.decode()
    assert "Mallory&#x27;s survey" in listing and "Alice" not in listing
    for path in [
        f"/admin/surveys/survey/{survey.pk}/change/",
        f"/admin/surveys/response/{response.pk}/change/",
        f"/admin/surveys/surveylink/{link.pk}/change/",
    ]:
        # The admin's answer for an object that is not there: back to its list.
        assert client.get(path).status_code == 302, path
    assert link.token not in client.get("/admin/surveys/surveylink/").content.decode()
    responses = client.get("/admin/surveys/response/").content.decode()
    assert f"/admin/surveys/response/{response.pk}/change/" not in responses
    assert "Alice" not in responses  # not even in the survey filter

    # Nor can they change it behind the list's back.
    client.post(
        f"/admin/surveys/survey/{survey.pk}/change/",
        {"name": "Mine now", "owner": staff.pk, "thank_you_text": "T"},
    )
    client.post(
        "/admin/surveys/survey/", {"action": "deactivate_surveys", "_selected_action": [survey.pk]}
    )
    survey.refresh_from_db()
    assert (survey.name, survey.owner.username, survey.status) == (
        "Alice's survey",
        "alice",
        "active",
    )
    assert own.owner == staff


def test_a_collaborator_changes_only_what_the_api_lets_them(client, others_survey):
    survey, link, response = others_survey
    viewer = _staff_with_every_survey_permission(username="viewer")
    editor = _staff_with_every_survey_permission(username="editor")
    SurveyCollaborator.objects.create(survey=survey, user=viewer, can_view=True)
    SurveyCollaborator.objects.create(survey=survey, user=editor, can_edit=True)
    change = f"/admin/surveys/survey/{survey.pk}/change/"

    client.force_login(viewer)
    page = client.get(change)
    assert page.status_code == 200 and 'name="name"' not in page.content.decode()  # read-only
    assert client.get(f"/admin/surveys/response/{response.pk}/change/").status_code == 200
    assert client.get(f"/admin/surveys/surveylink/{link.pk}/change/").status_code == 200
    assert client.post(change, {"name": "Viewer's"}).status_code == 403

    client.force_login(editor)
    fields = _change_form(client, survey)
    assert "owner" not in fields  # shown, not changeable
    assert "collaborators-0-can_edit" not in fields  # sharing is the owner's call
    fields["name"] = "Renamed by the editor"
    page = client.post(change, fields)
    assert page.status_code == 302, _errors(page)
    survey.refresh_from_db()
    assert (survey.name, survey.owner.username) == ("Renamed by the editor", "alice")
    assert (
        client.post(f"/admin/surveys/survey/{survey.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Survey.objects.filter(pk=survey.pk).exists()


def test_staff_create_surveys_as_their_own(client):
    staff = _staff_with_every_survey_permission(username="carol")
    someone = make_user(username="dave")
    client.force_login(staff)
    page = client.post(
        "/admin/surveys/survey/add/",
        {
            "name": "Carol's",
            "owner": someone.pk,
            "embedded_data_fields": "",
            "thank_you_text": "Thanks",
            "questions-TOTAL_FORMS": "0",
            "questions-INITIAL_FORMS": "0",
            "collaborators-TOTAL_FORMS": "0",
            "collaborators-INITIAL_FORMS": "0",
        },
    )
    assert page.status_code == 302, _errors(page)
    assert Survey.objects.get(name="Carol's").owner == staff


def test_a_superuser_still_sees_and_changes_every_survey(admin_client, others_survey):
    survey = others_survey[0]
    assert "Alice&#x27;s survey" in admin_client.get("/admin/surveys/survey/").content.decode()
    fields = _change_form(admin_client, survey)
    fields["owner"] = str(make_user(username="bob").pk)
    assert (
        admin_client.post(f"/admin/surveys/survey/{survey.pk}/change/", fields).status_code == 302
    )
    survey.refresh_from_db()
    assert survey.owner.username == "bob"
