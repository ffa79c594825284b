"""Twilio webhooks: signatures computed by twilio's own validator, and status callbacks
arriving out of order and more than once."""

import pytest

from contacts.models import Contact
from distributions.models import DeliveryEvent, Recipient
from tests.distributions.sms_builders import (
    PHONE,
    make_sms_workflow,
    post_twilio,
    send_sms_case,
    twilio_signature,
)

pytestmark = pytest.mark.django_db(transaction=True)

STATUS_PATH = "/hooks/twilio/status/"
INBOUND_PATH = "/hooks/twilio/inbound/"


def _status(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15005550006",
        "To": PHONE,
        **extra,
    }


def _rejections() -> list[DeliveryEvent]:
    return list(DeliveryEvent.objects.filter(provider="twilio", event_type="rejected"))


# --- Signatures (Twilio configured) ---------------------------------------------------------


def test_a_valid_signature_is_accepted(client, twilio_settings):
    path = f"{STATUS_PATH}?line=999"
    response = post_twilio(client, path, _status("SM" + "1" * 32, "delivered"))
    assert response.status_code == 204
    event = DeliveryEvent.objects.get()
    assert (event.event_type, event.outcome) == (
        "delivered",
        "ignored: no distribution line has this message id",
    )


def test_a_wrong_signature_is_refused_and_recorded(client, twilio_settings):
    params = _status("SM" + "2" * 32, "delivered")
    forged = twilio_signature("http://testserver/hooks/twilio/status/", params, token="not-it")
    response = post_twilio(client, STATUS_PATH, params, signature=forged)
    assert response.status_code == 403
    (rejection,) = _rejections()
    assert rejection.reason == (
        "invalid X-Twilio-Signature for http://testserver/hooks/twilio/status/"
    )
    assert rejection.raw["params"]["MessageSid"] == "SM" + "2" * 32
    assert rejection.outcome == "rejected with HTTP 403 (status webhook)"
    assert not DeliveryEvent.objects.exclude(event_type="rejected").exists()


def test_a_signature_for_another_url_is_refused(client, twilio_settings):
    params = _status("SM" + "3" * 32, "delivered")
    response = post_twilio(
        client,
        STATUS_PATH,
        params,
        signed_url="https://attacker.example.net/hooks/twilio/status/",
    )
    assert response.status_code == 403
    assert len(_rejections()) == 1


def test_a_signature_without_our_line_id_is_refused(client, twilio_settings):
    # The query string is part of what Twilio signs: ?line= cannot be swapped.
    params = _status("SM" + "4" * 32, "delivered")
    signature = twilio_signature("http://testserver/hooks/twilio/status/?line=1", params)
    response = post_twilio(client, f"{STATUS_PATH}?line=2", params, signature=signature)
    assert response.status_code == 403


def test_a_missing_signature_is_refused_on_both_webhooks(client, twilio_settings):
    status = post_twilio(client, STATUS_PATH, _status("SM" + "5" * 32, "sent"), signature="")
    inbound = post_twilio(
        client, INBOUND_PATH, {"From": PHONE, "Body": "STOP", "MessageSid": "SM1"}, signature=""
    )
    assert (status.status_code, inbound.status_code) == (403, 403)
    reasons = sorted(rejection.raw["webhook"] for rejection in _rejections())
    assert reasons == ["inbound", "status"]
    assert all(r.reason == "missing X-Twilio-Signature header" for r in _rejections())
    assert not Contact.objects.filter(sms_opted_out=True).exists()


def test_behind_a_proxy_the_public_url_is_what_is_signed(client, twilio_settings):
    # Twilio called https://surveys.example.com/…; the proxy forwarded it to us as
    # http://testserver/…. The signature is checked against PUBLIC_BASE_URL.
    twilio_settings.PUBLIC_BASE_URL = "https://surveys.example.com"
    params = _status("SM" + "6" * 32, "sent")
    public = "https://surveys.example.com/hooks/twilio/status/?line=5"
    assert (
        post_twilio(client, f"{STATUS_PATH}?line=5", params, signed_url=public).status_code == 204
    )
    # The request's own URL is not what Twilio signed.
    internal = "http://testserver/hooks/twilio/status/?line=5"
    refused = post_twilio(client, f"{STATUS_PATH}?line=5", params, signed_url=internal)
    assert refused.status_code == 403


def test_a_signed_inbound_text_gets_twiml(client, twilio_settings):
    response = post_twilio(
        client, INBOUND_PATH, {"From": PHONE, "Body": "hello", "MessageSid": "SM" + "7" * 32}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode().endswith("<Response />")


def test_without_twilio_configured_unsigned_webhooks_are_accepted(client, sms_memory_backend):
    response = client.post(STATUS_PATH, _status("SM" + "8" * 32, "sent"))
    assert response.status_code == 204
    assert not _rejections()


def test_without_twilio_configured_a_production_site_refuses_unsigned_webhooks(
    client, admin_user, sms_memory_backend, settings
):
    """No token, DEBUG off (an email-only site): nothing shows a request comes from
    Twilio, so none may mark a line, opt a number out or answer a survey."""
    send_sms_case(client, make_sms_workflow(owner=admin_user))
    line = Recipient.objects.get()
    settings.TWILIO_ACCEPT_UNSIGNED = False
    failed = client.post(
        f"{STATUS_PATH}?line={line.pk}",
        _status(line.provider_message_id, "failed", ErrorCode="21610", To=PHONE),
    )
    stop = client.post(INBOUND_PATH, {"From": PHONE, "Body": "STOP", "MessageSid": "SM" + "9" * 32})
    for response in (failed, stop):
        assert response.status_code == 403
        assert "TWILIO_AUTH_TOKEN is not set" in response.content.decode()
    assert len(_rejections()) == 2
    before = line.status
    line.refresh_from_db()
    assert line.status == before
    assert not Contact.objects.get(pk=line.contact_id).sms_opted_out


def test_only_post_is_allowed(client, sms_memory_backend):
    assert client.get(STATUS_PATH).status_code == 405
    assert client.get(INBOUND_PATH).status_code == 405


# --- Status callbacks ---------------------------------------------------------------------


@pytest.fixture
def sent_line(client, admin_user, sms_memory_backend) -> Recipient:
    send_sms_case(client, make_sms_workflow(owner=admin_user))
    line = Recipient.objects.get()
    assert line.get_status_display() == "Sent"
    return line


def _callback(client, line: Recipient, status: str, **extra: str):
    response = client.post(
        f"{STATUS_PATH}?line={line.pk}", _status(line.provider_message_id, status, **extra)
    )
    assert response.status_code == 204
    line.refresh_from_db()
    return line


def test_delivered_before_sent_keeps_delivered(client, sent_line):
    line = _callback(client, sent_line, "delivered")
    assert line.get_status_display() == "Delivered"
    delivered_at = line.delivered_at
    assert delivered_at is not None
    line = _callback(client, line, "sent")
    assert line.get_status_display() == "Delivered"
    assert line.delivered_at == delivered_at
    outcomes = list(
        DeliveryEvent.objects.filter(recipient=line)
        .order_by("id")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["moved from Sent to Delivered", "recorded"]


def test_a_duplicated_callback_is_recorded_once(client, sent_line):
    _callback(client, sent_line, "delivered")
    _callback(client, sent_line, "delivered")
    _callback(client, sent_line, "queued")
    _callback(client, sent_line, "queued")
    assert DeliveryEvent.objects.filter(recipient=sent_line).count() == 2
    assert set(DeliveryEvent.objects.values_list("event_id", flat=True)) == {
        f"{sent_line.provider_message_id}:delivered",
        f"{sent_line.provider_message_id}:queued",
    }


def test_undelivered_with_an_error_code_fails_the_line(client, sent_line):
    line = _callback(client, sent_line, "sent")
    line = _callback(client, line, "undelivered", ErrorCode="30003")
    assert line.get_status_display() == "Failed"
    assert line.error == (
        "Twilio reported the message undelivered: "
        "Twilio error 30003: unreachable destination handset"
    )
    # A late "sent" does not bring it back.
    line = _callback(client, line, "sending")
    assert line.get_status_display() == "Failed"


def test_error_21610_in_a_callback_opts_the_number_out(client, sent_line):
    _callback(client, sent_line, "failed", ErrorCode="21610")
    contact = Contact.objects.get()
    assert contact.sms_opted_out
    assert "21610" in contact.sms_opted_out_source


def test_a_callback_settles_a_send_interrupted_before_its_sid_was_recorded(client, sent_line):
    # The worker stopped after Twilio took the message: the line is Failed with an
    # unknown outcome and no SID. Our line id in the callback URL finds it.
    sid = sent_line.provider_message_id
    Recipient.objects.filter(pk=sent_line.pk).update(
        status="failed", provider_message_id="", outcome_unknown=True, error="unknown"
    )
    response = client.post(f"{STATUS_PATH}?line={sent_line.pk}", _status(sid, "sent"))
    assert response.status_code == 204
    sent_line.refresh_from_db()
    assert sent_line.get_status_display() == "Sent"
    assert sent_line.provider_message_id == sid
    assert not sent_line.outcome_unknown
