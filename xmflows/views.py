"""The Salesforce endpoint and the health checks: thin views over the services."""

import ipaddress
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from xmflows import soap
from xmflows.intake import IntakeResult, delivery_receive

logger = logging.getLogger(__name__)

SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"


def client_address(request: HttpRequest) -> str | None:
    """The address of whoever sent the request, as recorded on deliveries.

    Behind XMFLOWS_PROXY_COUNT reverse proxies that each append the address they saw to
    X-Forwarded-For (nginx: $proxy_add_x_forwarded_for), that is the entry the
    outermost trusted proxy appended; entries before it came from the client and
    prove nothing. Without proxies (or a header too short to trust), the socket's.
    """
    proxies = settings.XMFLOWS_PROXY_COUNT
    if proxies > 0:
        chain = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        chain = [hop for hop in chain if hop]
        if len(chain) >= proxies:
            candidate = chain[-proxies]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return request.META.get("REMOTE_ADDR")


def _read_limited(request: HttpRequest, limit: int) -> tuple[bytes, int]:
    """Read at most limit+1 bytes, so an oversized body is refused without buffering it."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return b"", declared
    body = request.read(limit + 1)
    return body, max(len(body), declared)


@csrf_exempt
def salesforce_outbound_message(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        response = HttpResponse(
            soap.build_fault(code="Client", message="only POST is accepted at this URL"),
            status=405,
            content_type=SOAP_CONTENT_TYPE,
        )
        response["Allow"] = "POST"
        return response
    body, size = _read_limited(request, settings.XMFLOWS_MAX_MESSAGE_BYTES)
    result = delivery_receive(
        token=token,
        body=body,
        body_bytes=size,
        remote_addr=client_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )
    response = HttpResponse(result.body, status=result.status, content_type=SOAP_CONTENT_TYPE)
    if result.status >= 400:
        _log_fault(result, response)
    return response


def _log_fault(result: IntakeResult, response: HttpResponse) -> None:
    """One warning per fault, instead of Django's "Internal Server Error" at ERROR.

    Faults answer HTTP 500 on purpose (Salesforce retries only those), so Django's
    request log would report every refused message as a crash, and the event token
    with it (the path). A storage failure is our own: intake logs it at ERROR with
    its traceback, once; this line adds which delivery it was.
    """
    delivery = f"delivery {result.delivery_id}" if result.delivery_id else "unrecorded delivery"
    # Reasons may quote the message: escaped as Django escapes what it logs.
    reason = (result.reason or "no reason recorded").encode("unicode_escape").decode("ascii")
    logger.warning("SOAP fault for Salesforce %s (HTTP %d): %s", delivery, result.status, reason)
    # django.utils.log.log_response skips a response marked as already logged.
    response._has_been_logged = True


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unavailable: {type(error).__name__}"
    try:
        from django_q.brokers import get_broker

        checks["broker"] = "ok" if get_broker().ping() else "unavailable"
    except Exception as error:
        checks["broker"] = f"unavailable: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503
    )
