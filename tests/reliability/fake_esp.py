"""A scripted email service provider behind Django's email backend interface, for fault tests.

It fails exactly as anymail's requests-based backends fail — AnymailRequestsAPIError
carrying a real `requests.Response` (5xx, 429, 4xx with the provider's JSON message),
or a class deriving from both AnymailRequestsAPIError and the `requests` exception
for timeouts and refused connections, chained to it — and records every call and
every message it accepted, per address, so a test can count sends at the provider.

`ScriptedEsp.script(address, "503", "timeout", ...)` sets what the next calls for
that address do; once the script is used up, calls succeed. "accepted-timeout"
accepts the message and then fails with a read timeout, as a provider that answers
too late does; "accepted-disconnect" accepts it and drops the connection unanswered.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from http.client import RemoteDisconnected

import requests
from anymail.exceptions import AnymailRecipientsRefused, AnymailRequestsAPIError
from anymail.message import AnymailRecipientStatus, AnymailStatus
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

PROVIDER = "FakeESP"
# HTTP answers a provider gives, with the message it puts in its JSON body.
HTTP_FAILURES: dict[str, tuple[int, str, str]] = {
    "500": (500, "Internal Server Error", "Internal server error, please retry"),
    "502": (502, "Bad Gateway", "Upstream provider unavailable"),
    "503": (503, "Service Unavailable", "Service temporarily unavailable (maintenance)"),
    "429": (429, "Too Many Requests", "Rate limit exceeded: 300 requests per minute"),
    "400": (400, "Bad Request", "Invalid 'From' address: sender signature not confirmed"),
    "401": (401, "Unauthorized", "Invalid server token"),
    "422": (422, "Unprocessable Entity", "Message body is too large"),
}


def fake_response(status: int, reason: str, message: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = reason
    response.headers["Content-Type"] = "application/json"
    response._content = json.dumps({"ErrorCode": status, "Message": message}).encode()
    response.url = "https://api.fake-esp.example/email"
    return response


def _network_error(original: requests.RequestException) -> AnymailRequestsAPIError:
    # What anymail's base_requests.post_to_esp does with a requests exception.
    error_class = type("AnymailRequestsAPIError", (AnymailRequestsAPIError, type(original)), {})
    error = error_class(
        f"Error posting to {PROVIDER}:", esp_name=PROVIDER, request=original.request
    )
    error.__cause__ = original
    return error


class ScriptedEsp(BaseEmailBackend):
    scripts: dict[str, list[str]] = defaultdict(list)
    calls: dict[str, list] = defaultdict(list)  # address -> times of each call
    accepted: Counter = Counter()
    failures: Counter = Counter()  # behaviour -> how many times it was injected

    @classmethod
    def reset(cls) -> None:
        cls.scripts = defaultdict(list)
        cls.calls = defaultdict(list)
        cls.accepted = Counter()
        cls.failures = Counter()

    @classmethod
    def script(cls, address: str, *behaviours: str) -> None:
        cls.scripts[address.lower()] = list(behaviours)

    def send_messages(self, email_messages) -> int:
        sent = 0
        for message in email_messages:
            (address,) = [to.lower() for to in message.to]
            self.calls[address].append(timezone.now())
            plan = self.scripts[address]
            behaviour = plan.pop(0) if plan else "ok"
            if behaviour != "ok":
                self.failures[behaviour] += 1
            if behaviour in HTTP_FAILURES:
                status, reason, text = HTTP_FAILURES[behaviour]
                raise AnymailRequestsAPIError(
                    f"{PROVIDER} API response {status}",
                    email_message=message,
                    esp_name=PROVIDER,
                    response=fake_response(status, reason, text),
                )
            if behaviour == "timeout":
                raise _network_error(
                    requests.exceptions.ConnectTimeout("Connection to api.fake-esp timed out")
                )
            if behaviour == "refused":
                # As requests raises it: the connection was never made.
                raise _network_error(
                    requests.exceptions.ConnectionError(
                        MaxRetryError(
                            None,  # type: ignore[arg-type]
                            "/email",
                            NewConnectionError(None, "[Errno 111] Connection refused"),
                        )
                    )
                )
            if behaviour == "recipient-refused":
                raise AnymailRecipientsRefused(
                    f"{PROVIDER} refused {address}: inactive recipient (hard bounce on file)"
                )
            # Accepted: the provider has it, and will deliver it.
            self.accepted[address] += 1
            message_id = f"fake-{uuid.uuid4()}"
            status = AnymailStatus()
            status.set_recipient_status({address: AnymailRecipientStatus(message_id, "queued")})
            message.anymail_status = status
            if behaviour == "accepted-timeout":
                raise _network_error(requests.exceptions.ReadTimeout("Read timed out (30 s)"))
            if behaviour == "accepted-disconnect":
                # What requests raises when the server closes the connection after
                # reading the request, before answering.
                raise _network_error(
                    requests.exceptions.ConnectionError(
                        ProtocolError(
                            "Connection aborted.",
                            RemoteDisconnected("Remote end closed connection without response"),
                        )
                    )
                )
            sent += 1
        return sent
