"""Pages and downloads: distribution history CSV, a survey's Distributions tab, the outbox."""

from __future__ import annotations

from itertools import chain

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from core.pages import forbidden
from core.params import id_or_none
from distributions.csv_export import csv_chunks
from distributions.models import Distribution, OutboxMessage, RecipientStatus
from distributions.selectors import (
    error_with_link_expiry,
    history_rows,
    parse_kinds,
    parse_moment,
    parse_status,
    status_counts,
    survey_link_prefix,
)
from surveys.models import Survey
from surveys.response_export import csv_chunks as response_csv_chunks
from surveys.selectors import response_export, survey_list_visible

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


# --- Distribution history CSV (CONTRACT.md §6) -----------------------------------------


def download_user(request: HttpRequest):
    """The signed-in user, or the owner of a valid API token; else an answer to send.

    Downloads are fetched by scripts (token) and by browsers (session), so both work;
    a browser without a session is sent to the login page, a script gets a 401.
    """
    if request.user.is_authenticated:
        return request.user, None
    if get_authorization_header(request):
        try:
            result = TokenAuthentication().authenticate(request)
        except AuthenticationFailed as error:
            return None, _unauthorized(str(error.detail))
        if result is not None:
            return result[0], None
    if "text/html" in request.headers.get("Accept", ""):
        return None, redirect_to_login(request.get_full_path())
    return None, _unauthorized("authentication required: a session or 'Authorization: Token …'")


def _unauthorized(message: str) -> HttpResponse:
    response = HttpResponse(message, status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Token realm="api"'
    return response


def _csv_filters(request: HttpRequest) -> dict | HttpResponse:
    params = request.GET
    parsers = {
        "status": ("statuses", parse_status),
        "since": ("since", lambda text: parse_moment(text, upper=False)),
        "until": ("until", lambda text: parse_moment(text, upper=True)),
        "kind": ("kinds", parse_kinds),
    }
    filters: dict = {}
    errors: list[str] = []
    for name, (key, parse) in parsers.items():
        if params.get(name):
            try:
                filters[key] = parse(params[name])
            except ValueError as error:
                # Every wrong parameter, each named: "until: not a valid date …".
                errors.append(f"{name}: {error}")
    if errors:
        return HttpResponseBadRequest("\n".join(errors), content_type="text/plain; charset=utf-8")
    return filters


def _stream_csv(rows, filename: str) -> StreamingHttpResponse:
    # Streamed from a database cursor through a one-row buffer: memory stays flat for
    # a million rows (PITFALLS.md 9). Served by WSGI: under ASGI Django would read
    # this synchronous iterator whole before sending it.
    # The query runs here, before the response starts: a database error is an HTTP 500
    # (and a logged traceback), not a 200 whose file silently stops after its header.
    rows = iter(rows)
    first = next(rows, None)
    if first is not None:
        rows = chain([first], rows)
    chunks = csv_chunks(rows, survey_link_prefix=survey_link_prefix())
    response = StreamingHttpResponse(chunks, content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _downloadable_survey(request: HttpRequest, survey_id: int) -> Survey | HttpResponse:
    """The survey, when the session or token user may read it; else the answer to send."""
    user, refusal = download_user(request)
    if refusal is not None:
        return refusal
    survey = get_object_or_404(Survey, pk=survey_id)
    if not survey_list_visible(user=user).filter(pk=survey.pk).exists():
        return HttpResponseForbidden("you do not have access to this survey")
    return survey


@require_GET
def survey_history_csv(request: HttpRequest, survey_id: int) -> HttpResponse:
    survey = _downloadable_survey(request, survey_id)
    if isinstance(survey, HttpResponse):
        return survey
    filters = _csv_filters(request)
    if isinstance(filters, HttpResponse):
        return filters
    rows = history_rows(survey_id=survey.pk, **filters)
    return _stream_csv(rows, f"survey-{survey.pk}-distribution-history.csv")


@require_GET
def distribution_history_csv(request: HttpRequest, distribution_id: int) -> HttpResponse:
    user, refusal = download_user(request)
    if refusal is not None:
        return refusal
    distribution = get_object_or_404(Distribution, pk=distribution_id)
    if not survey_list_visible(user=user).filter(pk=distribution.survey_id).exists():
        return HttpResponseForbidden("you do not have access to this distribution's survey")
    filters = _csv_filters(request)
    if isinstance(filters, HttpResponse):
        return filters
    rows = history_rows(distribution_id=distribution.pk, **filters)
    return _stream_csv(rows, f"distribution-{distribution.pk}-history.csv")


@require_GET
def survey_responses_csv(request: HttpRequest, survey_id: int) -> HttpResponse:
    """The survey's responses (SPEC F6), one row each, streamed; beside the history
    downloads because it is fetched the same ways (session or API token)."""
    survey = _downloadable_survey(request, survey_id)
    if isinstance(survey, HttpResponse):
        return survey
    header, rows = response_export(survey=survey)
    response = StreamingHttpResponse(
        response_csv_chunks(header, rows), content_type=CSV_CONTENT_TYPE
    )
    response["Content-Disposition"] = f'attachment; filename="survey-{survey.pk}-responses.csv"'
    response["Cache-Control"] = "no-store"
    return response


# --- Pages ------------------------------------------------------------------------------

DISTRIBUTIONS_PER_PAGE = 20
RECIPIENTS_PER_PAGE = 100
OUTBOX_PER_PAGE = 25


@login_required
def survey_distributions(request: HttpRequest, survey_id: int) -> HttpResponse:
    """A survey's Distributions tab: each distribution with its counts; the chosen one
    (?distribution=) with every recipient line, its status, error and times."""
    survey = get_object_or_404(Survey, pk=survey_id)
    if not survey_list_visible(user=request.user).filter(pk=survey.pk).exists():
        return forbidden(request, "you do not have access to this survey")
    distributions = Paginator(
        survey.distributions.select_related("created_by").order_by("-id"), DISTRIBUTIONS_PER_PAGE
    ).get_page(request.GET.get("page"))
    counts = status_counts(item.pk for item in distributions)
    rows = [{"distribution": item, "counts": counts.get(item.pk, {})} for item in distributions]
    selected = None
    recipients = None
    problem = ""
    selected_id = request.GET.get("distribution")
    if selected_id and id_or_none(selected_id):
        selected = survey.distributions.filter(pk=id_or_none(selected_id)).first()
        if selected is None:
            problem = f"distribution {selected_id} is not a distribution of this survey"
    elif selected_id:
        problem = f"distribution: {selected_id!r} is not a distribution's id"
    if selected is None and rows:
        selected = rows[0]["distribution"]
    if selected is not None:
        # The Error column says what the history CSV's says (a link that expired
        # unfinished included), so the page and the download never disagree.
        lines = selected.recipients.select_related("link").annotate(
            shown_error=error_with_link_expiry(timezone.now())
        )
        recipients = Paginator(lines.order_by("id"), RECIPIENTS_PER_PAGE).get_page(
            request.GET.get("lines")
        )
    return render(
        request,
        "distributions/survey_distributions.html",
        {
            "survey": survey,
            "distributions": distributions,
            "rows": rows,
            "selected": selected,
            "selection_problem": problem,
            "recipients": recipients,
            "statuses": RecipientStatus.choices,
            "response_count": survey.responses.count(),
        },
    )


@login_required
def outbox(request: HttpRequest) -> HttpResponse:
    """What the development outbox "sent": emails rendered in a sandbox, and SMS."""
    if not request.user.is_staff:
        return forbidden(request, "the outbox is for staff: it holds personal survey links")
    queryset = OutboxMessage.objects.order_by("-id")
    to = (request.GET.get("to") or "").strip()
    if to:
        queryset = queryset.filter(to__iexact=to)
    channel = request.GET.get("channel") or ""
    if channel:
        queryset = queryset.filter(channel=channel)
    messages_page = Paginator(queryset, OUTBOX_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "distributions/outbox.html",
        {"messages_page": messages_page, "to": to, "channel": channel},
    )
