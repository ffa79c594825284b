"""The answer for a path under /api/ that names no endpoint: JSON, like every API answer."""

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt


# Exempt: it only ever answers 404, and a token-authenticated POST to a mistyped URL
# must be told so in JSON, not refused with Django's HTML CSRF page.
@csrf_exempt
def api_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    path = request.path_info
    if not path.endswith("/"):
        # What Django's APPEND_SLASH would do had this catch-all not matched first:
        # GET /api/v1/runs goes on to /api/v1/runs/; other methods are told the URL.
        try:
            match = resolve(path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            if request.method in ("GET", "HEAD"):
                query = request.META.get("QUERY_STRING", "")
                return HttpResponsePermanentRedirect(
                    request.path + "/" + (f"?{query}" if query else "")
                )
            return JsonResponse(
                {"detail": f"Not found. API URLs end with a slash: {request.path}/"}, status=404
            )
    return JsonResponse(
        {"detail": f"Not found: no API endpoint at {request.path} (the list is at /api/v1/docs/)."},
        status=404,
    )
