"""The OpenAPI schema tells the truth: every null the API answers is a nullable field,
every query parameter a view reads is listed with what it does, and every error the
API answers is documented with its shape (core/api_schema.py)."""

import json
import re

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from rest_framework.test import APIClient

from contacts.models import Transaction
from distributions.models import Conversation, Distribution, FrequencyRule, Recipient
from surveys.models import Response
from tests.factories import (
    make_contact,
    make_directory,
    make_mailing_list,
    make_survey,
    make_user,
    make_workflow,
)
from xmflows.models import Delivery, Notification, Run, TaskRun

MISSING_ID = 987654321


@pytest.fixture(scope="module")
def schema() -> dict:
    """The schema /api/v1/schema/ serves, as JSON (generated without a database)."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def query_parameters(operation: dict) -> dict[str, dict]:
    return {p["name"]: p for p in operation.get("parameters", ()) if p["in"] == "query"}


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- Nullability ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ("Workflow", "event_url"),
        ("Run", "duration_seconds"),
        ("TaskRun", "started_at"),
        ("TaskRun", "finished_at"),
        ("Recipient", "response"),
        ("Recipient", "parent"),
        ("Recipient", "contact"),
        ("Recipient", "workflow_run"),
        ("Distribution", "workflow"),
        ("Distribution", "workflow_run"),
        ("Distribution", "created_by"),
    ],
)
def test_fields_the_api_answers_as_null_are_nullable(schema, component, field):
    assert schema["components"]["schemas"][component]["properties"][field].get("nullable")


def nulls_not_documented(schema: dict, node: dict, value, where: str) -> list[str]:
    """Where `value` holds a null that `node` (its schema) does not allow."""
    if value is None:
        return [] if node.get("nullable") else [where]
    node = resolve(schema, node)
    if "allOf" in node and len(node["allOf"]) == 1:
        node = resolve(schema, node["allOf"][0])
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in node.get("properties", {}):
                found += nulls_not_documented(
                    schema, node["properties"][key], item, f"{where}.{key}"
                )
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            found += nulls_not_documented(schema, node["items"], item, f"{where}[{index}]")
    return found


@pytest.mark.django_db
def test_every_null_the_api_answers_is_documented_as_nullable(schema, admin_user):
    """Objects at their emptiest (nothing run, sent, answered or linked yet), read by
    their owner and by a signed-in user who is not staff."""
    workflow = make_workflow(owner=admin_user)
    delivery = Delivery.objects.create(workflow=workflow, outcome="accepted")
    Delivery.objects.create(workflow=None, outcome="rejected", reason="unknown URL")
    notification = Notification.objects.create(
        event=workflow.event, notification_id="04l000000000001", delivery=delivery, payload={}
    )
    run = Run.objects.create(workflow=workflow, notification=notification)  # queued
    TaskRun.objects.create(run=run, position=0, type="add_to_directory")
    survey = make_survey(owner=admin_user)
    distribution = Distribution.objects.create(survey=survey, channel="email")
    line = Recipient.objects.create(
        distribution=distribution, survey=survey, channel="email", contact=None
    )
    Conversation.objects.create(
        recipient=line, phone="+14155550100", last_activity_at=timezone.now()
    )
    Response.objects.create(survey=survey, contact=None)
    directory = make_directory()
    contact = make_contact(mailing_lists=[make_mailing_list(directory=directory)])
    Transaction.objects.create(contact=contact, data={})
    FrequencyRule.objects.create(
        name="One a month", scope="directory", directory=directory, max_sends=1, period_days=30
    )
    nonstaff = make_user(username="integrator", is_staff=False)

    reads = {
        admin_user: [
            "/api/v1/workflows/",
            "/api/v1/runs/",
            f"/api/v1/runs/{run.pk}/",
            "/api/v1/deliveries/",
            "/api/v1/surveys/",
            "/api/v1/responses/",
            "/api/v1/directories/",
            "/api/v1/mailing-lists/",
            "/api/v1/contacts/",
            "/api/v1/distributions/",
            f"/api/v1/distributions/{distribution.pk}/",
            f"/api/v1/distributions/{distribution.pk}/recipients/",
            "/api/v1/frequency-rules/",
            "/api/v1/sms-conversations/",
        ],
        # Not the owner, not staff: the event URL is withheld (null).
        nonstaff: ["/api/v1/workflows/", f"/api/v1/workflows/{workflow.pk}/"],
    }
    undocumented = []
    for user, urls in reads.items():
        client = client_for(user)
        for url in urls:
            answer = client.get(url)
            assert answer.status_code == 200, (url, answer.content)
            template = re.sub(r"/\d+/", "/{id}/", url)
            documented = schema["paths"][template]["get"]["responses"]["200"]
            node = documented["content"]["application/json"]["schema"]
            undocumented += nulls_not_documented(schema, node, answer.json(), url)
    workflow_answer = client_for(nonstaff).get(f"/api/v1/workflows/{workflow.pk}/").json()
    assert workflow_answer["event_url"] is None  # the case the schema must allow
    assert undocumented == []


def test_frequency_rule_target_is_documented_in_answers_too(schema):
    """The API answers `target` (the id of the scope's object): not write-only."""
    target = schema["components"]["schemas"]["FrequencyRule"]["properties"]["target"]
    assert not target.get("writeOnly")
    assert target["type"] == "integer"


# --- Query parameters ---------------------------------------------------------------------

# Every query parameter each list reads (its get_queryset or the action's code).
FILTERS = {
    ("/api/v1/workflows/", "get"): {"mine"},
    ("/api/v1/runs/", "get"): {"workflow", "status", "record_id", "email", "since", "until"},
    ("/api/v1/deliveries/", "get"): {"outcome", "workflow"},
    ("/api/v1/responses/", "get"): {"survey"},
    ("/api/v1/mailing-lists/", "get"): {"directory"},
    ("/api/v1/contacts/", "get"): {
        "email",
        "mailing_list",
        "directory",
        "external_data_reference",
        "phone",
    },
    ("/api/v1/distributions/", "get"): {"survey", "workflow", "workflow_run", "channel", "kind"},
    ("/api/v1/distributions/{id}/recipients/", "get"): {"status"},
    ("/api/v1/outbox/", "get"): {"to", "channel"},
    ("/api/v1/frequency-rules/", "get"): {"scope"},
    ("/api/v1/sms-conversations/", "get"): {"phone", "status", "distribution"},
}


@pytest.mark.parametrize(("path", "method"), list(FILTERS))
def test_every_filter_a_view_reads_is_documented_with_type_and_meaning(schema, path, method):
    documented = query_parameters(schema["paths"][path][method])
    for name in FILTERS[path, method]:
        assert name in documented, (path, name)
        parameter = documented[name]
        assert parameter["schema"].get("type"), (path, name)
        assert len(parameter.get("description", "")) > 10, (path, name)


def test_mine_is_a_boolean_filter_of_the_workflows_list(schema):
    mine = query_parameters(schema["paths"]["/api/v1/workflows/"]["get"])["mine"]
    assert mine["schema"]["type"] == "boolean"


def test_no_undocumented_filters(schema):
    """Each documented query parameter is one FILTERS lists as read by its view: a
    parameter documented but not read would mislead as much as the reverse."""
    for path, method, operation in operations(schema):
        names = set(query_parameters(operation)) - {"page"}
        assert names <= FILTERS.get((path, method), set()), (path, method, names)


@pytest.mark.django_db
def test_mine_filters_as_documented(admin_user, other_user):
    mine = make_workflow(owner=admin_user)
    make_workflow(owner=other_user)
    client = client_for(admin_user)
    for value in ("true", "1"):
        listed = client.get("/api/v1/workflows/", {"mine": value}).json()["results"]
        assert [item["id"] for item in listed] == [mine.pk]
    assert client.get("/api/v1/workflows/", {"mine": "false"}).json()["count"] == 2


# --- Errors -------------------------------------------------------------------------------


def test_the_error_shapes(schema):
    components = schema["components"]["schemas"]
    assert components["ErrorDetail"]["required"] == ["detail"]
    assert components["ErrorDetail"]["properties"]["detail"]["type"] == "string"
    messages = components["ValidationError"]["additionalProperties"]["anyOf"][0]
    assert messages["type"] == "array"


def test_every_operation_documents_401_and_its_other_errors(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        assert "401" in responses, (path, method)
        if "{id}" in path:
            assert "404" in responses, (path, method)
        if "requestBody" in operation:
            body_400 = responses["400"]["content"]["application/json"]["schema"]
            refs = {item["$ref"].rsplit("/", 1)[-1] for item in body_400["oneOf"]}
            assert refs == {"ValidationError", "ErrorDetail"}, (path, method)
        if method != "get":
            assert "403" in responses, (path, method)


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/api/v1/surveys/{id}/", "delete", "409"),
        ("/api/v1/mailing-lists/{id}/", "delete", "409"),
        ("/api/v1/directories/{id}/", "delete", "409"),
        ("/api/v1/runs/{id}/retry/", "post", "409"),
        ("/api/v1/runs/{id}/retry/", "post", "403"),
        ("/api/v1/surveys/{id}/", "get", "403"),
        ("/api/v1/surveys/{id}/activate/", "post", "400"),
        ("/api/v1/outbox/", "get", "403"),
        ("/api/v1/runs/", "get", "400"),
        ("/api/v1/workflows/{id}/", "get", "404"),
        ("/api/v1/workflows/", "get", "404"),  # a page past the last
    ],
)
def test_view_specific_errors_are_documented(schema, path, method, status):
    response = schema["paths"][path][method]["responses"][status]
    assert response["description"]
    assert "$ref" in response["content"]["application/json"]["schema"]


def assert_matches_documented_shape(schema: dict, operation: dict, answer, where) -> None:
    """The answer's status is documented, and its body has the documented error shape."""
    status = str(answer.status_code)
    assert status in operation["responses"], (where, status, answer.content[:300])
    if answer.status_code < 400:
        return
    body = answer.json()
    node = operation["responses"][status]["content"]["application/json"]["schema"]
    shapes = {item["$ref"].rsplit("/", 1)[-1] for item in node.get("oneOf", [node])}
    if isinstance(body.get("detail"), str):
        assert "ErrorDetail" in shapes, (where, body)
    else:
        assert "ValidationError" in shapes, (where, body)
        for value in body.values():
            assert isinstance(value, list | dict), (where, body)


def url_of(path: str, ids: dict[str, int]) -> str:
    return path.replace("{id}", str(ids.get(path, MISSING_ID)))


@pytest.mark.django_db
def test_every_error_the_api_answers_is_documented(schema, admin_user):
    """Each operation, called by someone signed out, by a signed-in user who is not
    staff, and by staff: with a missing id, an empty or invalid body, a bad value of
    each filter, a page past the last. Whatever it answers is in the schema."""
    survey = make_survey(owner=admin_user)
    distribution = Distribution.objects.create(survey=survey, channel="email")
    ids = {"/api/v1/distributions/{id}/recipients/": distribution.pk}
    callers = {
        "signed out": APIClient(),
        "nonstaff": client_for(make_user(username="integrator", is_staff=False)),
        "staff": client_for(admin_user),
    }
    for path, method, operation in operations(schema):
        url = url_of(path, ids)
        for who, client in callers.items():
            answer = getattr(client, method)(url, {"unknown_key": 1}, format="json")
            assert_matches_documented_shape(schema, operation, answer, (who, method, path))
        if method != "get":
            continue
        staff = callers["staff"]
        for name in query_parameters(operation):
            answer = staff.get(url, {name: "not-valid,99999999999999999999"})
            assert_matches_documented_shape(schema, operation, answer, (method, path, name))


@pytest.mark.django_db
def test_documented_conflicts_answer_as_documented(schema, admin_user):
    survey = make_survey(owner=admin_user)
    Distribution.objects.create(survey=survey, channel="email")
    client = client_for(admin_user)
    operation = schema["paths"]["/api/v1/surveys/{id}/"]["delete"]
    answer = client.delete(f"/api/v1/surveys/{survey.pk}/")
    assert answer.status_code == 409
    assert_matches_documented_shape(schema, operation, answer, "survey delete")


@pytest.mark.django_db
def test_a_body_that_is_not_json_answers_as_documented(schema, admin_user):
    operation = schema["paths"]["/api/v1/workflows/"]["post"]
    answer = client_for(admin_user).post(
        "/api/v1/workflows/", "{not json", content_type="application/json"
    )
    assert answer.status_code == 400
    assert_matches_documented_shape(schema, operation, answer, "workflow create")


@pytest.mark.django_db
def test_the_served_schema_is_the_one_tested(schema, api_client):
    served = api_client.get("/api/v1/schema/", {"format": "json"}).json()
    assert served["paths"] == schema["paths"]
    assert served["components"] == schema["components"]
