"""Provider webhooks without valid authentication are refused, on every URL, and change nothing.

tests/distributions covers Postmark's and Mailgun's webhooks and Twilio's signature
rules in depth; this sweeps every provider webhook URL the resolver has (each
django-anymail ESP's tracking and inbound URLs, both Twilio hooks) with forged
requests, with the secrets configured as in production, and checks that none is
accepted and no delivery event or line changes.
"""

from __future__ import annotations

import base64
import importlib.util
import json

import pytest
from django.test import Client

from distributions.models import DeliveryEvent, Recipient
from tests.figures import record
from tests.security.urls import all_url_cases, url_for
from tests.security.world import build_world

pytestmark = [
    pytest.mark.django_db,
    # Sweeping every ESP's URL meets anymail's deprecation notices (SendinBlue, SendGrid).
    pytest.mark.filterwarnings("ignore::Warning:anymail"),
]

WEBHOOK_SECRET = "hookuser:Hook-Secret-Only-The-ESP-Knows"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
# A tracking event for the world's line, in the shapes ESPs send (JSON and form).
FORGED_BODIES = [
    (
        "application/json",
        json.dumps(
            {
                "RecordType": "Bounce",
                "Type": "HardBounce",
                "MessageID": "m-1",
                "Email": "x@example.org",
            }
        ),
    ),
    ("application/json", json.dumps([{"event": "bounce", "msg": {"_id": "m-1"}}])),
    ("application/x-www-form-urlencoded", "event=bounced&message-id=m-1&recipient=x%40example.org"),
]


def basic(credentials: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def state() -> tuple:
    return (
        DeliveryEvent.objects.exclude(event_type="rejected").count(),
        tuple(Recipient.objects.order_by("id").values_list("status", "error")),
    )


def test_every_email_webhook_refuses_requests_without_the_secret(settings):
    world = build_world(settings)
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    world.line.__class__.objects.filter(pk=world.line.pk).update(provider_message_id="m-1")
    before = state()
    client = Client(raise_request_exception=False)
    wrong_auth = [
        {},
        basic("hookuser:guess"),
        basic("admin:" + WEBHOOK_SECRET.split(":")[1]),
        basic(WEBHOOK_SECRET + "x"),
        {"HTTP_AUTHORIZATION": "Bearer " + WEBHOOK_SECRET},
    ]
    attempts = server_errors = 0
    accepted = []
    for case in all_url_cases():
        if not case.name.startswith("anymail:"):
            continue
        path = url_for(case, world)
        for auth in wrong_auth:
            for content_type, body in FORGED_BODIES:
                response = client.post(path, body, content_type=content_type, **auth)
                attempts += 1
                if response.status_code < 400:
                    accepted.append(f"{path} {auth} -> {response.status_code}")
                server_errors += response.status_code >= 500
    assert not accepted, accepted
    assert state() == before
    record("webhooks without valid auth", attempts=attempts, accepted=0)
    # Refused with a 4xx, never a 500, also by the ESPs whose own signing key is not
    # configured (their views fail before checking the credentials: email_hooks.py).
    record("webhooks without valid auth", refused_with_500=server_errors)
    assert server_errors == 0


@pytest.mark.skipif(
    importlib.util.find_spec("distributions.twilio_hooks") is None,
    reason="the Twilio webhooks do not exist yet",
)
def test_twilio_webhooks_refuse_unsigned_and_forged_requests(settings):
    from twilio.request_validator import RequestValidator

    build_world(settings)
    settings.TWILIO_ACCOUNT_SID = "AC" + "1" * 32
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.PUBLIC_BASE_URL = "https://xmflows.example.com"
    before = state()
    client = Client(raise_request_exception=False)
    params = {
        "MessageSid": "SM" + "2" * 32,
        "MessageStatus": "delivered",
        "From": "+15005550006",
        "To": "+14155550100",
        "Body": "STOP",
        "AccountSid": settings.TWILIO_ACCOUNT_SID,
    }

    def sign(url: str, values: dict, token: str = TWILIO_TOKEN) -> str:
        return RequestValidator(token).compute_signature(url, values)

    attempts = 0
    for path in ("/hooks/twilio/status/", "/hooks/twilio/inbound/"):
        public = f"https://xmflows.example.com{path}"
        forgeries = {
            "no signature": {},
            "another token": {"HTTP_X_TWILIO_SIGNATURE": sign(public, params, "not-the-token")},
            "the URL the request reached (not the public one)": {
                "HTTP_X_TWILIO_SIGNATURE": sign(f"http://testserver{path}", params)
            },
            "signed, then the parameters changed": {
                "HTTP_X_TWILIO_SIGNATURE": sign(public, {**params, "MessageStatus": "sent"})
            },
            "garbage": {"HTTP_X_TWILIO_SIGNATURE": "AAAA"},
        }
        for what, headers in forgeries.items():
            response = client.post(path, params, **headers)
            attempts += 1
            assert response.status_code == 403, (path, what, response.status_code)
        # The genuine article passes, so the refusals above are about the signature.
        genuine = client.post(path, params, HTTP_X_TWILIO_SIGNATURE=sign(public, params))
        assert genuine.status_code in (200, 204), genuine.content
    assert state()[1] == before[1]
    record("webhooks without valid auth", attempts=attempts, accepted=0)
