"""Respondent pages: /s/{token}/ (answer) and /o/{token}/ (opt out)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from surveys import signals
from surveys.models import Question, Response, SurveyLink
from surveys.services import survey_deactivate
from tests.factories import make_contact, make_survey, make_survey_link, make_user

pytestmark = pytest.mark.django_db


def _path(link) -> str:
    return f"/s/{link.token}/"


def _ids(survey):
    nps, text = survey.questions.order_by("position")
    return nps.pk, text.pk


@pytest.fixture
def csrf_client():
    # CSRF is on for respondents: the tests post like a browser, token included.
    return Client(enforce_csrf_checks=True)


def _post(client, path: str, data: dict):
    page = client.get(path)
    assert page.status_code == 200
    token = client.cookies["csrftoken"].value
    return client.post(path, {**data, "csrfmiddlewaretoken": token})


@pytest.fixture
def received():
    events: list[str] = []

    def make_receiver(name):
        def receiver(sender, link, **kwargs):
            events.append(name)

        return receiver

    receivers = [
        (signal, make_receiver(name))
        for name, signal in [
            ("opened", signals.survey_opened),
            ("started", signals.survey_started),
            ("finished", signals.survey_finished),
            ("opted_out", signals.survey_opted_out),
        ]
    ]
    for signal, receiver in receivers:
        signal.connect(receiver)
    yield events
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def test_page_shows_question_text_piped_from_the_frozen_snapshot(client):
    contact = make_contact(first_name="Grace")
    survey = make_survey(
        questions=[
            {"type": "nps", "text": "How likely, ${m://FirstName}?"},
            {"type": "text", "text": "About case ${e://Field/CaseNumber}: <b>comments</b>?"},
        ]
    )
    link = make_survey_link(
        survey=survey,
        contact_id=contact.pk,
        snapshot={"contact": {"FirstName": "Grace"}, "embedded_data": {"CaseNumber": "00001026"}},
    )
    # The contact changes after the invitation was sent: the page does not care.
    contact.first_name = "Someone else"
    contact.save()

    page = client.get(_path(link))
    html = page.content.decode()
    assert page.status_code == 200
    assert "How likely, Grace?" in html
    assert "Someone else" not in html
    # Question text is escaped, never markup.
    assert "About case 00001026: &lt;b&gt;comments&lt;/b&gt;?" in html
    assert '<html lang="en">' in html
    assert page["Cache-Control"].startswith("max-age=0")


def test_first_get_marks_the_link_opened(client, received, django_capture_on_commit_callbacks):
    link = make_survey_link()
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_path(link))
    opened = SurveyLink.objects.get(pk=link.pk).opened_at
    assert opened is not None
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_path(link))
    assert SurveyLink.objects.get(pk=link.pk).opened_at == opened
    assert received == ["opened"]


def test_head_does_not_count_as_an_opening(client):
    # Link checkers and mail scanners send HEAD without anyone reading the survey.
    link = make_survey_link()
    assert client.head(_path(link)).status_code == 200
    assert SurveyLink.objects.get(pk=link.pk).opened_at is None


def test_page_is_accessible_markup(client):
    survey = make_survey(
        questions=[
            {"type": "nps", "text": "Recommend?"},
            {"type": "multiple_choice", "text": "Which?", "choices": ["Price", "Speed"]},
            {"type": "text", "text": "Comments?", "required": False},
        ]
    )
    nps, multiple, text = survey.questions.all()
    html = client.get(_path(make_survey_link(survey=survey))).content.decode()
    assert html.count("<fieldset") == 2 and html.count("<legend") == 2
    assert f'<label class="question-text" for="q{text.pk}">' in html
    assert f'id="q{nps.pk}-10"' in html and f'for="q{nps.pk}-10"' in html
    assert f'type="checkbox" id="q{multiple.pk}-1" name="q{multiple.pk}" value="Speed"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    # The head is all markup: no template comment printed as text (a stray text node
    # would end the <head> early, and the respondent would read it on the page).
    head = html.split("<head>", 1)[1].split("</head>", 1)[0]
    assert "{#" not in html and "#}" not in html and "CSRF" not in head
    assert '<meta name="referrer" content="same-origin">' in head


def test_save_then_finish_through_the_page(
    csrf_client, received, django_capture_on_commit_callbacks
):
    survey = make_survey(thank_you_text="Gracias!")
    nps, text = _ids(survey)
    link = make_survey_link(survey=survey)

    with django_capture_on_commit_callbacks(execute=True):
        saved = _post(csrf_client, _path(link), {f"q{nps}": "7", "action": "save"})
    assert saved.status_code == 303
    assert saved["Location"] == f"{_path(link)}?saved=1"
    page = csrf_client.get(saved["Location"])
    html = page.content.decode()
    assert "Your answers are saved" in html
    # The saved answer is prefilled.
    assert f'id="q{nps}-7" name="q{nps}" value="7" checked' in html
    assert Response.objects.get(link=link).finished_at is None

    with django_capture_on_commit_callbacks(execute=True):
        done = _post(
            csrf_client, _path(link), {f"q{nps}": "7", f"q{text}": "Great", "action": "finish"}
        )
    assert done.status_code == 200
    assert "Gracias!" in done.content.decode()
    response = Response.objects.get(link=link)
    assert response.answers == {str(nps): 7, str(text): "Great"}
    assert response.finished_at is not None
    assert received == ["opened", "started", "finished"]

    again = csrf_client.get(_path(link))
    assert again.status_code == 200
    assert "You have already completed this survey" in again.content.decode()


def test_post_without_csrf_token_is_refused(csrf_client):
    survey = make_survey()
    nps, _ = _ids(survey)
    link = make_survey_link(survey=survey)
    answer = csrf_client.post(_path(link), {f"q{nps}": "7", "action": "finish"})
    assert answer.status_code == 403
    assert not Response.objects.exists()


def test_validation_errors_are_shown_next_to_each_question(client):
    survey = make_survey(
        questions=[
            {"type": "nps", "text": "Recommend?"},
            {"type": "rating", "text": "Rate", "scale_max": 5},
            {"type": "single_choice", "text": "Pick", "choices": ["Yes", "No"]},
            {"type": "text", "text": "Why?"},
        ]
    )
    nps, rating, single, text = (q.pk for q in survey.questions.all())
    link = make_survey_link(survey=survey)
    page = client.post(
        _path(link),
        {
            f"q{nps}": "11",
            f"q{rating}": "0",
            f"q{single}": "Maybe",
            f"q{text}": "",
            "action": "finish",
        },
    )
    html = page.content.decode()
    assert page.status_code == 400
    assert "Choose a whole number from 0 to 10." in html
    assert "Choose a whole number from 1 to 5." in html
    assert "Choose one of the options listed." in html
    assert "This question requires an answer." in html
    # Each error is tied to its question for assistive technology.
    assert f'aria-describedby="q{nps}-hint q{nps}-error"' in html
    assert f'<p class="error" id="q{nps}-error">' in html
    assert f'aria-invalid="true" aria-describedby="q{text}-error"' in html
    assert 'role="alert"' in html
    # The page comes back with focus on the summary, so a screen reader reads it first.
    assert (
        'class="error-summary" role="alert" aria-labelledby="error-summary-title" '
        'tabindex="-1" autofocus>' in html
    )
    assert not Response.objects.exists()


def test_finish_twice_through_the_page_shows_already_completed(client):
    survey = make_survey()
    nps, _ = _ids(survey)
    link = make_survey_link(survey=survey)
    assert client.post(_path(link), {f"q{nps}": "9", "action": "finish"}).status_code == 200
    second = client.post(_path(link), {f"q{nps}": "0", "action": "finish"})
    assert "You have already completed this survey" in second.content.decode()
    assert Response.objects.get().answers == {str(nps): 9}


def test_unknown_token_is_404(client):
    page = client.get("/s/not-a-real-token/")
    assert page.status_code == 404
    assert "We could not find this survey" in page.content.decode()


def test_expired_link_is_410(client):
    link = make_survey_link(expires_at=timezone.now() - timedelta(seconds=1))
    page = client.get(_path(link))
    assert page.status_code == 410
    assert "This survey link has expired" in page.content.decode()
    assert SurveyLink.objects.get(pk=link.pk).opened_at is None


def test_link_expiring_later_still_works(client):
    link = make_survey_link(expires_at=timezone.now() + timedelta(days=1))
    assert client.get(_path(link)).status_code == 200


def test_inactive_survey_is_closed(client):
    survey = make_survey()
    nps, _ = _ids(survey)
    link = make_survey_link(survey=survey)
    survey_deactivate(survey=survey)
    page = client.get(_path(link))
    assert "This survey is closed" in page.content.decode()
    posted = client.post(_path(link), {f"q{nps}": "9", "action": "finish"})
    assert "This survey is closed" in posted.content.decode()
    assert not Response.objects.exists()


def test_opt_out_asks_then_confirms(csrf_client, received, django_capture_on_commit_callbacks):
    link = make_survey_link(snapshot={"contact": {"Email": "jane.doe@example.com"}})
    path = f"/o/{link.token}/"
    page = csrf_client.get(path)
    html = page.content.decode()
    assert page.status_code == 200
    assert "Unsubscribe j***@example.com from survey invitations by email?" in html
    assert "jane.doe" not in html
    assert SurveyLink.objects.get(pk=link.pk).opted_out_at is None

    with django_capture_on_commit_callbacks(execute=True):
        done = _post(csrf_client, path, {})
    assert done.status_code == 200
    assert "You will not receive further survey invitations by email." in done.content.decode()
    first = SurveyLink.objects.get(pk=link.pk).opted_out_at
    assert first is not None
    assert received == ["opted_out"]

    # Confirming again is harmless and keeps the first time.
    with django_capture_on_commit_callbacks(execute=True):
        again = _post(csrf_client, path, {})
    assert again.status_code == 200
    assert SurveyLink.objects.get(pk=link.pk).opted_out_at == first


def test_opt_out_works_on_an_expired_link(client):
    link = make_survey_link(expires_at=timezone.now() - timedelta(days=1))
    assert client.post(f"/o/{link.token}/").status_code == 200
    assert SurveyLink.objects.get(pk=link.pk).opted_out_at is not None


def test_opt_out_unknown_token_is_404(client):
    assert client.get("/o/nope/").status_code == 404


@pytest.mark.django_db
def test_one_click_unsubscribe_post_without_csrf_token_opts_out():
    """RFC 8058: mail clients POST 'List-Unsubscribe=One-Click' with no CSRF token."""
    from django.test import Client

    from tests.factories import make_survey_link

    link = make_survey_link()
    client = Client(enforce_csrf_checks=True)
    response = client.post(f"/o/{link.token}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    link.refresh_from_db()
    assert link.opted_out_at is not None


def test_an_admin_preview_records_nothing_and_cannot_answer(client):
    owner = make_user(username="owner")
    survey = make_survey(owner=owner)
    nps, _ = _ids(survey)
    link = make_survey_link(survey=survey)
    client.force_login(owner)
    page = client.get(f"{_path(link)}?preview=1")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Opening it was not recorded" in html
    assert 'value="finish" class="primary" disabled' in html
    link.refresh_from_db()
    assert link.opened_at is None and link.started_at is None
    refused = client.post(f"{_path(link)}?preview=1", {f"q{nps}": "9", "action": "finish"})
    assert refused.status_code == 403
    assert not Response.objects.exists()

    # ?preview=1 means nothing to someone who may not see the survey: a normal opening.
    client.force_login(make_user(username="stranger"))
    assert (
        "Opening it was not recorded" not in client.get(f"{_path(link)}?preview=1").content.decode()
    )
    link.refresh_from_db()
    assert link.opened_at is not None


def test_choices_saved_with_outer_spaces_or_line_breaks_can_still_be_picked(client):
    survey = make_survey(
        questions=[
            {"type": "single_choice", "text": "Solved?", "choices": ["Yes", "No"]},
            {"type": "multiple_choice", "text": "Which?", "choices": ["A", "B"]},
        ]
    )
    single, multiple = survey.questions.all()
    # Stored by an older version, before choices were checked and stripped on save.
    Question.objects.filter(pk=single.pk).update(choices=["Yes ", "Line1\nLine2"])
    Question.objects.filter(pk=multiple.pk).update(choices=[" Alpha", "Beta"])
    link = make_survey_link(survey=survey)

    saved = client.post(_path(link), {f"q{single.pk}": "Yes ", "action": "save"})
    assert saved.status_code == 303
    html = client.get(saved["Location"]).content.decode()
    assert f'id="q{single.pk}-0" name="q{single.pk}" value="Yes " checked' in html

    # A browser sends the option's value with its line break as CRLF.
    done = client.post(
        _path(link),
        {f"q{single.pk}": "Line1\r\nLine2", f"q{multiple.pk}": [" Alpha"], "action": "finish"},
    )
    assert done.status_code == 200, done.content.decode()
    assert Response.objects.get(link=link).answers == {
        str(single.pk): "Line1\nLine2",
        str(multiple.pk): [" Alpha"],
    }


def test_name_choices_and_thank_you_text_show_piped_text(client):
    survey = make_survey(
        name="About case ${e://Field/CaseNumber}",
        thank_you_text="Thanks, ${m://FirstName}!",
        questions=[{"type": "single_choice", "text": "Who helped?", "choices": ["Someone"]}],
    )
    question = survey.questions.get()
    # Refused on save now; one saved before is shown filled in, stored as written.
    Question.objects.filter(pk=question.pk).update(choices=["Me, ${m://FirstName}", "Someone"])
    link = make_survey_link(survey=survey, snapshot={"embedded_data": {"CaseNumber": "00001026"}})

    html = client.get(_path(link)).content.decode()
    assert "${" not in html.replace('value="Me, ${m://FirstName}"', "")
    assert "<title>About case 00001026" in html and "<h1>About case 00001026</h1>" in html
    assert f'<label for="q{question.pk}-0">Me, Ada</label>' in html

    done = client.post(_path(link), {f"q{question.pk}": "Me, ${m://FirstName}"})
    html = done.content.decode()
    assert done.status_code == 200
    assert "Thank you — About case 00001026" in html and "Thanks, Ada!" in html
    assert "${" not in html
    assert Response.objects.get(link=link).answers == {str(question.pk): "Me, ${m://FirstName}"}
