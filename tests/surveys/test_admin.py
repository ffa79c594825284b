"""Survey admin: pages render, activation actions go through the services, records are read-only."""

import pytest

from surveys.models import Response, SurveyStatus
from surveys.services import response_record_answers, survey_create
from tests.factories import make_survey, make_survey_link, make_user

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
