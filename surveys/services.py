"""Writes on surveys, personal links and responses, and the permission checks other apps rely on.

The distributions app codes against this module (links, URLs, permission and
status checks), so its signatures are an interface: keyword-only, stable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import piped_text
from surveys import signals
from surveys.exceptions import AnswerError, SurveyError
from surveys.models import (
    DEFAULT_THANK_YOU_TEXT,
    Question,
    QuestionType,
    Response,
    Survey,
    SurveyCollaborator,
    SurveyLink,
    SurveyStatus,
)

SNAPSHOT_SECTIONS: tuple[str, ...] = ("contact", "embedded_data", "transaction", "event_fields")
TEXT_ANSWER_MAX_LENGTH = 5000
NPS_MIN, NPS_MAX = 0, 10
RATING_MIN = 1

ALREADY_COMPLETED = "this survey is already completed"
LINK_EXPIRED = "This survey link has expired"
SURVEY_CLOSED = "This survey is closed"
ANSWER_REQUIRED = "This question requires an answer."

_WHOLE_NUMBER = re.compile(r"[+-]?\d{1,9}")


# --- Permissions -------------------------------------------------------------------


def _signed_in(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False))


def _has_collaboration(survey: Survey, user, condition: Q) -> bool:
    return SurveyCollaborator.objects.filter(condition, survey=survey, user=user).exists()


def survey_can_view(*, survey: Survey, user) -> bool:
    """Owner, superuser, or any collaborator: who may edit or distribute may also look."""
    if not _signed_in(user):
        return False
    if user.is_superuser or survey.owner_id == user.pk:
        return True
    return _has_collaboration(
        survey, user, Q(can_view=True) | Q(can_edit=True) | Q(can_distribute=True)
    )


def survey_can_edit(*, survey: Survey, user) -> bool:
    if not _signed_in(user):
        return False
    if user.is_superuser or survey.owner_id == user.pk:
        return True
    return _has_collaboration(survey, user, Q(can_edit=True))


def survey_can_distribute(*, survey: Survey, user) -> bool:
    """SPEC F4: distributing someone else's survey needs the owner's distribute permission."""
    if not _signed_in(user):
        return False
    if user.is_superuser or survey.owner_id == user.pk:
        return True
    return _has_collaboration(survey, user, Q(can_distribute=True))


def survey_can_share(*, survey: Survey, user) -> bool:
    """Changing who collaborates is the owner's call, not an editor's."""
    return _signed_in(user) and (user.is_superuser or survey.owner_id == user.pk)


# --- Surveys and questions ----------------------------------------------------------


def choice_key(text: str) -> str:
    """A choice as the respondent page compares it: line breaks as a browser posts
    them (CRLF) made plain, outer whitespace removed."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _quoted(text: str) -> str:
    # JSON quoting shows a line break as \n, so the message names the choice exactly.
    return json.dumps(text, ensure_ascii=False)


def _choices_problem(choices: list[Any]) -> str:
    """Why `choices` cannot be offered to respondents, naming each bad choice; "" when fine.

    Answers are stored as the choice's text and matched against what the page posts
    back: the page trims outer spaces and a browser sends a line break as CRLF, so a
    choice must come back from that trip unchanged, and unlike every other choice.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for number, choice in enumerate(choices, start=1):
        if not isinstance(choice, str):
            problems.append(f"choice {number} is not a text")
            continue
        text = choice.strip()
        if not text:
            problems.append(f"choice {number} is empty: remove it or give it a text")
        elif len(text.splitlines()) > 1:
            problems.append(
                f"choice {_quoted(text)} holds a line break: write each choice on one line"
            )
        elif piped_text.find_placeholders(text):
            # Rendering it per respondent would store a different text per person,
            # so answers could neither be matched nor counted together.
            placeholders = ", ".join(p.raw for p in piped_text.find_placeholders(text))
            problems.append(
                f"choice {_quoted(text)} holds piped text ({placeholders}): a choice is "
                "the same for every respondent; put the piped text in the question's text"
            )
        elif text in seen:
            problems.append(
                f"choice {_quoted(text)} appears more than once (outer spaces do not count): "
                "each choice must be different"
            )
        seen.add(text)
    return "; ".join(dict.fromkeys(problems))


def question_choices_clean(choices: Iterable[str]) -> list[str]:
    """The choices as stored: without outer whitespace (checked by question_setup_problems)."""
    return [choice.strip() for choice in choices]


def question_setup_problems(
    *, type: str, text: str, choices: Any, scale_max: Any
) -> dict[str, str]:
    """What is wrong with a question's setup, per field; empty when it can be asked.

    Shared by the API serializer and the admin form so both refuse the same things.
    """
    problems: dict[str, str] = {}
    if type not in QuestionType.values:
        problems["type"] = f"must be one of {', '.join(QuestionType.values)}"
        return problems
    if not isinstance(text, str) or not text.strip():
        problems["text"] = "a question needs a text"
    if type in (QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE):
        if not isinstance(choices, list) or not choices:
            problems["choices"] = "a choice question needs a list of at least one choice"
        elif problem := _choices_problem(choices):
            problems["choices"] = problem
    elif choices:
        problems["choices"] = "only single and multiple choice questions have choices"
    if type == QuestionType.RATING and (
        isinstance(scale_max, bool) or not isinstance(scale_max, int) or not 2 <= scale_max <= 10
    ):
        problems["scale_max"] = "a rating scale goes from 1 up to a maximum between 2 and 10"
    return problems


def question_answer_count(*, question: Question) -> int:
    """How many of the survey's responses (finished or not) hold an answer to `question`."""
    # Counted here, not in SQL: answers are keyed by the question's id, and Django
    # reads a digit-only key as an array index ($[17], -> 17), never the object's
    # "17". Only a deletion asks, and only the answers column is read.
    key = str(question.pk)
    answers = Response.objects.filter(survey_id=question.survey_id).values_list(
        "answers", flat=True
    )
    return sum(
        1
        for stored in answers.iterator(chunk_size=2000)
        if isinstance(stored, dict) and key in stored
    )


def question_delete_problem(*, question: Question) -> str:
    """Why `question` may not be deleted; "" when it may.

    Answers are keyed by question id: deleting an answered question would drop its
    answers from every response, the API and the responses CSV, without a trace.
    """
    count = question_answer_count(question=question)
    if not count:
        return ""
    excerpt = question.text if len(question.text) <= 60 else question.text[:60] + "…"
    return (
        f"question {question.position} ({_quoted(excerpt)}) has {count} "
        f"answer{'' if count == 1 else 's'}: deleting it would lose them. Keep the question "
        "(it can be made optional), or deactivate this survey and create a new one without it"
    )


def question_positions_release(
    *, survey: Survey, question_ids: Iterable[int], wanted: Iterable[int] = ()
) -> None:
    """Park the given questions above every current and `wanted` position.

    Positions are unique per survey and rows are written one at a time, so a
    reorder (1<->2) would collide half-way; written again afterwards, each lands
    on its final position. Call inside the transaction that writes those.
    """
    ids = sorted(set(question_ids))
    if not ids:
        return
    current = list(Question.objects.filter(survey=survey).values_list("position", flat=True))
    parking = max([*current, *wanted, 0]) + 1
    for offset, question_id in enumerate(ids):
        Question.objects.filter(pk=question_id, survey=survey).update(position=parking + offset)


def _clean_field_names(names: Iterable[str]) -> list[str]:
    # Matching is by exact name (case-sensitive, inner spaces allowed), so only the
    # outer whitespace a form adds by accident is removed.
    cleaned: list[str] = []
    for name in names:
        name = str(name).strip()
        if name and name not in cleaned:
            cleaned.append(name)
    return cleaned


def _questions_replace(survey: Survey, questions: list[Mapping[str, Any]]) -> None:
    """Make the survey's questions exactly `questions`, in their order.

    A question given with the `id` of one of this survey's questions is updated in
    place, so answers already recorded under that id stay attached to it; the
    others are created, and questions left out are deleted.
    """
    existing = {question.pk: question for question in survey.questions.all()}
    if all(item.get("position") is not None for item in questions):
        ordered = [
            item
            for _, item in sorted(
                enumerate(questions), key=lambda pair: (pair[1]["position"], pair[0])
            )
        ]
    else:
        ordered = list(questions)
    kept_ids: set[int] = set()
    for item in ordered:
        question_id = item.get("id")
        if question_id is None:
            continue
        if question_id not in existing:
            raise SurveyError(
                f"question {question_id} is not a question of this survey", field="questions"
            )
        if question_id in kept_ids:
            raise SurveyError(f"question {question_id} is listed twice", field="questions")
        kept_ids.add(question_id)

    dropped = [question for pk, question in existing.items() if pk not in kept_ids]
    for question in dropped:
        if problem := question_delete_problem(question=question):
            raise SurveyError(problem, field="questions")
    Question.objects.filter(pk__in=[question.pk for question in dropped]).delete()
    question_positions_release(
        survey=survey, question_ids=kept_ids, wanted=range(1, len(ordered) + 1)
    )

    to_update: list[Question] = []
    to_create: list[Question] = []
    for position, item in enumerate(ordered, start=1):
        question = existing[item["id"]] if item.get("id") is not None else Question(survey=survey)
        question.position = position
        question.type = item["type"]
        question.text = item["text"]
        question.choices = question_choices_clean(item.get("choices") or [])
        question.required = item.get("required", True)
        question.scale_max = item.get("scale_max") or 5
        (to_update if question.pk else to_create).append(question)
    Question.objects.bulk_update(
        to_update, ["position", "type", "text", "choices", "required", "scale_max"]
    )
    Question.objects.bulk_create(to_create)


def _collaborators_replace(survey: Survey, collaborators: list[Mapping[str, Any]]) -> None:
    """`collaborators`: [{"user": <User>, "can_view", "can_edit", "can_distribute"}]."""
    wanted = {item["user"].pk: item for item in collaborators if item["user"].pk != survey.owner_id}
    survey.collaborators.exclude(user_id__in=wanted).delete()
    for user_id, item in wanted.items():
        SurveyCollaborator.objects.update_or_create(
            survey=survey,
            user_id=user_id,
            defaults={
                "can_view": item.get("can_view", True),
                "can_edit": item.get("can_edit", False),
                "can_distribute": item.get("can_distribute", False),
            },
        )


@transaction.atomic
def survey_create(
    *,
    owner,
    name: str,
    questions: Iterable[Mapping[str, Any]] = (),
    embedded_data_fields: Iterable[str] = (),
    thank_you_text: str | None = None,
    collaborators: list[Mapping[str, Any]] | None = None,
    status: str = SurveyStatus.DRAFT,
) -> Survey:
    """Create a survey; `questions` are dicts as QuestionSerializer validates them."""
    survey = Survey.objects.create(
        owner=owner,
        name=name,
        embedded_data_fields=_clean_field_names(embedded_data_fields),
        thank_you_text=thank_you_text or DEFAULT_THANK_YOU_TEXT,
    )
    _questions_replace(survey, list(questions))
    if collaborators:
        _collaborators_replace(survey, collaborators)
    _status_set(survey, status)
    return survey


@transaction.atomic
def survey_update(*, survey: Survey, data: Mapping[str, Any]) -> Survey:
    """Apply the keys present in `data`; `questions` and `collaborators` replace their lists.

    Permission is the caller's check (survey_can_edit, survey_can_share).
    """
    if "name" in data:
        survey.name = data["name"]
    if "embedded_data_fields" in data:
        survey.embedded_data_fields = _clean_field_names(data["embedded_data_fields"] or [])
    if "thank_you_text" in data:
        survey.thank_you_text = data["thank_you_text"] or DEFAULT_THANK_YOU_TEXT
    survey.save()
    if "questions" in data:
        _questions_replace(survey, list(data["questions"]))
    if "collaborators" in data:
        _collaborators_replace(survey, list(data["collaborators"] or []))
    if "status" in data:
        _status_set(survey, data["status"])
    if survey.status == SurveyStatus.ACTIVE and not survey.questions.exists():
        # The same reason activation needs a question: respondents would get an
        # empty page. The atomic block undoes the whole update.
        raise SurveyError(
            "an active survey needs at least one question; deactivate it first",
            field="questions",
        )
    return survey


def _status_set(survey: Survey, status: str) -> None:
    if status == survey.status:
        return
    if status == SurveyStatus.ACTIVE:
        survey_activate(survey=survey)
    elif status == SurveyStatus.INACTIVE:
        survey_deactivate(survey=survey)
    elif status == SurveyStatus.DRAFT:
        survey.status = SurveyStatus.DRAFT
        survey.save(update_fields=["status", "updated_at"])
    else:
        raise SurveyError(f"unknown status {status!r}", field="status")


def survey_activate(*, survey: Survey) -> Survey:
    """Open the survey to respondents and to distribution (SPEC F4 needs it active)."""
    # An active survey without questions would send people to an empty page.
    if not survey.questions.exists():
        raise SurveyError(
            "a survey needs at least one question before it can be activated", field="status"
        )
    survey.status = SurveyStatus.ACTIVE
    survey.save(update_fields=["status", "updated_at"])
    return survey


def survey_deactivate(*, survey: Survey) -> Survey:
    """Close the survey: its links show "This survey is closed" and it cannot be distributed."""
    survey.status = SurveyStatus.INACTIVE
    survey.save(update_fields=["status", "updated_at"])
    return survey


# --- Personal links ------------------------------------------------------------------


def _freeze_snapshot(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    # A JSON round trip is a deep copy: the caller mutating its dicts later cannot
    # change what was frozen, and what is stored is exactly what will be read back.
    frozen = json.loads(json.dumps(dict(snapshot or {}), cls=DjangoJSONEncoder))
    for section in SNAPSHOT_SECTIONS:
        if not isinstance(frozen.get(section), dict):
            frozen[section] = {}
    return frozen


def survey_link_create(
    *,
    survey: Survey,
    contact_id: int | None,
    snapshot: dict,
    expires_at: datetime | None = None,
) -> SurveyLink:
    """A personal link for one recipient, with the values piped into it frozen now.

    It does not check the survey's status: whether a survey may be distributed is
    decided (and explained in the run) by the distributing task.
    """
    return SurveyLink.objects.create(
        survey=survey,
        contact_id=contact_id,
        snapshot=_freeze_snapshot(snapshot),
        expires_at=expires_at,
    )


def survey_link_url(link: SurveyLink) -> str:
    return f"{settings.PUBLIC_BASE_URL}/s/{link.token}/"


def opt_out_url(link: SurveyLink) -> str:
    return f"{settings.PUBLIC_BASE_URL}/o/{link.token}/"


def survey_link_is_expired(link: SurveyLink, *, now: datetime | None = None) -> bool:
    return link.expires_at is not None and link.expires_at <= (now or timezone.now())


def _send_after_commit(signal, link: SurveyLink) -> None:
    transaction.on_commit(lambda: signal.send(sender=SurveyLink, link=link))


def survey_link_open(*, link: SurveyLink) -> bool:
    """Record the first time the link's page is shown; True when this was the first."""
    now = timezone.now()
    # A conditional UPDATE, not read-then-write: two tabs opening at once record
    # one opening and send one signal.
    first = SurveyLink.objects.filter(pk=link.pk, opened_at__isnull=True).update(opened_at=now)
    if first:
        link.opened_at = now
        _send_after_commit(signals.survey_opened, link)
    return bool(first)


def survey_link_opt_out(*, link: SurveyLink) -> SurveyLink:
    """Record the respondent's unsubscribe; the first time is kept.

    `survey_opted_out` is sent on every confirmation, not only the first: the
    receiver marks the contact opted out for email, and a contact re-subscribed
    in the meantime who confirms again must be opted out again.
    """
    now = timezone.now()
    SurveyLink.objects.filter(pk=link.pk, opted_out_at__isnull=True).update(opted_out_at=now)
    link.opted_out_at = SurveyLink.objects.values_list("opted_out_at", flat=True).get(pk=link.pk)
    _send_after_commit(signals.survey_opted_out, link)
    return link


def survey_link_render_context(link: SurveyLink) -> piped_text.RenderContext:
    """The piped text context of a link: its frozen snapshot and its own URLs."""
    snapshot = link.snapshot or {}

    def section(name: str) -> dict[str, Any]:
        value = snapshot.get(name)
        return value if isinstance(value, dict) else {}

    return piped_text.RenderContext(
        event_fields=section("event_fields"),
        event_facts=section("event_facts"),
        contact=section("contact"),
        embedded_data=section("embedded_data"),
        transaction=section("transaction"),
        links={"SurveyURL": survey_link_url(link), "OptOutURL": opt_out_url(link)},
    )


def render_link_text(text: str, link: SurveyLink) -> str:
    """`text` with its piped text filled from the link's snapshot: plain text
    (html=False), so a page's template escapes it and an SMS sends it as is."""
    return piped_text.render(text or "", survey_link_render_context(link)).text


def render_question_text(question: Question, link: SurveyLink) -> str:
    return render_link_text(question.text, link)


def render_survey_name(survey: Survey, link: SurveyLink) -> str:
    """The name as the respondent reads it (page heading and title)."""
    return render_link_text(survey.name, link)


def render_thank_you_text(survey: Survey, link: SurveyLink) -> str:
    """The closing text as the respondent reads it, on the page or by SMS."""
    return render_link_text(survey.thank_you_text, link)


# --- Answers -----------------------------------------------------------------------


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def _whole_number(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError(value)


def _choices_by_key(question: Question) -> dict[str, str]:
    """Each stored choice under the form the page posts it back in. Choices saved
    before they were stripped on save ("Yes ", "Line1\nLine2") still match, and the
    answer keeps the choice's own text; of two choices alike but for outer spaces,
    the first wins (a browser could not tell them apart either)."""
    by_key: dict[str, str] = {}
    for choice in question.choices or []:
        if isinstance(choice, str):
            by_key.setdefault(choice_key(choice), choice)
    return by_key


def answer_clean(*, question: Question, value: Any) -> Any:
    """The value to store for `question`, or None for "not answered".

    Raises ValueError with the message shown to the respondent.
    """
    if isinstance(value, str) and question.type != QuestionType.TEXT:
        value = value.strip()
    if _is_blank(value):
        return None
    if question.type in (QuestionType.NPS, QuestionType.RATING):
        low, high = (
            (NPS_MIN, NPS_MAX)
            if question.type == QuestionType.NPS
            else (RATING_MIN, question.scale_max)
        )
        message = f"Choose a whole number from {low} to {high}."
        try:
            number = _whole_number(value)
        except ValueError:
            raise ValueError(message) from None
        if not low <= number <= high:
            raise ValueError(message)
        return number
    if question.type == QuestionType.SINGLE_CHOICE:
        if not isinstance(value, str):
            raise ValueError("Choose one of the options listed.")
        choice = _choices_by_key(question).get(choice_key(value))
        if choice is None:
            raise ValueError("Choose one of the options listed.")
        return choice
    if question.type == QuestionType.MULTIPLE_CHOICE:
        selected = [value] if isinstance(value, str) else value
        if not isinstance(selected, list | tuple) or not all(
            isinstance(item, str) for item in selected
        ):
            raise ValueError("Choose only among the options listed.")
        by_key = _choices_by_key(question)
        keys = {choice_key(item) for item in selected} - {""}
        if keys.difference(by_key):
            raise ValueError("Choose only among the options listed.")
        chosen = {by_key[key] for key in keys}
        # Stored in the question's order, so equal selections compare equal.
        return [choice for choice in question.choices if choice in chosen] or None
    if question.type == QuestionType.TEXT:
        if not isinstance(value, str):
            raise ValueError("Enter your answer as text.")
        # Browsers send line breaks as CRLF but count them as one character
        # against maxlength: count them the same way.
        text = value.replace("\r\n", "\n").strip()
        if len(text) > TEXT_ANSWER_MAX_LENGTH:
            raise ValueError(
                f"Keep your answer to {TEXT_ANSWER_MAX_LENGTH} characters or fewer "
                f"(it has {len(text)})."
            )
        return text or None
    raise ValueError("This question cannot be answered.")


def response_embedded_data(*, survey: Survey, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The survey flow's embedded data fields, filled by exact name from the snapshot.

    Only declared names are recorded (SPEC F6). When both the contact's embedded
    data and the transaction hold a name, the transaction wins: it belongs to the
    event this invitation came from, so it is the more specific value (the
    contact's CaseNumber is whichever case came last; the transaction's is this
    one). An empty value does not hide a non-empty one from the other source. A
    declared name found in neither is left out.
    """
    sources = [snapshot.get("transaction"), snapshot.get("embedded_data")]
    sources = [source for source in sources if isinstance(source, dict)]
    result: dict[str, Any] = {}
    for name in survey.embedded_data_fields or []:
        if not isinstance(name, str):
            continue  # stored by hand in a shape the forms refuse: never a respondent's 500
        found = [source[name] for source in sources if name in source]
        filled = [value for value in found if value not in (None, "")]
        if filled:
            result[name] = filled[0]
        elif found:
            result[name] = ""
    return result


def _check_answerable(link: SurveyLink) -> None:
    if link.finished_at is not None:
        raise AnswerError({"__all__": ALREADY_COMPLETED}, code="completed")
    if survey_link_is_expired(link):
        raise AnswerError({"__all__": LINK_EXPIRED}, code="expired")
    if link.survey.status != SurveyStatus.ACTIVE:
        raise AnswerError({"__all__": SURVEY_CLOSED}, code="closed")


def response_record_answers(*, link: SurveyLink, answers: dict, finish: bool) -> Response:
    """Validate and store answers given through `link`; with `finish`, complete the response.

    `answers` maps question ids (int or str) to values; a question left out keeps
    its saved answer and a blank value clears it, so a page can send every question
    and an SMS conversation one at a time. Nothing is stored when any answer is
    invalid: AnswerError lists every problem at once. Embedded data is filled at
    every save (not only at finish) so an abandoned, partial response still
    carries the data of the case it was about. A save with nothing answered yet
    stores nothing: the Response returned is then unsaved (no pk).
    """
    with transaction.atomic():
        # The row lock serialises two submissions of one link (a double click on
        # Finish, an SMS reply racing the web page): a link is finished once.
        locked = SurveyLink.objects.select_for_update().get(pk=link.pk)
        survey = Survey.objects.get(pk=locked.survey_id)
        locked.survey = survey
        _check_answerable(locked)
        questions = list(survey.questions.all())
        by_id = {str(question.pk): question for question in questions}

        errors: dict[str, str] = {}
        cleaned: dict[str, Any] = {}
        for key, value in (answers or {}).items():
            question = by_id.get(str(key))
            if question is None:
                errors[str(key)] = "This question is not part of the survey."
                continue
            try:
                cleaned[str(key)] = answer_clean(question=question, value=value)
            except ValueError as error:
                errors[str(key)] = str(error)

        response = Response.objects.filter(link=locked).first()
        stored: dict[str, Any] = dict(response.answers) if response else {}
        for key, value in cleaned.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
        if finish:
            for question in questions:
                key = str(question.pk)
                if question.required and key not in stored and key not in errors:
                    errors[key] = ANSWER_REQUIRED
        if errors:
            order = {key: index for index, key in enumerate(by_id)}
            raise AnswerError(dict(sorted(errors.items(), key=lambda item: order.get(item[0], -1))))

        now = timezone.now()
        if response is None:
            response = Response(survey=survey, link=locked, contact_id=locked.contact_id)
            if not stored and not finish:
                # "Save and finish later" before any answer: nothing to keep. A row
                # would count as a response (In Progress, with no start) everywhere.
                return response
        started_now = locked.started_at is None and bool(stored or finish)
        if started_now:
            locked.started_at = now
        if response.started_at is None and locked.started_at is not None:
            # Started when the respondent opened the page, as the distribution line
            # says (Survey Started), or, answering by SMS, with the first answer.
            response.started_at = locked.opened_at or locked.started_at
        if finish:
            locked.finished_at = now
            response.finished_at = now
        response.answers = stored
        response.embedded_data = response_embedded_data(survey=survey, snapshot=locked.snapshot)
        response.save()
        locked.save(update_fields=["started_at", "finished_at"])
        if started_now:
            _send_after_commit(signals.survey_started, locked)
        if finish:
            _send_after_commit(signals.survey_finished, locked)

    # The caller's instance reflects what was recorded.
    link.started_at, link.finished_at = locked.started_at, locked.finished_at
    return response


__all__ = [
    "AnswerError",
    "SurveyError",
    "answer_clean",
    "choice_key",
    "opt_out_url",
    "question_answer_count",
    "question_choices_clean",
    "question_delete_problem",
    "question_positions_release",
    "question_setup_problems",
    "render_link_text",
    "render_question_text",
    "render_survey_name",
    "render_thank_you_text",
    "response_embedded_data",
    "response_record_answers",
    "survey_activate",
    "survey_can_distribute",
    "survey_can_edit",
    "survey_can_share",
    "survey_can_view",
    "survey_create",
    "survey_deactivate",
    "survey_link_create",
    "survey_link_is_expired",
    "survey_link_open",
    "survey_link_opt_out",
    "survey_link_render_context",
    "survey_link_url",
    "survey_update",
]
