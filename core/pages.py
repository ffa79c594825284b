"""Small helpers shared by the browser pages of every app."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    """HTTP 403 as a page of the site saying why (templates/403.html, which Django also
    uses for a raised PermissionDenied, the admin's included)."""
    return render(request, "403.html", {"exception": message}, status=403)
