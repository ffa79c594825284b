"""Request guards shared by every app."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.cache import add_never_cache_headers

FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _named(text: str) -> str:
    return repr(text.replace("\x00", "\\x00"))


# No filter or search holds more; SQLite refuses LIKE patterns past 50,000 bytes.
QUERY_VALUE_MAX = 2000


def _nul_parameters(encoded: str) -> list[str]:
    """The names of the urlencoded parameters whose name or value holds a NUL."""
    return [
        _named(name)
        for name, value in parse_qsl(encoded, keep_blank_values=True)
        if "\x00" in name or "\x00" in value
    ]


def _impossible_years(encoded: str) -> list[str]:
    """The names of `…__year` lookups (the admin's date filters take any) whose value
    is not a year the calendar holds: the database layer raises ValueError on them."""
    return [
        _named(name)
        for name, value in parse_qsl(encoded, keep_blank_values=True)
        if name.endswith(("__year", "__iso_year"))
        and not (value.isascii() and value.isdigit() and 1 <= int(value) <= 9999)
    ]


class RejectNulCharacters:
    """A NUL character (%00) in a URL's path, its query string or a form post, a
    query parameter longer than QUERY_VALUE_MAX, and a `…__year` lookup outside
    1 to 9999 are refused with a 400 that names where they are.

    No text xmflows keeps may hold one (PostgreSQL refuses it in a text column or
    parameter, so a search or a lookup with one would otherwise fail with a 500 on
    PostgreSQL and pass on SQLite). The Salesforce endpoint is left to its own
    checks, which record every refusal as a delivery an admin can see.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/events/"):
            problem = self._problem(request)
            if problem:
                return self._refuse(request, problem)
        return self.get_response(request)

    @staticmethod
    def _problem(request: HttpRequest) -> str:
        if "\x00" in request.path:
            return "the URL contains a NUL character (%00)"
        query = request.META.get("QUERY_STRING", "")
        if len(query) > QUERY_VALUE_MAX:
            long = [
                _named(name)
                for name, value in parse_qsl(query, keep_blank_values=True)
                if len(value) > QUERY_VALUE_MAX
            ]
            if long:
                return (
                    f"query parameter {', '.join(long)} is longer than {QUERY_VALUE_MAX} characters"
                )
        if "%00" in query or "\x00" in query:
            names = _nul_parameters(query)
            if names:
                return f"query parameter {', '.join(names)} contains a NUL character (%00)"
        if "year=" in query:
            names = _impossible_years(query)
            if names:
                return f"query parameter {', '.join(names)} must be a year from 1 to 9999"
        if request.method == "POST" and request.content_type in FORMS:
            # Parsed here rather than by the CSRF check a moment later: same cost.
            names = [
                _named(name)
                for name, values in request.POST.lists()
                if "\x00" in name or any("\x00" in value for value in values)
            ]
            if names:
                return f"form field {', '.join(names)} contains a NUL character (%00)"
        return ""

    @staticmethod
    def _refuse(request: HttpRequest, problem: str) -> HttpResponse:
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": problem}, status=400)
        return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")


class PrivatePages:
    """Every response to a signed-in browser is kept out of caches (Cache-Control:
    private, no-store), unless the view set its own Cache-Control.

    Pages show bearer secrets (a workflow's event URL, the outbox's personal survey
    links) and Salesforce payloads: after signing out on a shared computer, Back must
    not bring them out of the browser's cache, nor may a shared cache keep them.
    Requests without a session cookie (Salesforce, respondents, health checks) are
    left alone, without reading any session.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            settings.SESSION_COOKIE_NAME in request.COOKIES
            and not response.has_header("Cache-Control")
            and request.user.is_authenticated
        ):
            add_never_cache_headers(response)
        return response
