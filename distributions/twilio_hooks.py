"""Twilio webhooks: /hooks/twilio/status/ (status callbacks) and /hooks/twilio/inbound/ (texts).

One view class checks the signature, then each webhook normalizes and calls one
service (CONVENTIONS.md "Provider webhooks").

Signatures: when Twilio is configured (TWILIO_AUTH_TOKEN set), X-Twilio-Signature
must be Twilio's HMAC of the exact public URL it called and the form parameters
(PITFALLS.md 7). The URL is built from PUBLIC_BASE_URL and the request's path and
query, never from the request's Host and scheme, which a TLS proxy in front changes.
A missing or wrong signature gets 403 and is recorded as a "rejected" delivery
event (admin: Delivery events). Without TWILIO_AUTH_TOKEN there is no Twilio account
whose token could sign them: in development (DEBUG, or XMFLOWS_TWILIO_ACCEPT_UNSIGNED)
unsigned requests are then accepted, so inbound texts can be simulated with curl;
otherwise every request is refused (403, recorded), since anyone could send one.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from distributions.channels.sms_twilio import signature_is_valid, twiml_response
from distributions.sms_conversations import inbound_replies_deliver, sms_inbound_receive
from distributions.sms_services import twilio_status_record, webhook_rejection_record

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
TWIML_CONTENT_TYPE = "text/xml; charset=utf-8"


def twilio_configured() -> bool:
    return bool(settings.TWILIO_AUTH_TOKEN)


def public_url(request: HttpRequest) -> str:
    """The URL Twilio called, as Twilio knows it. get_full_path_info() is the path
    without any script prefix, the same way our callback URLs are built from
    PUBLIC_BASE_URL (which carries the prefix, if any)."""
    return f"{settings.PUBLIC_BASE_URL}{request.get_full_path_info()}"


@method_decorator(csrf_exempt, name="dispatch")
class TwilioWebhook(View):
    """Signature check, then `handle`."""

    http_method_names = ["post"]
    name = "twilio"

    def post(self, request: HttpRequest) -> HttpResponse:
        refusal = None
        if twilio_configured():
            refusal = self._signature_problem(request)
        elif not settings.TWILIO_ACCEPT_UNSIGNED:
            refusal = (
                "Twilio webhooks are disabled: TWILIO_AUTH_TOKEN is not set, so no request "
                "can be shown to come from Twilio"
            )
        if refusal is not None:
            webhook_rejection_record(
                webhook=self.name,
                reason=refusal,
                url=public_url(request),
                remote_addr=request.META.get("REMOTE_ADDR", ""),
                params=request.POST,
            )
            logger.warning("Twilio %s webhook refused: %s", self.name, refusal)
            return HttpResponse(refusal, status=403, content_type="text/plain; charset=utf-8")
        return self.handle(request)

    def _signature_problem(self, request: HttpRequest) -> str | None:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            return f"missing {SIGNATURE_HEADER} header"
        url = public_url(request)
        if not signature_is_valid(
            url=url,
            params=request.POST,
            signature=signature,
            auth_token=settings.TWILIO_AUTH_TOKEN,
        ):
            return f"invalid {SIGNATURE_HEADER} for {url}"
        return None

    def handle(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError


class StatusCallback(TwilioWebhook):
    """queued, sent, delivered, undelivered, failed (+ ErrorCode) for one message; the
    line id we put in the callback URL (?line=) finds lines whose send was interrupted."""

    name = "status"

    def handle(self, request: HttpRequest) -> HttpResponse:
        twilio_status_record(params=request.POST.dict(), line_id=request.GET.get("line"))
        return HttpResponse(status=204)


class Inbound(TwilioWebhook):
    """A text to our number: keywords and two-way survey replies, answered with TwiML
    (an empty <Response/> when nothing should be sent). Processed inline: it is a few
    queries, well inside Twilio's 15-second limit."""

    name = "inbound"

    def handle(self, request: HttpRequest) -> HttpResponse:
        result = sms_inbound_receive(
            from_number=request.POST.get("From", ""),
            body=request.POST.get("Body", ""),
            message_sid=request.POST.get("MessageSid") or request.POST.get("SmsSid") or "",
        )
        inbound_replies_deliver(result)
        return HttpResponse(twiml_response(result.replies), content_type=TWIML_CONTENT_TYPE)


urlpatterns = [
    path("status/", StatusCallback.as_view(), name="twilio-status"),
    path("inbound/", Inbound.as_view(), name="twilio-inbound"),
]
