"""Builders for SMS tests: an SMS (or two-way SMS survey) workflow, cases with a phone,
signed Twilio webhook requests."""

from __future__ import annotations

from typing import Any

from django.test import Client

from tests.distributions.builders import make_survey, send_case
from tests.distributions.conftest import TWILIO_AUTH_TOKEN
from tests.factories import make_mailing_list, make_workflow
from xmflows.models import Run, Workflow

PHONE = "+14155550100"
SMS_MAPPING = {
    "first_name": "${event://First_Name__c}",
    "last_name": "${event://Last_Name__c}",
    "email": "${event://ContactEmail}",
    "phone": "${event://ContactPhone}",
    "external_data_reference": "${event://ContactId}",
    "language": "",
}
SMS_TEXT = "Hi ${m://FirstName}, how did we do on case ${e://Field/CaseNumber}? ${l://SurveyLink}"
OPENING = "Hi ${m://FirstName}, 2 quick questions about case ${e://Field/CaseNumber}."


def sms_task(*, survey, mailing_list, channel: str = "sms", **overrides: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "type": "distribute_survey",
        "channel": channel,
        "survey": survey.pk,
        "mailing_list": mailing_list.pk,
        "contact": dict(SMS_MAPPING),
        "embedded_data": {"CaseNumber": "${event://CaseNumber}", "Priority": "${event://Priority}"},
        "message": {"text": SMS_TEXT if channel == "sms" else OPENING},
        "send_delay_minutes": 0,
    }
    task.update(overrides)
    return task


def make_sms_workflow(
    *,
    owner,
    survey=None,
    mailing_list=None,
    channel: str = "sms",
    with_list: bool = False,
    **task: Any,
):
    """A Case workflow whose only task texts `survey` (created active when not given);
    with `with_list`, returns (workflow, mailing_list)."""
    survey = survey or make_survey(owner=owner)
    mailing_list = mailing_list or make_mailing_list()
    workflow = make_workflow(
        owner=owner,
        tasks=[sms_task(survey=survey, mailing_list=mailing_list, channel=channel, **task)],
    )
    return (workflow, mailing_list) if with_list else workflow


def send_sms_case(client: Client, workflow: Workflow, **fields: str | None) -> Run:
    fields.setdefault("ContactPhone", PHONE)
    return send_case(client, workflow, **fields)


def twilio_signature(url: str, params: dict[str, str], token: str = TWILIO_AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send, computed by twilio's own validator."""
    from twilio.request_validator import RequestValidator

    return RequestValidator(token).compute_signature(url, params)


def post_twilio(
    client: Client,
    path: str,
    params: dict[str, str],
    *,
    signed_url: str | None = None,
    signature: str | None = None,
):
    """POST a form-encoded Twilio webhook; signed for `signed_url` (the public URL by
    default) unless a `signature` is given ("" sends none)."""
    url = signed_url or f"http://testserver{path}"
    extra: dict[str, str] = {}
    if signature is None:
        signature = twilio_signature(url, params)
    if signature:
        extra["HTTP_X_TWILIO_SIGNATURE"] = signature
    return client.post(path, params, **extra)


def inbound(client: Client, body: str, *, phone: str = PHONE, sid: str | None = None):
    """An inbound text from `phone`, as Twilio posts it (unsigned: development setup)."""
    import uuid

    params = {
        "MessageSid": sid or ("SM" + uuid.uuid4().hex),
        "AccountSid": "AC" + "0" * 32,
        "From": phone,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }
    return client.post("/hooks/twilio/inbound/", params)
