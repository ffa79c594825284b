"""Email webhooks (distributions/email_hooks.py): only the ESP EMAIL_BACKEND names is
served, and whatever anymail's views cannot use is a 4xx with a reason, never a 500.

tests/distributions/test_webhooks.py covers the events themselves (outbox backend,
Postmark and Mailgun); this checks the refusals around them.
"""

import base64
import json
import logging

import pytest
from django.test import Client
from django.urls import reverse

from distributions import email_hooks
from distributions.models import DeliveryEvent

pytestmark = [
    pytest.mark.django_db,
    # Sweeping every ESP's URL meets anymail's deprecation notices (SendinBlue).
    pytest.mark.filterwarnings("ignore::Warning:anymail"),
]

SECRET = "hook:s3cret-pass"
OUTBOX = "distributions.backends.OutboxEmailBackend"
POSTMARK = "anymail.backends.postmark.EmailBackend"
MAILGUN = "anymail.backends.mailgun.EmailBackend"
JUNK_BODIES = [
    ("application/json", "{not json"),
    ("application/json", json.dumps({"unexpected": ["shape"]})),
    ("application/json", json.dumps([1, "two", None])),
    ("application/x-www-form-urlencoded", "event=bounced&signature=nonsense"),
    ("text/plain", "\x00\xff junk"),
]


def basic(credentials: str = SECRET) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def every_webhook_path() -> list[str]:
    return [reverse(f"anymail:{pattern.name}") for pattern in email_hooks.urlpatterns]


def refusals(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "distributions.email_hooks" and record.levelno == logging.WARNING
    ]


@pytest.fixture
def webhook_secret(settings):
    # No ESP's own setting (signing keys, API keys): the views that need one must say so.
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    return settings


@pytest.mark.parametrize("backend", [OUTBOX, POSTMARK, MAILGUN])
@pytest.mark.parametrize("auth", ["none", "valid"], ids=["no-auth", "valid-auth"])
def test_no_email_webhook_answers_a_junk_post_with_a_server_error(
    webhook_secret, caplog, backend, auth
):
    webhook_secret.EMAIL_BACKEND = backend
    headers = basic() if auth == "valid" else {}
    client = Client(raise_request_exception=False)
    paths = every_webhook_path()
    assert len(paths) == len(email_hooks.urlpatterns) >= 20
    server_errors = []
    for path in paths:
        for content_type, body in JUNK_BODIES:
            response = client.post(path, body, content_type=content_type, **headers)
            if response.status_code >= 500:
                server_errors.append(f"{path} {content_type} -> {response.status_code}")
    assert not server_errors, server_errors
    # Our refusals are visible: a warning each, and a "rejected" delivery event each.
    assert len(refusals(caplog)) == DeliveryEvent.objects.filter(event_type="rejected").count()
    assert refusals(caplog)


def test_webhooks_of_another_provider_than_email_backend_are_not_served(webhook_secret, caplog):
    webhook_secret.EMAIL_BACKEND = POSTMARK
    webhook_secret.ANYMAIL = {**webhook_secret.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": "key-1"}
    response = Client().post(
        "/hooks/email/mailgun/tracking/",
        json.dumps({"signature": {}, "event-data": {"event": "delivered"}}),
        content_type="application/json",
        **basic(),
    )
    assert response.status_code == 404
    reason = (
        "email webhooks of Mailgun are not enabled: "
        "EMAIL_BACKEND is anymail.backends.postmark.EmailBackend"
    )
    assert response.content.decode() == reason
    assert refusals(caplog) == [f"Mailgun tracking webhook refused (HTTP 404): {reason}"]
    (event,) = DeliveryEvent.objects.all()
    assert (event.provider, event.event_type, event.reason) == ("Mailgun", "rejected", reason)
    assert event.outcome == "rejected with HTTP 404 (tracking webhook)"
    assert event.raw["url"] == "/hooks/email/mailgun/tracking/"


def test_the_provider_of_email_backend_keeps_taking_its_events(webhook_secret, caplog):
    webhook_secret.EMAIL_BACKEND = POSTMARK
    delivery = {
        "RecordType": "Delivery",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Recipient": "jonas.berg@example.org",
        "DeliveredAt": "2026-11-27T10:01:02Z",
        "Details": "delivered",
        "Metadata": {},
    }
    response = Client().post(
        "/hooks/email/postmark/tracking/",
        json.dumps(delivery),
        content_type="application/json",
        **basic(),
    )
    assert response.status_code == 200
    (event,) = DeliveryEvent.objects.all()
    assert (event.provider, event.event_type) == ("Postmark", "delivered")
    assert refusals(caplog) == []


def test_brevo_takes_its_events_on_the_old_sendinblue_url(webhook_secret):
    webhook_secret.EMAIL_BACKEND = "anymail.backends.brevo.EmailBackend"
    client = Client(raise_request_exception=False)
    sendinblue = client.post(
        "/hooks/email/sendinblue/tracking/", "{}", "application/json", **basic()
    )
    assert sendinblue.status_code != 404
    postmark = client.post("/hooks/email/postmark/tracking/", "{}", "application/json", **basic())
    assert postmark.status_code == 404


def test_a_provider_missing_its_own_setting_answers_403_with_the_reason(webhook_secret, caplog):
    webhook_secret.EMAIL_BACKEND = OUTBOX  # development: every ESP's URL is mounted
    response = Client().post(
        "/hooks/email/mailgun/tracking/", "{}", content_type="application/json", **basic()
    )
    assert response.status_code == 403
    text = response.content.decode()
    assert text.startswith("email webhooks of Mailgun are not configured here: ")
    assert "MAILGUN_WEBHOOK_SIGNING_KEY" in text
    assert refusals(caplog) == [f"Mailgun tracking webhook refused (HTTP 403): {text}"]
    assert DeliveryEvent.objects.get().outcome == "rejected with HTTP 403 (tracking webhook)"


def test_an_unreadable_body_of_the_configured_provider_answers_400(webhook_secret, caplog):
    webhook_secret.EMAIL_BACKEND = POSTMARK
    response = Client().post(
        "/hooks/email/postmark/tracking/", "{not json", content_type="application/json", **basic()
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert text.startswith("the Postmark tracking webhook could not read this request (")
    assert "JSONDecodeError" in text
    assert refusals(caplog) == [f"Postmark tracking webhook refused (HTTP 400): {text}"]
    assert DeliveryEvent.objects.get().event_type == "rejected"


def test_without_the_secret_every_refusal_is_logged(settings, caplog):
    settings.ANYMAIL = {}
    response = Client().post("/hooks/email/postmark/tracking/", "{}", "application/json")
    assert response.status_code == 403
    (message,) = refusals(caplog)
    assert message.startswith("Postmark tracking webhook refused (HTTP 403): email webhooks")
    assert "ANYMAIL_WEBHOOK_SECRET" in message
