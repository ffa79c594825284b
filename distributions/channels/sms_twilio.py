"""Twilio: sending texts, classifying its errors, checking its webhook signatures, TwiML.

The only module of xmflows that imports `twilio` (CONVENTIONS.md "Channels"): the
webhooks call `signature_is_valid` and `twiml_response` from here.

Settings: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, and TWILIO_FROM_NUMBER or
TWILIO_MESSAGING_SERVICE_SID (the service picks the sender from its pool and wins
when both are set); TWILIO_TIMEOUT_SECONDS bounds each API request (the Twilio
client waits forever by default, PITFALLS.md 8).
"""

from __future__ import annotations

import functools
import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse
from urllib3.exceptions import ProtocolError

from distributions.channels.sms import OutgoingSms, SmsBackend, SmsSendError

# The number replied STOP (to us or to any sender of the account): Twilio refuses to
# send to it until it replies START. Permanent, and an opt-out to record.
OPTED_OUT_CODE = 21610
# Codes that say the number itself is wrong or unreachable for good.
INVALID_NUMBER_CODES = frozenset({21211, 21214, 21217, 21401, 21407, 21408, 21612, 21614})
# What the error codes of status callbacks mean (Twilio sends the code only).
ERROR_DESCRIPTIONS: dict[int, str] = {
    21211: "invalid 'To' phone number",
    21408: "permission to send to this region is not enabled",
    21610: "the number replied STOP and has unsubscribed",
    21612: "Twilio cannot route to this number",
    21614: "the number is not a mobile number",
    30001: "queue overflow",
    30002: "account suspended",
    30003: "unreachable destination handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "message filtered by the carrier",
    30008: "unknown error",
    30034: "message from an unregistered number (A2P 10DLC)",
}
_PREFIX = re.compile(r"^Unable to (?:create|fetch|update) record:\s*")


@functools.lru_cache(maxsize=4)
def _client(account_sid: str, auth_token: str, timeout: float) -> Client:
    # One client (and connection pool) per process and credentials.
    return Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))


def client() -> Client:
    return _client(
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_AUTH_TOKEN,
        float(settings.TWILIO_TIMEOUT_SECONDS),
    )


class TwilioBackend(SmsBackend):
    delivers_twiml_replies = True
    # Twilio could be asked (list messages to the number since then), but a message
    # it accepted and one it is still accepting look alike: the line's status
    # callback, which carries our line id, settles an interrupted send instead.
    can_look_up_sends = False

    def send(self, message: OutgoingSms) -> str:
        params: dict[str, Any] = {"to": message.to, "body": message.body}
        if settings.TWILIO_MESSAGING_SERVICE_SID:
            params["messaging_service_sid"] = settings.TWILIO_MESSAGING_SERVICE_SID
        else:
            params["from_"] = settings.TWILIO_FROM_NUMBER
        if message.status_callback:
            params["status_callback"] = message.status_callback
        try:
            created = client().messages.create(**params)
        except Exception as error:  # the client raises its own and requests' exceptions
            raise classify_error(error) from error
        return created.sid


def describe_code(code: int | str | None) -> str:
    """'Twilio error 30003: unreachable destination handset' (or just the code)."""
    if code in (None, ""):
        return ""
    try:
        number = int(code)
    except (TypeError, ValueError):
        return f"Twilio error {code}"
    description = ERROR_DESCRIPTIONS.get(number)
    return f"Twilio error {number}: {description}" if description else f"Twilio error {number}"


def classify_error(error: BaseException) -> SmsSendError:
    """Temporary (5xx, 429, timeouts, connection problems: retry with back-off) or
    permanent (any other 4xx, including invalid numbers), with Twilio's own message."""
    if isinstance(error, TwilioRestException):
        status = int(error.status or 0)
        # Without a JSON body the client reports the HTTP status as the code.
        code = error.code if isinstance(error.code, int) and error.code != status else None
        message = _PREFIX.sub("", str(error.msg or "")).strip() or f"HTTP {status}"
        return _from_status(status, code, message)
    if isinstance(error, TwilioServiceException):
        status = int(error.status or 0)
        message = (error.detail or error.title or f"HTTP {status}").strip()
        return _from_status(status, error.code, message)
    if any(
        isinstance(candidate, requests.ReadTimeout)
        or (
            # "Connection aborted.": Twilio closed the connection after the request.
            isinstance(candidate, requests.ConnectionError)
            and not isinstance(candidate, requests.ConnectTimeout)
            and bool(candidate.args)
            and isinstance(candidate.args[0], ProtocolError)
        )
        for candidate in (error, error.__cause__, error.__context__)
        if candidate is not None
    ):
        # Twilio had the request and may have queued the text: resending could deliver
        # it twice, so the line fails visibly instead (as for email).
        return SmsSendError(
            f"send outcome unknown: Twilio did not answer in time after receiving the "
            f"request; not resent to avoid a duplicate ({error})",
            temporary=False,
        )
    if _is_network_problem(error):
        return SmsSendError(f"could not reach Twilio: {error}", temporary=True)
    if isinstance(error, TwilioException):
        return SmsSendError(f"Twilio: {error}", temporary=False)
    return SmsSendError(f"{type(error).__name__}: {error}", temporary=False)


def _from_status(status: int, code: int | None, message: str) -> SmsSendError:
    prefix = f"Twilio error {code}" if code else f"Twilio HTTP {status}"
    text = f"{prefix}: {message}"
    if code == OPTED_OUT_CODE:
        return SmsSendError(text, temporary=False, code=code, opted_out=True)
    temporary = status >= 500 or status == 429
    return SmsSendError(text, temporary=temporary, code=code)


def _is_network_problem(error: BaseException) -> bool:
    for candidate in (error, error.__cause__, error.__context__):
        if candidate is None:
            continue
        if isinstance(candidate, requests.Timeout | requests.ConnectionError):
            return True
        if isinstance(candidate, socket.timeout | TimeoutError | ConnectionError):
            return True
    return False


# --- Webhooks ---------------------------------------------------------------------------


def signature_is_valid(
    *, url: str, params: Mapping[str, Any], signature: str, auth_token: str
) -> bool:
    """Whether `signature` (X-Twilio-Signature) is Twilio's for this exact public URL and
    these form parameters (a Django QueryDict keeps repeated keys)."""
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def twiml_response(messages: Iterable[str] = ()) -> str:
    """A TwiML document answering an inbound SMS with these messages (none: <Response/>)."""
    response = MessagingResponse()
    for body in messages:
        response.message(body)
    return str(response)
