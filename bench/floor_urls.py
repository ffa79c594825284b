"""config.urls plus `/bench/floor/`: the cheapest Django view, the benchmarks' floor.

The floor view goes through the same gunicorn, WSGI handler and middleware as the
Salesforce endpoint, reads the whole body and answers the same Ack bytes, but
parses nothing and touches no database. Its path comes first, so resolving it is
as cheap as resolving can be (the endpoint's own resolution is unchanged).
"""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as project_urlpatterns
from xmflows import soap

_ACK = soap.build_ack()


@csrf_exempt
def floor(request: HttpRequest) -> HttpResponse:
    request.body  # noqa: B018 - read it all, as the endpoint does
    return HttpResponse(_ACK, content_type="text/xml; charset=utf-8")


urlpatterns = [path("bench/floor/", floor, name="bench-floor"), *project_urlpatterns]
