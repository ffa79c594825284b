"""Survey services: links, answers and their validation, embedded data, signals, permissions."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from surveys import signals
from surveys.exceptions import AnswerError, SurveyError
from surveys.models import Question, Response, Survey, SurveyLink, SurveyStatus
from surveys.services import (
    opt_out_url,
    question_setup_problems,
    render_question_text,
    render_survey_name,
    render_thank_you_text,
    response_record_answers,
    survey_activate,
    survey_can_distribute,
    survey_can_edit,
    survey_can_view,
    survey_create,
    survey_deactivate,
    survey_link_create,
    survey_link_open,
    survey_link_opt_out,
    survey_link_url,
    survey_update,
)
from tests.factories import make_contact, make_survey, make_survey_link, make_user

pytestmark = pytest.mark.django_db


def _ids(survey):
    nps, text = survey.questions.order_by("position")
    return str(nps.pk), str(text.pk)


@pytest.fixture
def received():
    """Every survey signal sent, as (signal name, link id), in order."""
    events: list[tuple[str, int]] = []
    receivers = {}
    for name in ("survey_opened", "survey_started", "survey_finished", "survey_opted_out"):

        def receiver(sender, link, _name=name, **kwargs):
            assert sender is SurveyLink
            events.append((_name, link.pk))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield events
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


# --- Links ---------------------------------------------------------------------------


def test_link_tokens_are_long_random_and_unique():
    survey = make_survey()
    links = [survey_link_create(survey=survey, contact_id=None, snapshot={}) for _ in range(50)]
    tokens = {link.token for link in links}
    assert len(tokens) == 50
    # 24 random bytes, base64url: 32 characters, far beyond guessing.
    assert all(len(token) == 32 for token in tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", token) for token in tokens)


def test_link_urls_use_the_public_base_url(settings):
    settings.PUBLIC_BASE_URL = "https://surveys.example.com"
    link = make_survey_link()
    assert survey_link_url(link) == f"https://surveys.example.com/s/{link.token}/"
    assert opt_out_url(link) == f"https://surveys.example.com/o/{link.token}/"


def test_link_with_contact_and_frozen_snapshot():
    contact = make_contact(first_name="Grace", email="grace@example.org")
    source = {"contact": {"FirstName": "Grace"}, "embedded_data": {"CaseNumber": "00001026"}}
    link = survey_link_create(survey=make_survey(), contact_id=contact.pk, snapshot=source)
    # Changing the caller's dict (or the contact) later does not change the link.
    source["contact"]["FirstName"] = "Changed"
    contact.first_name = "Changed"
    contact.save()
    link.refresh_from_db()
    assert link.contact_id == contact.pk
    assert link.snapshot["contact"] == {"FirstName": "Grace"}
    assert link.snapshot["transaction"] == {} and link.snapshot["event_fields"] == {}


def test_question_text_is_piped_from_the_snapshot():
    survey = make_survey(
        questions=[{"type": "nps", "text": "${m://FirstName}, about case ${e://Field/CaseNumber}?"}]
    )
    link = make_survey_link(
        survey=survey,
        snapshot={"contact": {"FirstName": "Ada"}, "embedded_data": {"CaseNumber": "00001026"}},
    )
    assert render_question_text(survey.questions.get(), link) == "Ada, about case 00001026?"


# --- Answers -------------------------------------------------------------------------


def test_partial_save_then_finish(received, django_capture_on_commit_callbacks):
    survey = make_survey()
    nps, text = _ids(survey)
    link = make_survey_link(survey=survey)

    with django_capture_on_commit_callbacks(execute=True):
        response = response_record_answers(link=link, answers={nps: "9"}, finish=False)
    assert response.answers == {nps: 9}
    assert response.started_at is not None and response.finished_at is None
    link.refresh_from_db()
    assert link.started_at == response.started_at and link.finished_at is None

    # The second save keeps the NPS answer and adds the text.
    with django_capture_on_commit_callbacks(execute=True):
        response = response_record_answers(
            link=link, answers={text: "  Faster replies  "}, finish=True
        )
    assert response.answers == {nps: 9, text: "Faster replies"}
    assert response.finished_at is not None
    assert Response.objects.count() == 1
    link.refresh_from_db()
    assert link.finished_at == response.finished_at
    assert received == [("survey_started", link.pk), ("survey_finished", link.pk)]


def test_a_response_started_when_its_page_was_opened():
    # The distribution line turns "Survey Started" on opening; the response agrees.
    survey = make_survey()
    nps, _ = _ids(survey)
    link = make_survey_link(survey=survey)
    SurveyLink.objects.filter(pk=link.pk).update(opened_at=timezone.now() - timedelta(minutes=3))
    link.refresh_from_db()
    response = response_record_answers(link=link, answers={nps: 8}, finish=True)
    assert response.started_at == link.opened_at < response.finished_at


def test_signals_wait_for_the_commit(received, django_capture_on_commit_callbacks):
    survey = make_survey()
    nps, _ = _ids(survey)
    link = make_survey_link(survey=survey)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response_record_answers(link=link, answers={nps: 3}, finish=True)
    assert received == []
    for callback in callbacks:
        callback()
    assert received == [("survey_started", link.pk), ("survey_finished", link.pk)]


def test_saving_nothing_does_not_start_the_survey(received, django_capture_on_commit_callbacks):
    link = make_survey_link()
    with django_capture_on_commit_callbacks(execute=True):
        response = response_record_answers(link=link, answers={}, finish=False)
    assert response.started_at is None
    assert received == []


def test_required_answer_is_checked_on_finish_only():
    survey = make_survey()
    nps, text = _ids(survey)
    link = make_survey_link(survey=survey)
    response_record_answers(link=link, answers={text: "draft"}, finish=False)
    with pytest.raises(AnswerError) as caught:
        response_record_answers(link=link, answers={nps: ""}, finish=True)
    assert caught.value.errors == {nps: "This question requires an answer."}
    link.refresh_from_db()
    assert link.finished_at is None


@pytest.mark.parametrize(
    ("question", "value", "message"),
    [
        ({"type": "nps", "text": "NPS"}, 11, "Choose a whole number from 0 to 10."),
        ({"type": "nps", "text": "NPS"}, "-1", "Choose a whole number from 0 to 10."),
        ({"type": "nps", "text": "NPS"}, "7.5", "Choose a whole number from 0 to 10."),
        ({"type": "nps", "text": "NPS"}, True, "Choose a whole number from 0 to 10."),
        (
            {"type": "rating", "text": "Rate", "scale_max": 5},
            0,
            "Choose a whole number from 1 to 5.",
        ),
        (
            {"type": "rating", "text": "Rate", "scale_max": 7},
            8,
            "Choose a whole number from 1 to 7.",
        ),
        (
            {"type": "single_choice", "text": "Pick", "choices": ["Yes", "No"]},
            "Maybe",
            "Choose one of the options listed.",
        ),
        (
            {"type": "multiple_choice", "text": "Pick", "choices": ["A", "B"]},
            ["A", "C"],
            "Choose only among the options listed.",
        ),
        (
            {"type": "text", "text": "Say"},
            "x" * 5001,
            "Keep your answer to 5000 characters or fewer (it has 5001).",
        ),
    ],
)
def test_invalid_answers_are_refused_with_a_clear_message(question, value, message):
    survey = make_survey(questions=[question])
    question_id = str(survey.questions.get().pk)
    link = make_survey_link(survey=survey)
    with pytest.raises(AnswerError) as caught:
        response_record_answers(link=link, answers={question_id: value}, finish=False)
    assert caught.value.errors == {question_id: message}
    # Nothing is stored from a refused submission.
    assert not Response.objects.filter(link=link).exists()


def test_valid_answers_are_stored_in_their_contract_types():
    survey = make_survey(
        questions=[
            {"type": "nps", "text": "NPS"},
            {"type": "rating", "text": "Rate", "scale_max": 7},
            {"type": "single_choice", "text": "One", "choices": ["Yes", "No"]},
            {"type": "multiple_choice", "text": "Many", "choices": ["A", "B", "C"]},
            {"type": "text", "text": "Say"},
        ]
    )
    nps, rating, single, multiple, text = (str(q.pk) for q in survey.questions.all())
    link = make_survey_link(survey=survey)
    response = response_record_answers(
        link=link,
        answers={nps: "0", rating: 7, single: "No", multiple: ["C", "A", "A"], text: "a\r\nb"},
        finish=True,
    )
    response.refresh_from_db()
    assert response.answers == {
        nps: 0,
        rating: 7,
        single: "No",
        multiple: ["A", "C"],
        text: "a\nb",
    }


def test_text_of_exactly_5000_characters_with_line_breaks_is_accepted():
    survey = make_survey(questions=[{"type": "text", "text": "Say"}])
    question_id = str(survey.questions.get().pk)
    # A browser sends CRLF but counts one character per line break against maxlength.
    value = ("x" * 99 + "\r\n") * 50
    response = response_record_answers(
        link=make_survey_link(survey=survey), answers={question_id: value}, finish=True
    )
    assert len(response.answers[question_id]) == 4999  # the final line break is trimmed


def test_unknown_question_is_reported():
    link = make_survey_link()
    with pytest.raises(AnswerError) as caught:
        response_record_answers(link=link, answers={"999999": 5}, finish=False)
    assert caught.value.errors == {"999999": "This question is not part of the survey."}


def test_finish_twice_is_refused(received, django_capture_on_commit_callbacks):
    survey = make_survey()
    nps, _ = _ids(survey)
    link = make_survey_link(survey=survey)
    response_record_answers(link=link, answers={nps: 10}, finish=True)
    with pytest.raises(AnswerError) as caught:
        response_record_answers(link=link, answers={nps: 0}, finish=True)
    assert caught.value.errors == {"__all__": "this survey is already completed"}
    assert caught.value.code == "completed"
    assert Response.objects.get(link=link).answers == {nps: 10}


def test_expired_link_and_closed_survey_cannot_be_answered():
    survey = make_survey()
    nps, _ = _ids(survey)
    expired = make_survey_link(survey=survey, expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(AnswerError) as caught:
        response_record_answers(link=expired, answers={nps: 5}, finish=True)
    assert caught.value.code == "expired"

    open_link = make_survey_link(survey=survey)
    survey_deactivate(survey=survey)
    with pytest.raises(AnswerError) as caught:
        response_record_answers(link=open_link, answers={nps: 5}, finish=True)
    assert caught.value.code == "closed"
    assert caught.value.errors == {"__all__": "This survey is closed"}


def test_response_is_tied_to_the_contact_of_the_link():
    contact = make_contact()
    survey = make_survey()
    nps, _ = _ids(survey)
    link = make_survey_link(survey=survey, contact_id=contact.pk)
    response = response_record_answers(link=link, answers={nps: 8}, finish=True)
    assert response.contact_id == contact.pk and response.link_id == link.pk


# --- Embedded data -------------------------------------------------------------------


def test_embedded_data_records_declared_fields_by_exact_name():
    survey = make_survey(embedded_data_fields=["CaseNumber", "Priority", "Region", "Missing"])
    nps, _ = _ids(survey)
    link = make_survey_link(
        survey=survey,
        snapshot={
            "embedded_data": {
                "casenumber": "wrong case",  # not the declared name: ignored
                "Priority": "Low",
                "Region": "EMEA",
                "Undeclared": "never recorded",
            },
            "transaction": {"CaseNumber": "00001026", "Priority": "High", "Region": ""},
        },
    )
    response = response_record_answers(link=link, answers={nps: 9}, finish=True)
    # The transaction (this very case) wins over the contact's latest values; an
    # empty transaction value does not hide the contact's.
    assert response.embedded_data == {
        "CaseNumber": "00001026",
        "Priority": "High",
        "Region": "EMEA",
    }


def test_embedded_data_is_not_changed_by_a_later_survey_source_update():
    survey = make_survey(embedded_data_fields=["CaseNumber"])
    nps, _ = _ids(survey)
    contact = make_contact(embedded_data={"CaseNumber": "00001026"})
    link = make_survey_link(
        survey=survey,
        contact_id=contact.pk,
        snapshot={"embedded_data": dict(contact.embedded_data)},
    )
    contact.embedded_data = {"CaseNumber": "99999999"}
    contact.save()
    response = response_record_answers(link=link, answers={nps: 9}, finish=True)
    assert response.embedded_data == {"CaseNumber": "00001026"}


# --- Opening and opting out ------------------------------------------------------------


def test_open_is_recorded_once(received, django_capture_on_commit_callbacks):
    link = make_survey_link()
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_link_open(link=link) is True
        first = SurveyLink.objects.get(pk=link.pk).opened_at
        assert survey_link_open(link=link) is False
    assert SurveyLink.objects.get(pk=link.pk).opened_at == first
    assert received == [("survey_opened", link.pk)]


def test_opt_out_keeps_the_first_time_and_signals_every_confirmation(
    received, django_capture_on_commit_callbacks
):
    link = make_survey_link()
    with django_capture_on_commit_callbacks(execute=True):
        survey_link_opt_out(link=link)
    first = SurveyLink.objects.get(pk=link.pk).opted_out_at
    assert first is not None
    with django_capture_on_commit_callbacks(execute=True):
        survey_link_opt_out(link=link)
    assert SurveyLink.objects.get(pk=link.pk).opted_out_at == first
    assert received == [("survey_opted_out", link.pk), ("survey_opted_out", link.pk)]


# --- Surveys and permissions ----------------------------------------------------------


def test_activation_needs_a_question():
    survey = survey_create(owner=make_user(), name="Empty")
    assert survey.status == SurveyStatus.DRAFT
    with pytest.raises(SurveyError):
        survey_activate(survey=survey)
    survey_update(survey=survey, data={"questions": [{"type": "nps", "text": "NPS?"}]})
    assert survey_activate(survey=survey).status == SurveyStatus.ACTIVE
    assert survey_deactivate(survey=survey).status == SurveyStatus.INACTIVE


def test_active_survey_keeps_at_least_one_question():
    survey = make_survey()
    with pytest.raises(SurveyError):
        survey_update(survey=survey, data={"name": "Renamed", "questions": []})
    survey.refresh_from_db()
    assert survey.questions.count() == 2 and survey.name != "Renamed"


def test_question_update_keeps_ids_and_reorders():
    survey = make_survey()
    nps, text = survey.questions.order_by("position")
    survey_update(
        survey=survey,
        data={
            "questions": [
                {"id": text.pk, "type": "text", "text": "Anything else?", "required": False},
                {"id": nps.pk, "type": "nps", "text": "Recommend?"},
                {"type": "rating", "text": "Rate us", "scale_max": 7},
            ]
        },
    )
    rows = list(survey.questions.values_list("pk", "position", "text"))
    assert rows[:2] == [(text.pk, 1, "Anything else?"), (nps.pk, 2, "Recommend?")]
    assert rows[2][1:] == (3, "Rate us")


def test_permission_matrix():
    owner, viewer, editor, distributor, stranger = (make_user() for _ in range(5))
    superuser = make_user(is_superuser=True)
    survey = survey_create(
        owner=owner,
        name="Shared",
        collaborators=[
            {"user": viewer, "can_view": True, "can_edit": False, "can_distribute": False},
            {"user": editor, "can_view": True, "can_edit": True, "can_distribute": False},
            {"user": distributor, "can_view": False, "can_edit": False, "can_distribute": True},
        ],
    )
    expected = {
        owner: (True, True, True),
        superuser: (True, True, True),
        viewer: (True, False, False),
        editor: (True, True, False),
        distributor: (True, False, True),
        stranger: (False, False, False),
    }
    for user, (view, edit, distribute) in expected.items():
        assert survey_can_view(survey=survey, user=user) is view, user
        assert survey_can_edit(survey=survey, user=user) is edit, user
        assert survey_can_distribute(survey=survey, user=user) is distribute, user

    from django.contrib.auth.models import AnonymousUser

    assert not survey_can_view(survey=survey, user=AnonymousUser())
    assert not survey_can_distribute(survey=survey, user=None)


@pytest.mark.django_db
def test_embedded_data_names_stored_in_a_wrong_shape_are_passed_over():
    # Written past the forms (they refuse it): the respondent's answer must still save.
    from surveys.services import response_embedded_data

    survey = make_survey()
    Survey.objects.filter(pk=survey.pk).update(embedded_data_fields=[1, {"a": 2}, "CaseNumber"])
    survey.refresh_from_db()
    snapshot = {"embedded_data": {"CaseNumber": "0042", "1": "x"}}
    assert response_embedded_data(survey=survey, snapshot=snapshot) == {"CaseNumber": "0042"}


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        (
            ["Line1\nLine2", "Other"],
            'choice "Line1\\nLine2" holds a line break: write each choice on one line',
        ),
        (["Yes", "  "], "choice 2 is empty: remove it or give it a text"),
        (
            ["a", "a "],
            'choice "a" appears more than once (outer spaces do not count): '
            "each choice must be different",
        ),
        (
            ["Hi ${m://FirstName}", "No"],
            'choice "Hi ${m://FirstName}" holds piped text (${m://FirstName}): a choice is '
            "the same for every respondent; put the piped text in the question's text",
        ),
    ],
)
def test_choices_that_respondents_could_not_pick_are_refused_naming_the_choice(choices, message):
    problems = question_setup_problems(
        type="single_choice", text="Pick", choices=choices, scale_max=5
    )
    assert problems == {"choices": message}


def test_choices_are_saved_without_their_outer_spaces():
    survey = make_survey(
        questions=[{"type": "single_choice", "text": "Pick", "choices": ["Yes ", " Alpha"]}]
    )
    assert survey.questions.get().choices == ["Yes", "Alpha"]


def test_choices_saved_before_they_were_stripped_still_match_the_posted_answer():
    survey = make_survey(
        questions=[
            {"type": "single_choice", "text": "One", "choices": ["Yes", "No"]},
            {"type": "multiple_choice", "text": "Many", "choices": ["A", "B"]},
        ]
    )
    single, multiple = survey.questions.all()
    # As an older version stored them, before choices were checked on save.
    Question.objects.filter(pk=single.pk).update(choices=["Yes ", "Line1\nLine2"])
    Question.objects.filter(pk=multiple.pk).update(choices=[" Alpha", "Beta\nGamma", "a"])
    link = make_survey_link(survey=survey)
    # What a browser posts: the page trims it; line breaks arrive as CRLF.
    response = response_record_answers(
        link=link,
        answers={single.pk: "Line1\r\nLine2", multiple.pk: ["Beta\r\nGamma", "Alpha"]},
        finish=False,
    )
    assert response.answers == {
        str(single.pk): "Line1\nLine2",
        str(multiple.pk): [" Alpha", "Beta\nGamma"],
    }
    # The answer keeps the choice's own text, so it is counted with that choice.
    response = response_record_answers(link=link, answers={single.pk: "Yes"}, finish=True)
    assert response.answers[str(single.pk)] == "Yes "


def test_a_question_with_answers_is_not_deleted_by_an_update():
    survey = make_survey()
    nps, text = survey.questions.order_by("position")
    for score in (9, 10):
        response_record_answers(
            link=make_survey_link(survey=survey), answers={nps.pk: score}, finish=False
        )
    with pytest.raises(SurveyError) as caught:
        survey_update(
            survey=survey, data={"questions": [{"id": text.pk, "type": "text", "text": "Why?"}]}
        )
    assert caught.value.field == "questions"
    assert caught.value.message == (
        'question 1 ("How likely are you to recommend us, ${m://FirstName}?") has 2 answers: '
        "deleting it would lose them. Keep the question (it can be made optional), or "
        "deactivate this survey and create a new one without it"
    )
    assert survey.questions.count() == 2
    # The unanswered one may go.
    survey_update(survey=survey, data={"questions": [{"id": nps.pk, "type": "nps", "text": "R?"}]})
    assert list(survey.questions.values_list("pk", flat=True)) == [nps.pk]


def test_name_and_thank_you_text_are_piped_from_the_snapshot():
    survey = make_survey(
        name="Your case ${e://Field/CaseNumber}",
        thank_you_text="Thanks, ${m://FirstName}!",
    )
    link = make_survey_link(survey=survey, snapshot={"embedded_data": {"CaseNumber": "00001026"}})
    assert render_survey_name(survey, link) == "Your case 00001026"
    assert render_thank_you_text(survey, link) == "Thanks, Ada!"
