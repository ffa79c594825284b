"""Respondent pages: the personal survey page and the opt-out page (the token is the key)."""

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from surveys import selectors, services
from surveys.exceptions import AnswerError
from surveys.models import CHOICE_TYPES, Question, QuestionType, Survey, SurveyLink

NPS_HINT = "0 means not at all likely, 10 means extremely likely."


def _message(
    request: HttpRequest, *, title: str, heading: str, message: str, status: int = 200
) -> HttpResponse:
    context = {"title": title, "heading": heading, "message": message}
    return render(request, "surveys/message.html", context, status=status)


def _not_found(request: HttpRequest) -> HttpResponse:
    # Rendered here rather than raising Http404, so a respondent with a mistyped
    # link gets a page written for them whatever the project's 404 page says.
    return _message(
        request,
        title="Survey not found",
        heading="We could not find this survey",
        message="The link may be incomplete. Please open it again from your invitation.",
        status=404,
    )


def _completed(request: HttpRequest) -> HttpResponse:
    return _message(
        request,
        title="Survey completed",
        heading="You have already completed this survey",
        message="Your answers were recorded. Thank you for your time.",
    )


def _expired(request: HttpRequest) -> HttpResponse:
    # 410 Gone: the link existed and will not come back, unlike a closed survey.
    return _message(
        request,
        title="Link expired",
        heading="This survey link has expired",
        message="It can no longer be used to answer the survey.",
        status=410,
    )


def _closed(request: HttpRequest) -> HttpResponse:
    return _message(
        request,
        title="Survey closed",
        heading="This survey is closed",
        message="It is not accepting answers at the moment.",
    )


def _answers_from_post(post, questions: list[Question]) -> dict[str, Any]:
    """Every question of the page, so a question the respondent cleared is cleared."""
    answers: dict[str, Any] = {}
    for question in questions:
        name = f"q{question.pk}"
        if question.type == QuestionType.MULTIPLE_CHOICE:
            answers[str(question.pk)] = post.getlist(name)
        else:
            answers[str(question.pk)] = post.get(name, "")
    return answers


def _question_views(
    questions: list[Question],
    link: SurveyLink,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
) -> list[dict[str, Any]]:
    """What the template needs per question: rendered text, options, state, ids."""
    views: list[dict[str, Any]] = []
    for number, question in enumerate(questions, start=1):
        key = str(question.pk)
        name = f"q{question.pk}"
        value = values.get(key)
        view: dict[str, Any] = {
            "id": question.pk,
            "number": number,
            "name": name,
            "type": question.type,
            "text": services.render_question_text(question, link),
            "required": question.required,
            "error": errors.get(key),
            "error_id": f"{name}-error",
            "hint_id": f"{name}-hint",
            "hint": "",
            "value": "",
            "options": [],
            "input_type": "radio",
        }
        if question.type == QuestionType.TEXT:
            view["value"] = value if isinstance(value, str) else ""
            view["first_input_id"] = name
        else:
            if question.type == QuestionType.NPS:
                labels = [str(number) for number in range(0, 11)]
                view["hint"] = NPS_HINT
            elif question.type == QuestionType.RATING:
                labels = [str(number) for number in range(1, question.scale_max + 1)]
                view["hint"] = f"1 is the lowest, {question.scale_max} the highest."
            else:
                labels = [str(choice) for choice in question.choices]
            if question.type == QuestionType.MULTIPLE_CHOICE:
                view["input_type"] = "checkbox"
                picked = value if isinstance(value, list) else [value]
            else:
                picked = [value]
            # Compared as the page posts them back (services.choice_key), so a choice
            # saved with outer spaces or a line break is shown checked again.
            chosen = {services.choice_key("" if item is None else str(item)) for item in picked}
            choice_labels = question.type in CHOICE_TYPES
            view["options"] = [
                {
                    "id": f"{name}-{index}",
                    "value": label,
                    # Choices with piped text are refused on save; one saved before
                    # is shown filled in, its value (what is stored) kept as written.
                    "label": services.render_link_text(label, link) if choice_labels else label,
                    "checked": services.choice_key(label) in chosen,
                }
                for index, label in enumerate(labels)
            ]
            view["first_input_id"] = f"{name}-0"
        described = [view["hint_id"]] if view["hint"] else []
        if view["error"]:
            described.append(view["error_id"])
        view["described_by"] = " ".join(described)
        views.append(view)
    return views


def _survey_form(
    request: HttpRequest,
    *,
    survey: Survey,
    link: SurveyLink,
    questions: list[Question],
    values: Mapping[str, Any],
    errors: Mapping[str, str] | None = None,
    notice: str = "",
    status: int = 200,
    preview: bool = False,
) -> HttpResponse:
    errors = errors or {}
    context = {
        "preview": preview,
        "survey": survey,
        "survey_name": services.render_survey_name(survey, link),
        "questions": _question_views(questions, link, values, errors),
        "has_errors": bool(errors),
        "general_error": errors.get("__all__", ""),
        "notice": notice,
        "text_max_length": services.TEXT_ANSWER_MAX_LENGTH,
    }
    return render(request, "surveys/survey_form.html", context, status=status)


def _is_preview(request: HttpRequest, survey: Survey) -> bool:
    """?preview=1 from a signed-in user who may see the survey; for anyone else (a
    respondent who forwards the link) the parameter means nothing."""
    if request.GET.get("preview") != "1" or not request.user.is_authenticated:
        return False
    return selectors.survey_list_visible(user=request.user).filter(pk=survey.pk).exists()


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def survey_page(request: HttpRequest, token: str) -> HttpResponse:
    link = selectors.survey_link_by_token(token)
    if link is None:
        return _not_found(request)
    survey = link.survey
    # Completed first: someone who answered should hear that, even once the link
    # has expired or the survey has closed since.
    if link.finished_at is not None:
        return _completed(request)
    if services.survey_link_is_expired(link):
        return _expired(request)
    if not survey.is_active:
        return _closed(request)
    questions = list(survey.questions.all())
    # An admin looking at a respondent's page (the Distributions tab links it so):
    # nothing is recorded, neither the opening nor answers.
    preview = _is_preview(request, survey)
    if preview and request.method == "POST":
        return _message(
            request,
            title="Preview",
            heading="A preview records nothing",
            message="This page was opened as a preview; answers are not saved.",
            status=403,
        )
    # A POST without a prior GET (a page kept open from another device) still
    # counts as an opening, so recipient lines never skip "Opened". HEAD does not:
    # link checkers and mail scanners send it without a person reading anything.
    if request.method != "HEAD" and not preview:
        services.survey_link_open(link=link)

    if request.method in ("GET", "HEAD"):
        response = selectors.response_for_link(link)
        notice = (
            "Your answers are saved. You can come back to this link later to finish."
            if request.GET.get("saved")
            else ""
        )
        return _survey_form(
            request,
            survey=survey,
            link=link,
            questions=questions,
            values=response.answers if response else {},
            notice=notice,
            preview=preview,
        )

    finish = request.POST.get("action", "finish") != "save"
    answers = _answers_from_post(request.POST, questions)
    try:
        services.response_record_answers(link=link, answers=answers, finish=finish)
    except AnswerError as error:
        if error.code == "completed":
            return _completed(request)
        if error.code == "expired":
            return _expired(request)
        if error.code == "closed":
            return _closed(request)
        return _survey_form(
            request,
            survey=survey,
            link=link,
            questions=questions,
            values=answers,
            errors=error.errors,
            status=400,
        )
    if not finish:
        # Post/redirect/get: reloading the page does not submit the answers again.
        redirect = HttpResponseRedirect(f"{request.path}?saved=1")
        redirect.status_code = 303
        return redirect
    context = {
        "survey_name": services.render_survey_name(survey, link),
        "thank_you_text": services.render_thank_you_text(survey, link),
    }
    return render(request, "surveys/thank_you.html", context)


def mask_email(email: str) -> str:
    """j***@example.com: enough for the respondent to recognise, not to harvest."""
    local, at, domain = (email or "").partition("@")
    if not at or not local:
        return "your email address"
    return f"{local[0]}***@{domain}"


def mask_phone(phone: str) -> str:
    """The number ending in 0100: recognisable, not harvestable."""
    digits = "".join(character for character in phone if character.isdigit())
    return f"the number ending in {digits[-4:]}" if len(digits) >= 4 else "your phone number"


# Mail clients unsubscribe with a one-click POST to the List-Unsubscribe URL (RFC 8058)
# that carries no CSRF token; the unguessable link token is the credential here.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def opt_out_page(request: HttpRequest, token: str) -> HttpResponse:
    link = selectors.survey_link_by_token(token)
    if link is None:
        return _not_found(request)
    # Unsubscribing works whatever the state of the survey or link: expired and
    # closed links still came with an invitation the recipient may refuse.
    snapshot = link.snapshot or {}
    by_sms = snapshot.get("channel") == "sms"
    if request.method == "POST":
        services.survey_link_opt_out(link=link)
        return _message(
            request,
            title="Unsubscribed",
            heading="You are unsubscribed",
            message="You will not receive further survey invitations by "
            + ("text message." if by_sms else "email."),
        )
    contact = snapshot.get("contact") or {}
    contact = contact if isinstance(contact, dict) else {}
    context = {
        "masked_address": (
            mask_phone(str(contact.get("PhoneNumber") or ""))
            if by_sms
            else mask_email(str(contact.get("Email") or ""))
        ),
        "already_opted_out": link.opted_out_at is not None,
        "by_sms": by_sms,
    }
    return render(request, "surveys/opt_out.html", context)
