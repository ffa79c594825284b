"""The Salesforce endpoint over HTTP: Ack and Faults, stored runs, refusals, redelivery."""

import io
import logging
import os

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.conftest import fixture_bytes, shared_samples
from tests.factories import case_notification, make_workflow, post_soap
from tests.soap_builders import DEFAULT_ORG_ID, build_outbound_message
from xmflows.models import Delivery, Notification, Run
from xmflows.soap import OUTBOUND_NS, SOAPENV_NS, XSI_NS

SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
SESSION_TOKEN = "00D8a000000XyZa!AQ0AQFakeSessionTokenNotRealZq9Xw3Lm7Pv2Rt5Ys8Uj1Kd4Gh6Bn0Ce3Fi"
# The secret part of the session id: what must never reach the database.
SESSION_SECRET = SESSION_TOKEN.split("!", 1)[1]
ATTACK_FILES = [
    "xxe_file.xml",
    "xxe_url.xml",
    "external_dtd.xml",
    "parameter_entity.xml",
    "billion_laughs.xml",
    "quadratic_blowup.xml",
]
SAMPLES = shared_samples()


# --- helpers -------------------------------------------------------------------------


def assert_ack(response) -> None:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == SOAP_CONTENT_TYPE
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{SOAPENV_NS}}}Envelope"
    (body,) = root.findall(f"{{{SOAPENV_NS}}}Body")
    (answer,) = list(body)
    assert answer.tag == f"{{{OUTBOUND_NS}}}notificationsResponse"
    assert answer.findtext(f"{{{OUTBOUND_NS}}}Ack") == "true"


def fault_of(response) -> tuple[str, str]:
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAPENV_NS}}}Body/{{{SOAPENV_NS}}}Fault")
    assert fault is not None, response.content[:500]
    return fault.findtext("faultcode"), fault.findtext("faultstring")


def assert_rejected(
    response, reason: str, *, status: int = 500, code: str = "Client", workflow=None
) -> Delivery:
    """A refusal as the contract describes it, and its delivery row; returns the row."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == SOAP_CONTENT_TYPE
    assert b"notificationsResponse" not in response.content
    faultcode, faultstring = fault_of(response)
    assert faultcode == f"soapenv:{code}"
    assert reason in faultstring
    delivery = Delivery.objects.order_by("-id").first()
    assert delivery is not None
    assert delivery.outcome == "rejected"
    assert delivery.reason == faultstring
    assert delivery.http_status == status
    assert delivery.fault_code == f"soapenv:{code}"
    assert delivery.workflow_id == (workflow.pk if workflow else None)
    return delivery


def run_inputs(api_client, workflow) -> list[dict]:
    response = api_client.get("/api/v1/runs/", {"workflow": workflow.pk})
    assert response.status_code == 200
    return [run["input"] for run in sorted(response.json()["results"], key=lambda r: r["id"])]


def sobject_facts(body: bytes) -> tuple[int, str, list[str]]:
    """(notification count, object name, record ids) read with plain lxml."""
    root = etree.fromstring(body)
    notifications = root.findall(f".//{{{OUTBOUND_NS}}}Notification")
    sobject = notifications[0].find(f"{{{OUTBOUND_NS}}}sObject")
    object_name = sobject.get(f"{{{XSI_NS}}}type").rpartition(":")[2]
    record_ids = [
        n.findtext(f"{{{OUTBOUND_NS}}}sObject/{{urn:sobject.enterprise.soap.sforce.com}}Id")
        for n in notifications
    ]
    return len(notifications), object_name, record_ids


@pytest.fixture
def case_workflow(admin_user):
    return make_workflow(owner=admin_user)


# --- samples and our own fixtures -------------------------------------------------


@pytest.mark.skipif(not SAMPLES, reason="../shared/samples is absent")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_shared_sample(client, admin_user, path):
    body = path.read_bytes()
    if path.name == "ack_response.xml":
        # Salesforce's answer, not a message: posting it back must be refused.
        workflow = make_workflow(owner=admin_user)
        response = post_soap(client, workflow, body)
        assert_rejected(response, "no notifications element", workflow=workflow)
        assert not Run.objects.exists()
        return
    count, object_name, record_ids = sobject_facts(body)
    workflow = make_workflow(
        owner=admin_user, event={"type": "salesforce_outbound_message", "object": object_name}
    )
    response = post_soap(client, workflow, body)
    assert_ack(response)
    runs = Run.objects.filter(workflow=workflow)
    assert runs.count() == count
    assert {run.status for run in runs} == {"succeeded"}
    assert sorted(runs.values_list("record_id", flat=True)) == sorted(record_ids)
    delivery = Delivery.objects.get()
    assert (delivery.outcome, delivery.notification_count, delivery.duplicate_count) == (
        "accepted",
        count,
        0,
    )
    assert delivery.remote_addr == "127.0.0.1"
    assert delivery.workflow_id == workflow.pk


@pytest.mark.django_db(transaction=True)
def test_ack_is_the_outbound_notifications_response(client, admin_user):
    workflow = make_workflow(owner=admin_user)
    response = post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    assert_ack(response)
    # Committed before the answer, and the run already executed after commit.
    assert Run.objects.get().status == "succeeded"


@pytest.mark.django_db
def test_other_namespace_prefixes_are_understood(client, case_workflow, api_client):
    response = post_soap(client, case_workflow, fixture_bytes("salesforce/other_prefixes.xml"))
    assert_ack(response)
    inputs = run_inputs(api_client, case_workflow)
    assert [i["record_id"] for i in inputs] == [
        "5008a00002Ab31aAAB",
        "5008a00002Ab32aAAB",
        "5008a00002Ab33aAAB",
    ]
    assert {i["object_type"] for i in inputs} == {"Case"}
    assert inputs[0]["fields"]["ContactPhone"] is None
    assert inputs[1]["fields"]["CaseNumber"] == "00003132"
    assert inputs[2]["fields"]["Status"] == "Escalated"


@pytest.mark.django_db
def test_comments_and_processing_instructions_are_ignored(client, case_workflow, api_client):
    response = post_soap(client, case_workflow, fixture_bytes("salesforce/with_comments.xml"))
    assert_ack(response)
    (run_input,) = run_inputs(api_client, case_workflow)
    assert run_input["notification_id"] == "04l8a00000C1e1DAAR"
    assert run_input["fields"] == {
        "Id": "5008a00002Ab41aAAB",
        "Subject": "Hello world!",
        "Status": "Closed",
    }


@pytest.mark.django_db
def test_run_input_has_every_fact_of_the_notification(client, case_workflow, api_client):
    response = post_soap(client, case_workflow, fixture_bytes("salesforce/case_closed.xml"))
    assert_ack(response)
    (run_input,) = run_inputs(api_client, case_workflow)
    assert set(run_input) == {
        "object_type",
        "notification_id",
        "record_id",
        "organization_id",
        "fields",
    }
    assert run_input["object_type"] == "Case"
    assert run_input["organization_id"] == DEFAULT_ORG_ID
    assert run_input["record_id"] == run_input["fields"]["Id"]


@pytest.mark.django_db
def test_nil_fields_are_null_and_omitted_fields_are_absent(client, case_workflow, api_client):
    response = post_soap(client, case_workflow, fixture_bytes("salesforce/case_nil_fields.xml"))
    assert_ack(response)
    (fields,) = [i["fields"] for i in run_inputs(api_client, case_workflow)]
    assert fields["ContactPhone"] is None
    assert fields["Subject"] is None
    assert "ClosedDate" not in fields
    assert fields["Description"] == ""
    assert fields["Priority"] == "Low"


@pytest.mark.django_db
def test_built_message_nil_versus_omitted(client, case_workflow, api_client):
    body = build_outbound_message(
        [case_notification(1, Subject=None, Status="Closed"), case_notification(2, Status="New")]
    )
    assert_ack(post_soap(client, case_workflow, body))
    first, second = (i["fields"] for i in run_inputs(api_client, case_workflow))
    assert "Subject" in first and first["Subject"] is None
    assert "Subject" not in second


@pytest.mark.django_db
def test_unicode_values_are_stored_exactly(client, admin_user, api_client):
    workflow = make_workflow(
        owner=admin_user, event={"type": "salesforce_outbound_message", "object": "Contact"}
    )
    assert_ack(post_soap(client, workflow, fixture_bytes("salesforce/unicode.xml")))
    (fields,) = [i["fields"] for i in run_inputs(api_client, workflow)]
    assert fields["FirstName"] == "Zoë"
    assert fields["LastName"] == "Dvořák-Ångström"
    assert fields["Title"] == "東京 営業部"
    assert fields["Department"] == "قسم المبيعات"
    assert fields["Description"] == "  keeps   inner and outer spaces  "
    assert fields["Nickname"] == "😀 été <b> & \"q\" 'a'"
    assert fields["MailingStreet"] == "1 Rue de l'Église\nBâtiment B"
    assert fields["Emoji__c"] == "🎉👩\u200d💻"
    assert fields["Combining__c"] == "e\u0301"


@pytest.mark.django_db
def test_built_unicode_round_trips(client, case_workflow, api_client):
    values = {"Subject": "naïve 😀 \r\n ☃ <tag> & ' \"", "Description": "中文\tعربي"}
    assert_ack(
        post_soap(client, case_workflow, build_outbound_message([case_notification(1, **values)]))
    )
    (fields,) = [i["fields"] for i in run_inputs(api_client, case_workflow)]
    assert {name: fields[name] for name in values} == values


@pytest.mark.django_db
def test_custom_object(client, admin_user, api_client):
    workflow = make_workflow(
        owner=admin_user,
        event={"type": "salesforce_outbound_message", "object": "Survey_Request__c"},
    )
    assert_ack(post_soap(client, workflow, fixture_bytes("salesforce/custom_object.xml")))
    (run_input,) = run_inputs(api_client, workflow)
    assert run_input["object_type"] == "Survey_Request__c"
    assert run_input["fields"]["Score__c"] == "9.0"


@pytest.mark.django_db
def test_deleted_record_arrives_without_fields(client, case_workflow, api_client):
    assert_ack(post_soap(client, case_workflow, fixture_bytes("salesforce/deleted_record.xml")))
    deleted, kept = run_inputs(api_client, case_workflow)
    assert deleted["fields"] == {}
    assert deleted["record_id"] is None
    assert kept["record_id"] == "5008a00002Ab52aAAB"


@pytest.mark.django_db
def test_100_notifications_are_accepted(client, case_workflow):
    body = build_outbound_message([case_notification(n, Status="Closed") for n in range(100)])
    assert_ack(post_soap(client, case_workflow, body))
    assert Run.objects.filter(workflow=case_workflow).count() == 100
    assert Delivery.objects.get().notification_count == 100


@pytest.mark.django_db
def test_101_notifications_are_refused(client, case_workflow):
    body = build_outbound_message([case_notification(n) for n in range(101)])
    response = post_soap(client, case_workflow, body)
    delivery = assert_rejected(response, "101 notifications", workflow=case_workflow)
    assert "at most 100" in delivery.reason
    assert not Notification.objects.exists()
    assert not Run.objects.exists()


# --- refusals ------------------------------------------------------------------------


@pytest.mark.django_db
def test_truncated_body_is_refused(client, case_workflow):
    body = fixture_bytes("salesforce/case_closed.xml")
    response = post_soap(client, case_workflow, body[: len(body) // 2])
    delivery = assert_rejected(response, "body is not XML", workflow=case_workflow)
    # The admin can see what came.
    assert delivery.body_excerpt.startswith("<?xml")
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ATTACK_FILES)
def test_doctype_attacks_are_refused(client, case_workflow, name):
    response = post_soap(client, case_workflow, fixture_bytes(f"salesforce/{name}"))
    delivery = assert_rejected(
        response, "DOCTYPE is not allowed in a SOAP message", workflow=case_workflow
    )
    for leaked in ("root:", "nologin", "lollollol"):
        assert leaked.encode() not in response.content
        assert leaked not in delivery.reason
    assert not Notification.objects.exists()


@pytest.mark.django_db
def test_organization_restricted_to_15_characters_accepts_the_18_character_id(client, admin_user):
    workflow = make_workflow(
        owner=admin_user,
        event={
            "type": "salesforce_outbound_message",
            "object": "Case",
            "organization_id": DEFAULT_ORG_ID[:15],
        },
    )
    body = build_outbound_message([case_notification(1)], org_id=DEFAULT_ORG_ID)
    assert_ack(post_soap(client, workflow, body))
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_organization_restricted_to_18_characters_accepts_the_15_character_id(client, admin_user):
    workflow = make_workflow(
        owner=admin_user,
        event={
            "type": "salesforce_outbound_message",
            "object": "Case",
            "organization_id": DEFAULT_ORG_ID,
        },
    )
    assert_ack(post_soap(client, workflow, fixture_bytes("salesforce/session_id.xml")))


def post_to_another_organization(client, owner) -> tuple:
    """The Case sample POSTed to a workflow that accepts only another organization."""
    workflow = make_workflow(
        owner=owner,
        event={
            "type": "salesforce_outbound_message",
            "object": "Case",
            "organization_id": "00D000000000001",
        },
    )
    response = post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    return workflow, assert_rejected(response, "wrong organization", workflow=workflow)


@pytest.mark.django_db
def test_another_organization_is_refused(client, admin_user):
    _workflow, delivery = post_to_another_organization(client, admin_user)
    assert DEFAULT_ORG_ID in delivery.reason
    assert delivery.organization_id == DEFAULT_ORG_ID
    assert not Run.objects.exists()


def endpoint_log(caplog) -> tuple[list, list]:
    """Django's request log lines, and the endpoint's own."""
    django_lines = [record for record in caplog.records if record.name == "django.request"]
    ours = [record for record in caplog.records if record.name == "xmflows.views"]
    return django_lines, ours


@pytest.mark.django_db
def test_a_refused_message_is_one_warning_not_a_django_server_error(client, admin_user, caplog):
    workflow, delivery = post_to_another_organization(client, admin_user)
    django_lines, ours = endpoint_log(caplog)
    # The 500 is deliberate (Salesforce retries only those): not "Internal Server Error".
    assert django_lines == []
    (line,) = ours
    assert line.levelname == "WARNING"
    assert line.getMessage() == (
        f"SOAP fault for Salesforce delivery {delivery.pk} (HTTP 500): {delivery.reason}"
    )
    assert "wrong organization" in line.getMessage()
    # The event URL is a bearer secret: the line names the delivery, not the path.
    assert workflow.event.token not in caplog.text


@pytest.mark.django_db
def test_an_unknown_event_url_is_one_warning(client, caplog):
    response = post_soap(
        client, "/events/salesforce/not-a-real-token/", fixture_bytes("salesforce/case_closed.xml")
    )
    delivery = assert_rejected(response, "unknown event URL", status=404, workflow=None)
    django_lines, ours = endpoint_log(caplog)
    assert django_lines == []
    assert [(line.levelname, line.getMessage()) for line in ours] == [
        (
            "WARNING",
            f"SOAP fault for Salesforce delivery {delivery.pk} (HTTP 404): {delivery.reason}",
        )
    ]


@pytest.mark.django_db
def test_wrong_object_is_refused(client, admin_user):
    workflow = make_workflow(
        owner=admin_user, event={"type": "salesforce_outbound_message", "object": "Lead"}
    )
    response = post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    delivery = assert_rejected(response, "wrong object type", workflow=workflow)
    assert "'Case'" in delivery.reason and "'Lead'" in delivery.reason
    assert delivery.object_type == "Case"
    # A nil SessionId redacts nothing: the admin sees the whole message.
    assert '<SessionId xsi:nil="true"/>' in delivery.body_excerpt
    assert "<sf:Status>Closed</sf:Status>" in delivery.body_excerpt
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("untyped", ['xsi:type=""', "", "no sObject"])
def test_a_notification_naming_no_object_type_is_refused(client, case_workflow, untyped):
    # Only the second of two notifications lacks its type: the whole message is refused,
    # since nothing shows that record is a Case (the first is not run either).
    body = build_outbound_message([case_notification(1), case_notification(2)])
    second = body.index(b"<sObject", body.index(b"<sObject") + 1)
    if untyped == "no sObject":
        end = body.index(b"</sObject>", second) + len(b"</sObject>")
        body = body[:second] + body[end:]
    else:
        body = body[:second] + body[second:].replace(b'xsi:type="sf:Case"', untyped.encode(), 1)
    response = post_soap(client, case_workflow, body)
    delivery = assert_rejected(
        response, "notification 2 names no object type", workflow=case_workflow
    )
    assert "expects 'Case'" in delivery.reason
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_unknown_token_is_404_with_a_fault(client, case_workflow):
    response = post_soap(
        client, "/events/salesforce/not-a-real-token/", fixture_bytes("salesforce/case_closed.xml")
    )
    delivery = assert_rejected(response, "unknown event URL", status=404, workflow=None)
    assert delivery.workflow is None
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["%00", "abc%00def", "x" * 65])
def test_a_token_no_event_can_have_is_an_unknown_url_not_a_storage_fault(
    client, case_workflow, token
):
    # PostgreSQL refuses NUL in a parameter: looked up, it would have answered 500
    # ("retry") for a URL that can never work.
    response = post_soap(
        client, f"/events/salesforce/{token}/", fixture_bytes("salesforce/case_closed.xml")
    )
    assert_rejected(response, "unknown event URL", status=404, workflow=None)
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_event_url_without_its_final_slash_is_served(client, case_workflow):
    # An admin may paste the URL into Salesforce without the slash; Salesforce follows
    # no redirect, so the endpoint answers there itself.
    path = f"/events/salesforce/{case_workflow.event.token}"
    assert_ack(post_soap(client, path, fixture_bytes("salesforce/case_closed.xml")))
    assert Run.objects.filter(workflow=case_workflow).count() == 1
    # A redelivery on the slashed URL is the same notification.
    assert_ack(post_soap(client, path + "/", fixture_bytes("salesforce/case_closed.xml")))
    assert Run.objects.filter(workflow=case_workflow).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/events/salesforce/", "/events/salesforce/x/y/", "/events/salesforce//"]
)
def test_mangled_event_urls_get_a_recorded_fault(client, case_workflow, path):
    response = post_soap(client, path, fixture_bytes("salesforce/case_closed.xml"))
    assert_rejected(response, "unknown event URL", status=404, workflow=None)
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_are_405(client, case_workflow, method):
    response = getattr(client, method)(f"/events/salesforce/{case_workflow.event.token}/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_empty_body_is_refused(client, case_workflow):
    assert_rejected(post_soap(client, case_workflow, b""), "body is empty", workflow=case_workflow)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [b"hello", b'{"notifications": []}', b"<html><body>Hi</body></html>", b"\x00\xff\xfe junk"],
    ids=["text", "json", "html", "binary"],
)
def test_non_soap_bodies_are_refused(client, case_workflow, body):
    response = post_soap(client, case_workflow, body)
    assert_rejected(response, "", workflow=case_workflow)
    _, faultstring = fault_of(response)
    assert faultstring.startswith(("body is not XML", "root element is"))


@pytest.mark.django_db
def test_oversized_body_is_refused(client, case_workflow, settings):
    body = fixture_bytes("salesforce/case_closed.xml")
    settings.XMFLOWS_MAX_MESSAGE_BYTES = len(body) - 1
    response = post_soap(client, case_workflow, body)
    delivery = assert_rejected(
        response, f"the limit is {len(body) - 1} bytes", workflow=case_workflow
    )
    assert delivery.body_bytes == len(body)
    assert not Run.objects.exists()
    settings.XMFLOWS_MAX_MESSAGE_BYTES = len(body)
    assert_ack(post_soap(client, case_workflow, body))


@pytest.mark.django_db
def test_disabled_workflow_is_refused(client, admin_user):
    workflow = make_workflow(owner=admin_user, enabled=False)
    response = post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    delivery = assert_rejected(response, "event disabled", workflow=workflow)
    assert delivery.reason == "event disabled"
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_notification_id_too_long_to_store_is_refused_as_bad_input(client, case_workflow):
    body = build_outbound_message([{"id": "X" * 41, "fields": {"Id": "5008a00002Ab11aAAB"}}])
    response = post_soap(client, case_workflow, body)
    delivery = assert_rejected(response, "notification 1 has an Id of 41", workflow=case_workflow)
    assert "at most 40" in delivery.reason
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_body_with_nul_bytes_is_recorded(client, case_workflow):
    # PostgreSQL text cannot hold NUL: the excerpt must not stop the refusal being recorded.
    response = post_soap(client, case_workflow, b"<a>\x00\x00</a>" * 10)
    delivery = assert_rejected(response, "body is not XML", workflow=case_workflow)
    assert "\x00" not in delivery.body_excerpt


# --- SessionId -----------------------------------------------------------------------


def database_dump() -> str:
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_session_id_is_accepted_and_never_stored(client, admin_user):
    workflow = make_workflow(owner=admin_user)
    response = post_soap(client, workflow, fixture_bytes("salesforce/session_id.xml"))
    assert_ack(response)
    assert Run.objects.get().status == "succeeded"
    notification = Notification.objects.get()
    assert SESSION_SECRET not in repr(notification.payload)
    delivery = Delivery.objects.get()
    assert SESSION_SECRET not in repr(vars(delivery))
    assert SESSION_SECRET not in database_dump()


@pytest.mark.django_db
def test_session_id_of_a_refused_message_is_redacted(client, admin_user):
    workflow = make_workflow(
        owner=admin_user, event={"type": "salesforce_outbound_message", "object": "Lead"}
    )
    response = post_soap(client, workflow, fixture_bytes("salesforce/session_id.xml"))
    delivery = assert_rejected(response, "wrong object type", workflow=workflow)
    assert "<SessionId>[redacted]</SessionId>" in delivery.body_excerpt
    assert SESSION_SECRET not in delivery.body_excerpt
    assert SESSION_SECRET.encode() not in response.content
    assert SESSION_SECRET not in database_dump()


@pytest.mark.django_db
@pytest.mark.parametrize("kept", [8, 30, len(SESSION_SECRET) - 1, len(SESSION_SECRET)])
def test_session_id_of_a_truncated_message_is_redacted(client, case_workflow, kept):
    body = fixture_bytes("salesforce/session_id.xml")
    cut = body.index(SESSION_SECRET.encode()) + kept
    response = post_soap(client, case_workflow, body[:cut])
    delivery = assert_rejected(response, "body is not XML", workflow=case_workflow)
    assert SESSION_SECRET[:kept] not in delivery.body_excerpt
    assert "<OrganizationId>" in delivery.body_excerpt
    assert SESSION_SECRET[:kept] not in database_dump()


@pytest.mark.django_db
def test_built_session_id_is_never_stored(client, case_workflow):
    secret = "00D8a000000XyZa!BuiltSessionSecretValue0123456789"
    body = build_outbound_message([case_notification(1)], session_id=secret)
    assert_ack(post_soap(client, case_workflow, body))
    assert "BuiltSessionSecretValue" not in database_dump()


# --- redelivery ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_same_message_three_times_makes_one_run_per_notification(client, admin_user):
    workflow = make_workflow(owner=admin_user)
    body = fixture_bytes("salesforce/case_batch_3.xml")
    for _ in range(3):
        assert_ack(post_soap(client, workflow, body))
    runs = Run.objects.filter(workflow=workflow)
    assert runs.count() == 3
    assert len({run.notification_id for run in runs}) == 3
    assert {run.status for run in runs} == {"succeeded"}
    deliveries = list(Delivery.objects.order_by("id"))
    assert [d.outcome for d in deliveries] == ["accepted"] * 3
    assert [d.notification_count for d in deliveries] == [3, 3, 3]
    assert [d.duplicate_count for d in deliveries] == [0, 3, 3]
    # Every run belongs to the first delivery: a duplicate is never a run.
    assert {run.notification.delivery_id for run in runs} == {deliveries[0].pk}


@pytest.mark.django_db
def test_batch_mixing_seen_and_new_ids_runs_only_the_new(client, case_workflow, api_client):
    first = build_outbound_message(
        [case_notification(1, Status="New"), case_notification(2, Status="New")]
    )
    second = build_outbound_message(
        [
            case_notification(2, Status="Changed"),
            case_notification(3, Status="New"),
            case_notification(4, Status="New"),
        ]
    )
    assert_ack(post_soap(client, case_workflow, first))
    assert_ack(post_soap(client, case_workflow, second))
    inputs = run_inputs(api_client, case_workflow)
    assert [i["notification_id"] for i in inputs] == [
        case_notification(n)["id"] for n in (1, 2, 3, 4)
    ]
    # The run keeps the payload of the first delivery.
    assert inputs[1]["fields"]["Status"] == "New"
    latest = Delivery.objects.order_by("-id").first()
    assert (latest.notification_count, latest.duplicate_count) == (3, 1)


@pytest.mark.django_db
def test_same_id_twice_in_one_message_is_one_run(client, case_workflow):
    body = build_outbound_message(
        [case_notification(7, Status="A"), case_notification(7, Status="B")]
    )
    assert_ack(post_soap(client, case_workflow, body))
    assert Run.objects.count() == 1
    delivery = Delivery.objects.get()
    assert (delivery.notification_count, delivery.duplicate_count) == (2, 1)


@pytest.mark.django_db
def test_deduplication_is_per_event(client, admin_user):
    one = make_workflow(owner=admin_user)
    two = make_workflow(owner=admin_user)
    body = fixture_bytes("salesforce/case_closed.xml")
    assert_ack(post_soap(client, one, body))
    assert_ack(post_soap(client, two, body))
    assert Run.objects.filter(workflow=one).count() == 1
    assert Run.objects.filter(workflow=two).count() == 1


# --- storage failure -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model", [Notification, Run])
def test_storage_failure_answers_a_server_fault_and_keeps_nothing(
    client, admin_user, model, caplog
):
    workflow = make_workflow(owner=admin_user)
    body = fixture_bytes("salesforce/case_batch_3.xml")

    table = model._meta.db_table

    def broken_insert(execute, sql, params, many, context):
        # The database itself fails the insert, after the delivery row was written.
        if sql.lstrip().upper().startswith(f'INSERT INTO "{table.upper()}"'):
            raise OperationalError("disk I/O error")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(broken_insert):
        response = post_soap(client, workflow, body)
    delivery = assert_rejected(
        response, "could not store the message", code="Server", workflow=workflow
    )
    assert "OperationalError" in delivery.reason
    # Our failure: logged at ERROR once (with its traceback), not again by Django.
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage() for record in errors] == ["could not store an outbound message"]
    django_lines, ours = endpoint_log(caplog)
    assert django_lines == []
    assert [line.getMessage() for line in ours] == [
        f"SOAP fault for Salesforce delivery {delivery.pk} (HTTP 500): {delivery.reason}"
    ]
    assert not Notification.objects.exists()
    assert not Run.objects.exists()
    assert Delivery.objects.count() == 1

    assert_ack(post_soap(client, workflow, body))
    assert Run.objects.count() == 3
    assert {run.status for run in Run.objects.all()} == {"succeeded"}
    assert Delivery.objects.order_by("-id").first().duplicate_count == 0
    assert_ack(post_soap(client, workflow, body))
    assert Run.objects.count() == 3


# --- fuzzing -------------------------------------------------------------------------

GOOD_FIXTURES = [
    fixture_bytes(f"salesforce/{name}")
    for name in (
        "case_closed.xml",
        "case_batch_3.xml",
        "case_nil_fields.xml",
        "other_prefixes.xml",
        "with_comments.xml",
        "deleted_record.xml",
        "session_id.xml",
    )
]


def assert_contract_status(response) -> None:
    assert response.status_code in (200, 404, 500)
    assert response["Content-Type"] == SOAP_CONTENT_TYPE
    if response.status_code == 200:
        assert_ack(response)
    else:
        assert fault_of(response)[0] == "soapenv:Client"


@st.composite
def mutated_fixtures(draw) -> bytes:
    body = bytearray(draw(st.sampled_from(GOOD_FIXTURES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(body)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "truncate"]))
        if kind == "delete":
            body[position : position + draw(st.integers(1, 40))] = b""
        elif kind == "insert":
            body[position:position] = draw(st.binary(min_size=1, max_size=20))
        elif kind == "replace":
            body[position : position + 1] = draw(
                st.sampled_from([b"<", b">", b"&", b'"', b"\x00", b"\xff", b":", b"/", b" "])
            )
        elif kind == "duplicate":
            body[position:position] = body[position : position + draw(st.integers(1, 200))]
        else:
            body = body[:position]
    return bytes(body)


@pytest.mark.django_db
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(client, case_workflow, body):
    assert_contract_status(post_soap(client, case_workflow, body))


@pytest.mark.django_db
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=mutated_fixtures(), known_token=st.booleans())
def test_fuzz_mutated_fixtures(client, case_workflow, body, known_token):
    target = case_workflow if known_token else "/events/salesforce/unknown/"
    response = post_soap(client, target, body)
    assert_contract_status(response)
    if not known_token:
        assert response.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_recording_a_storage_failure_waits_briefly_for_the_sqlite_lock(client, admin_user):
    """Storing waited the whole busy timeout for the lock already; recording why must
    not wait that long again before Salesforce gets its fault."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL has no database-wide write lock to wait for")
    workflow = make_workflow(owner=admin_user)
    seen: list[str] = []

    def locked_store(execute, sql, params, many, context):
        statement = sql.lstrip().upper()
        if statement.startswith("PRAGMA BUSY_TIMEOUT") or statement.startswith(
            'INSERT INTO "XMFLOWS_DELIVERY"'
        ):
            seen.append(statement.split(" (")[0])
        if statement.startswith('INSERT INTO "XMFLOWS_NOTIFICATION"'):
            raise OperationalError("database is locked")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(locked_store):
        response = post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    assert_rejected(response, "could not store the message", code="Server", workflow=workflow)
    usual = connection.settings_dict["OPTIONS"]["timeout"] * 1000
    assert seen == [
        'INSERT INTO "XMFLOWS_DELIVERY"',  # the delivery of the failed store, rolled back
        "PRAGMA BUSY_TIMEOUT",  # the wait in force, put back afterwards
        "PRAGMA BUSY_TIMEOUT = 2000",
        'INSERT INTO "XMFLOWS_DELIVERY"',  # the rejection, recorded
        f"PRAGMA BUSY_TIMEOUT = {usual}",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_ack_waits_for_the_wal_sync_done_after_the_commit(client, admin_user, monkeypatch):
    """SQLite with synchronous=FULL: the message commits without syncing under the
    write lock, then the WAL file is synced, and only then is the Ack sent; every
    other commit of the connection syncs as before."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL flushes its WAL at every commit itself")
    import sqlite3

    from xmflows import intake

    database = str(connection.settings_dict["NAME"])
    seen = []
    real_fdatasync = intake.os.fdatasync

    def fdatasync(descriptor):
        # At the sync: committed (another connection reads the run), and the
        # connection's own commits are FULL (2) again.
        with sqlite3.connect(database) as other:
            (runs,) = other.execute("SELECT COUNT(*) FROM xmflows_run").fetchone()
        (level,) = connection.connection.execute("PRAGMA synchronous").fetchone()
        seen.append((os.readlink(f"/proc/self/fd/{descriptor}"), runs, level))
        real_fdatasync(descriptor)

    monkeypatch.setattr(intake.os, "fdatasync", fdatasync)
    workflow = make_workflow(owner=admin_user)
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    assert_ack(response)
    assert seen == [(f"{database}-wal", 1, 2)]
    # The message's own commit was the one that did not sync.
    pragmas = [sql for sql in statements if sql.startswith("PRAGMA synchronous")]
    assert pragmas[:2] == ["PRAGMA synchronous = NORMAL", "PRAGMA synchronous = FULL"]
    inserts = [i for i, sql in enumerate(statements) if sql.startswith("INSERT INTO")]
    assert statements.index("PRAGMA synchronous = NORMAL") < inserts[0]

    def broken_disk(descriptor):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(intake.os, "fdatasync", broken_disk)
    refused = post_soap(client, workflow, build_outbound_message([case_notification(2)]))
    # Not known to be on disk: no Ack, so Salesforce sends it again.
    assert refused.status_code == 500
    assert b"<Ack>" not in refused.content
    assert b"could not be confirmed on disk" in refused.content
    # Said as it is: stored (and acknowledged as a duplicate when Salesforce resends).
    assert Run.objects.count() == 2
    rejected = Delivery.objects.get(outcome="rejected")
    assert "the message was stored, but could not be confirmed on disk" in rejected.reason
    (level,) = connection.connection.execute("PRAGMA synchronous").fetchone()
    assert level == 2
