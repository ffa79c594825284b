"""The REST API of workflows, runs and deliveries, its docs, and the health checks."""

import copy
import re

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import PROBE_TASK_TYPE, fixture_bytes, probe_task
from tests.factories import (
    case_notification,
    make_mailing_list,
    make_user,
    make_workflow,
    post_soap,
)
from tests.soap_builders import build_outbound_message
from xmflows.jobs import execute_runs
from xmflows.models import Run, Workflow

pytestmark = pytest.mark.django_db

NOT_OWNER = "only the workflow's owner can edit it; copy it instead"

# CONTRACT.md §5, with the tasks left out (`tasks` may be empty).
CONTRACT_DEFINITION = {
    "name": "Closed case survey",
    "enabled": True,
    "event": {"type": "salesforce_outbound_message", "object": "Case", "organization_id": None},
    "conditions": {
        "match": "all",
        "rules": [{"field": "IsClosed", "op": "equals", "value": "true"}],
    },
    "tasks": [],
}
DEFINITION_KEYS = {
    "name",
    "enabled",
    "event",
    "conditions",
    "on_failure",
    "notify_owner_on_failure",
    "tasks",
}


def definition(**overrides) -> dict:
    result = copy.deepcopy(CONTRACT_DEFINITION)
    result.update(overrides)
    return result


def create(client, body: dict) -> dict:
    response = client.post("/api/v1/workflows/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def deliver(client, workflow, *notifications) -> list[Run]:
    before = set(Run.objects.values_list("id", flat=True))
    response = post_soap(client, workflow, build_outbound_message(list(notifications)))
    assert response.status_code == 200
    new_ids = sorted(set(Run.objects.values_list("id", flat=True)) - before)
    execute_runs(new_ids)
    return list(Run.objects.filter(pk__in=new_ids).order_by("id"))


# --- authentication --------------------------------------------------------------


def test_token_authentication(admin_user):
    token = Token.objects.create(user=admin_user)
    client = APIClient()
    response = client.get("/api/v1/workflows/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    response = client.post(
        "/api/v1/workflows/",
        definition(),
        format="json",
        HTTP_AUTHORIZATION=f"Token {token.key}",
    )
    assert response.status_code == 201
    assert response.json()["owner"] == admin_user.username


def test_wrong_token_is_refused(admin_user):
    Token.objects.create(user=admin_user)
    response = APIClient().get("/api/v1/workflows/", HTTP_AUTHORIZATION="Token not-a-key")
    assert response.status_code == 401


def test_session_authentication(client, admin_user):
    assert client.login(username="owner", password="pw-owner-123")
    assert client.get("/api/v1/workflows/").status_code == 200
    response = client.post("/api/v1/workflows/", definition(), content_type="application/json")
    assert response.status_code == 201
    assert response.json()["owner"] == "owner"


def test_the_api_root_links_to_the_api_not_to_the_pages(api_client):
    links = api_client.get("/api/v1/").json()
    assert links["workflows"] == "http://testserver/api/v1/workflows/"
    assert links["runs"] == "http://testserver/api/v1/runs/"
    assert links["deliveries"] == "http://testserver/api/v1/deliveries/"
    assert all("/api/v1/" in url for url in links.values()), links


def test_the_site_root_leads_to_the_workflows(client):
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/workflows/")


@pytest.mark.parametrize(
    "path",
    ["/api/v1/workflows/", "/api/v1/runs/", "/api/v1/deliveries/", "/api/v1/workflows/1/"],
)
def test_unauthenticated_requests_are_refused(client, path):
    response = client.get(path)
    assert response.status_code in (401, 403)
    assert "results" not in response.json()


def test_unauthenticated_create_is_refused(client):
    response = client.post("/api/v1/workflows/", definition(), content_type="application/json")
    assert response.status_code in (401, 403)
    assert not Workflow.objects.exists()


# --- workflows -------------------------------------------------------------------


def test_create_from_the_contract_definition(api_client, admin_user):
    data = create(api_client, definition())
    assert isinstance(data["id"], int)
    assert data["owner"] == admin_user.username
    match = re.fullmatch(
        r"http://testserver/events/salesforce/([A-Za-z0-9_-]+)/", data["event_url"]
    )
    assert match, data["event_url"]
    assert len(match.group(1)) >= 22
    assert data["created_at"] and data["updated_at"]
    assert data["name"] == "Closed case survey"
    assert data["event"]["object"] == "Case"
    assert data["event"]["organization_id"] is None
    assert data["conditions"] == CONTRACT_DEFINITION["conditions"]
    assert data["tasks"] == []
    workflow = Workflow.objects.get(pk=data["id"])
    assert workflow.event.url == data["event_url"]


def test_event_url_of_a_created_workflow_receives_messages(api_client, client):
    data = create(api_client, definition(conditions=None))
    path = data["event_url"].removeprefix("http://testserver")
    response = post_soap(client, path, fixture_bytes("salesforce/case_closed.xml"))
    assert response.status_code == 200
    assert Run.objects.get().workflow_id == data["id"]


def test_each_workflow_gets_its_own_event_url(api_client):
    first = create(api_client, definition())
    second = create(api_client, definition())
    assert first["event_url"] != second["event_url"]


def test_create_with_a_task(api_client, task_probe):
    data = create(api_client, definition(tasks=[probe_task("a")]))
    assert data["tasks"] == [{"type": PROBE_TASK_TYPE, "label": "a", "email_field": ""}]


@pytest.mark.parametrize(
    ("change", "field_path", "message"),
    [
        (
            {"tasks": [{"type": "teleport"}]},
            ("tasks", 0, "type", 0),
            "unknown task type 'teleport'",
        ),
        (
            {"conditions": {"match": "all", "rules": [{"field": "X", "op": "like", "value": 1}]}},
            ("conditions", 0),
            "unknown operator 'like'",
        ),
        (
            {"conditions": {"match": "most", "rules": []}},
            ("conditions", 0),
            "match must be 'all' or 'any'",
        ),
        (
            {"event": {"type": "salesforce_outbound_message", "organization_id": None}},
            ("event", "object", 0),
            "required",
        ),
        (
            {"event": {"object": "Case", "organization_id": "00D-not-an-id"}},
            ("event", "organization_id", 0),
            "15- or 18-character",
        ),
        (
            {"event": {"object": "Case; DROP TABLE"}},
            ("event", "object", 0),
            "object API name",
        ),
        ({"name": ""}, ("name", 0), "blank"),
    ],
    ids=[
        "unknown-task-type",
        "unknown-operator",
        "unknown-match",
        "missing-object",
        "bad-organization",
        "bad-object",
        "blank-name",
    ],
)
def test_invalid_definitions_get_a_message_per_field(api_client, change, field_path, message):
    response = api_client.post("/api/v1/workflows/", definition(**change), format="json")
    assert response.status_code == 400
    detail = response.json()
    for key in field_path:
        detail = detail[key]
    assert message in detail
    assert not Workflow.objects.exists()


def test_invalid_task_config_names_the_task_and_field(api_client, task_probe):
    response = api_client.post(
        "/api/v1/workflows/",
        definition(tasks=[probe_task("ok"), probe_task("x" * 51)]),
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["tasks"]
    assert errors[0] == {}
    assert "label" in errors[1]


def test_others_can_read_but_not_edit(api_client, other_client):
    data = create(api_client, definition())
    url = f"/api/v1/workflows/{data['id']}/"
    assert other_client.get(url).status_code == 200

    for response in (
        other_client.put(url, definition(name="taken over"), format="json"),
        other_client.patch(url, {"name": "taken over"}, format="json"),
        other_client.delete(url),
    ):
        assert response.status_code == 403
        assert response.json() == {"detail": NOT_OWNER}
    workflow = Workflow.objects.get(pk=data["id"])
    assert workflow.name == "Closed case survey"


def test_owner_can_put_patch_and_delete(api_client):
    data = create(api_client, definition())
    url = f"/api/v1/workflows/{data['id']}/"
    response = api_client.put(
        url,
        definition(name="Renamed", event={"object": "Lead", "organization_id": None}),
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["event"]["object"] == "Lead"
    assert response.json()["event_url"] == data["event_url"]
    assert api_client.get(url).json()["event"]["object"] == "Lead"
    response = api_client.patch(url, {"enabled": False}, format="json")
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    assert response.json()["name"] == "Renamed"
    assert api_client.delete(url).status_code == 204
    assert not Workflow.objects.exists()


def test_put_replaces_the_definition_what_it_leaves_out_is_empty(api_client):
    task = {
        "type": "add_to_directory",
        "mode": "embedded_data",
        "mailing_list": make_mailing_list().pk,
        "contact": {"first_name": "a", "last_name": "b", "email": "${event://ContactEmail}"},
        "embedded_data": {},
    }
    data = create(
        api_client,
        definition(event={"object": "Case", "organization_id": "00D8a000000XyZa"}, tasks=[task]),
    )
    assert data["conditions"] and data["tasks"]
    url = f"/api/v1/workflows/{data['id']}/"
    api_client.patch(url, {"enabled": False}, format="json")
    response = api_client.put(url, {"name": "Bare", "event": {"object": "Case"}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["conditions"], body["tasks"], body["enabled"]) == ({}, [], True)
    assert body["event"]["organization_id"] is None
    assert api_client.get(url).json() == body


def test_patch_keeps_what_it_does_not_mention(api_client, client):
    data = create(
        api_client,
        definition(event={"object": "Case", "organization_id": "00D8a000000XyZa"}),
    )
    url = f"/api/v1/workflows/{data['id']}/"
    response = api_client.patch(url, {"name": "Renamed"}, format="json")
    assert response.status_code == 200
    # Clearing the organization restriction on a rename would open the event to any org.
    for body in (response.json(), api_client.get(url).json()):
        assert body["name"] == "Renamed"
        assert body["event"]["organization_id"] == "00D8a000000XyZa"
        assert body["event"]["object"] == "Case"
        assert body["conditions"] == CONTRACT_DEFINITION["conditions"]
    body = build_outbound_message([case_notification(1)], org_id="00D000000000001")
    assert post_soap(client, Workflow.objects.get(), body).status_code == 500


def test_copy_belongs_to_the_caller_with_a_new_event_url(api_client, other_client, task_probe):
    original = create(api_client, definition(tasks=[probe_task("a")]))
    response = other_client.post(f"/api/v1/workflows/{original['id']}/copy/")
    assert response.status_code == 201
    copied = response.json()
    assert copied["id"] != original["id"]
    assert copied["owner"] == "other"
    assert copied["event_url"] != original["event_url"]
    for key in DEFINITION_KEYS - {"name"}:
        assert copied[key] == original[key], key
    # The copy is the caller's to edit.
    response = other_client.patch(
        f"/api/v1/workflows/{copied['id']}/", {"name": "Mine now"}, format="json"
    )
    assert response.status_code == 200


def test_export_is_the_definition_and_imports_back(api_client, task_probe):
    original = create(
        api_client,
        definition(
            tasks=[probe_task("a"), probe_task("b", email_field="ContactEmail")],
            on_failure="continue",
            event={"object": "Case", "organization_id": "00D8a000000XyZaEAK"},
        ),
    )
    response = api_client.get(f"/api/v1/workflows/{original['id']}/export/")
    assert response.status_code == 200
    exported = response.json()
    assert set(exported) == DEFINITION_KEYS
    imported = create(api_client, exported)
    assert imported["event_url"] != original["event_url"]
    again = api_client.get(f"/api/v1/workflows/{imported['id']}/export/").json()
    assert again == exported


# Key order as the author wrote it: neither alphabetical nor PostgreSQL jsonb's order
# (shorter keys first), so a column that reorders objects shows here.
AUTHOR_ORDER = ["Zeta", "Case Number", "A"]


def test_a_saved_definition_keeps_the_order_of_its_mappings(api_client):
    mailing_list = make_mailing_list()
    body = definition(
        conditions={
            "match": "all",
            "rules": [{"value": "true", "op": "equals", "field": "IsClosed"}],
        },
        tasks=[
            {
                "type": "add_to_directory",
                "mailing_list": mailing_list.pk,
                "contact": {"first_name": "x", "last_name": "y", "email": "${event://Email}"},
                "embedded_data": dict.fromkeys(AUTHOR_ORDER, "${event://CaseNumber}"),
            }
        ],
    )
    workflow_id = create(api_client, body)["id"]

    read_back = api_client.get(f"/api/v1/workflows/{workflow_id}/").json()
    exported = api_client.get(f"/api/v1/workflows/{workflow_id}/export/").json()
    for shown in (read_back, exported):
        assert list(shown["tasks"][0]["embedded_data"]) == AUTHOR_ORDER
        assert list(shown["conditions"]["rules"][0]) == ["value", "op", "field"]


def test_workflow_list_is_paginated(api_client):
    for _ in range(3):
        create(api_client, definition())
    body = api_client.get("/api/v1/workflows/").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3


# --- runs ------------------------------------------------------------------------


@pytest.fixture
def two_workflows(admin_user, client, task_probe):
    closed = make_workflow(
        owner=admin_user,
        name="Closed",
        conditions={"rules": [{"field": "Status", "op": "equals", "value": "Closed"}]},
        tasks=[probe_task("a", email_field="ContactEmail")],
    )
    other = make_workflow(owner=admin_user, name="Other", tasks=[probe_task("b")])
    deliver(
        client,
        closed,
        case_notification(1, Status="Closed", ContactEmail="Ada@Example.com"),
        case_notification(2, Status="Open", ContactEmail="bob@example.com"),
    )
    task_probe.plan("b", "fail")
    deliver(client, other, case_notification(3, Status="Closed"))
    return closed, other


def run_ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return sorted(run["id"] for run in response.json()["results"])


def test_runs_filters(api_client, two_workflows):
    closed, other = two_workflows
    closed_ids = sorted(Run.objects.filter(workflow=closed).values_list("id", flat=True))
    (other_id,) = Run.objects.filter(workflow=other).values_list("id", flat=True)
    (succeeded_id,) = Run.objects.filter(status="succeeded").values_list("id", flat=True)

    assert run_ids(api_client.get("/api/v1/runs/")) == sorted([*closed_ids, other_id])
    assert run_ids(api_client.get("/api/v1/runs/", {"workflow": closed.pk})) == closed_ids
    assert run_ids(api_client.get("/api/v1/runs/", {"status": "failed"})) == [other_id]
    assert run_ids(api_client.get("/api/v1/runs/", {"status": "succeeded"})) == [succeeded_id]
    skipped = api_client.get("/api/v1/runs/", {"status": "skipped"}).json()["results"]
    assert [run["reason"] for run in skipped] == [
        "condition not met (all): Status equals 'Closed' — actual value 'Open'"
    ]
    record = case_notification(3)["fields"]["Id"]
    assert run_ids(api_client.get("/api/v1/runs/", {"record_id": record})) == [other_id]
    # Email as the task recorded it, found whatever its case.
    assert run_ids(api_client.get("/api/v1/runs/", {"email": "ada@example.com"})) == [succeeded_id]
    assert run_ids(api_client.get("/api/v1/runs/", {"email": "nobody@example.com"})) == []
    combined = api_client.get("/api/v1/runs/", {"workflow": closed.pk, "status": "failed"})
    assert run_ids(combined) == []


def test_runs_invalid_status_is_400(api_client):
    response = api_client.get("/api/v1/runs/", {"status": "exploded"})
    assert response.status_code == 400
    assert "status" in response.json()


def test_run_detail(api_client, two_workflows):
    closed, _ = two_workflows
    run = Run.objects.get(workflow=closed, status="succeeded")
    response = api_client.get(f"/api/v1/runs/{run.pk}/")
    assert response.status_code == 200
    body = response.json()
    for key in ("id", "workflow", "status", "created_at", "finished_at", "reason", "input"):
        assert key in body
    assert body["workflow"] == closed.pk
    assert body["status"] == "succeeded"
    assert body["finished_at"]
    assert body["input"] == {
        "object_type": "Case",
        "notification_id": case_notification(1)["id"],
        "record_id": case_notification(1)["fields"]["Id"],
        "organization_id": "00D8a000000XyZaEAK",
        "fields": {
            "Id": case_notification(1)["fields"]["Id"],
            "Status": "Closed",
            "ContactEmail": "Ada@Example.com",
        },
    }
    (task,) = body["tasks"]
    assert {key: task[key] for key in ("type", "status", "error")} == {
        "type": PROBE_TASK_TYPE,
        "status": "succeeded",
        "error": "",
    }
    assert task["output"]["label"] == "a"


def test_run_input_lists_the_fields_in_the_order_salesforce_sent_them(api_client, client):
    workflow = make_workflow(owner=make_user())
    sent = {"Subject": "Broken", "Id": "5008a00002Zz0001AAB", "Zeta__c": "z", "A__c": "a"}
    (run,) = deliver(client, workflow, {"id": "04l8a00000Zz0001AAR", "fields": sent})

    shown = api_client.get(f"/api/v1/runs/{run.pk}/").json()["input"]["fields"]
    assert list(shown) == list(sent)
    assert shown == sent


def test_failed_run_detail_shows_the_error(api_client, two_workflows):
    _, other = two_workflows
    run = Run.objects.get(workflow=other)
    body = api_client.get(f"/api/v1/runs/{run.pk}/").json()
    assert body["status"] == "failed"
    assert "b failed on purpose" in body["reason"]
    assert body["tasks"][0]["status"] == "failed"
    assert body["tasks"][0]["error"] == "b failed on purpose"


def test_retry_a_failed_run(
    api_client, two_workflows, task_probe, django_capture_on_commit_callbacks
):
    _, other = two_workflows
    run = Run.objects.get(workflow=other)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/v1/runs/{run.pk}/retry/")
    assert response.status_code == 202
    assert response.json()["id"] == run.pk
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.retried_at is not None  # temporary failures get a fresh retry window
    assert task_probe.count("b") == 2
    body = api_client.get(f"/api/v1/runs/{run.pk}/").json()
    assert body["tasks"][0]["status"] == "succeeded"


def test_retry_a_succeeded_run_is_409(api_client, two_workflows, task_probe):
    run = Run.objects.get(status="succeeded")
    response = api_client.post(f"/api/v1/runs/{run.pk}/retry/")
    assert response.status_code == 409
    assert "succeeded" in response.json()["detail"]
    assert task_probe.count("a") == 1


def test_retry_by_someone_else_is_403(two_workflows):
    _, other = two_workflows
    run = Run.objects.get(workflow=other)
    stranger = APIClient()
    stranger.force_authenticate(make_user(username="stranger", is_staff=False))
    response = stranger.post(f"/api/v1/runs/{run.pk}/retry/")
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == "failed"


def test_runs_are_paginated(api_client, admin_user, client):
    workflow = make_workflow(owner=admin_user)
    post_soap(client, workflow, build_outbound_message([case_notification(n) for n in range(60)]))
    first = api_client.get("/api/v1/runs/").json()
    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 60
    assert len(first["results"]) == 50
    assert first["previous"] is None
    assert first["next"]
    second = api_client.get(first["next"]).json()
    assert len(second["results"]) == 10
    assert second["next"] is None
    assert second["previous"]
    ids = [run["id"] for run in first["results"] + second["results"]]
    assert len(set(ids)) == 60


# --- deliveries ------------------------------------------------------------------


def test_deliveries_list_and_outcome_filter(api_client, admin_user, client):
    workflow = make_workflow(owner=admin_user)
    body = fixture_bytes("salesforce/case_batch_3.xml")
    post_soap(client, workflow, body)
    post_soap(client, workflow, body)
    post_soap(client, workflow, b"not xml")
    post_soap(client, "/events/salesforce/unknown-token/", body)

    listed = api_client.get("/api/v1/deliveries/").json()
    assert set(listed) == {"count", "next", "previous", "results"}
    assert listed["count"] == 4
    for delivery in listed["results"]:
        for key in (
            "received_at",
            "outcome",
            "reason",
            "notification_count",
            "duplicate_count",
            "remote_addr",
            "workflow",
        ):
            assert key in delivery

    accepted = api_client.get("/api/v1/deliveries/", {"outcome": "accepted"}).json()["results"]
    assert [(d["notification_count"], d["duplicate_count"]) for d in accepted] == [(3, 3), (3, 0)]
    assert {d["workflow"] for d in accepted} == {workflow.pk}
    assert {d["remote_addr"] for d in accepted} == {"127.0.0.1"}
    assert {d["reason"] for d in accepted} == {""}

    rejected = api_client.get("/api/v1/deliveries/", {"outcome": "rejected"}).json()["results"]
    assert [d["workflow"] for d in rejected] == [None, workflow.pk]
    assert rejected[0]["reason"].startswith("unknown event URL")
    assert rejected[1]["reason"].startswith("body is not XML")
    assert {d["outcome"] for d in rejected} == {"rejected"}


def test_deliveries_invalid_outcome_is_400(api_client):
    response = api_client.get("/api/v1/deliveries/", {"outcome": "maybe"})
    assert response.status_code == 400
    assert "outcome" in response.json()


# --- schema, docs, health ---------------------------------------------------------


def test_openapi_schema(api_client):
    response = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/workflows/",
        "/api/v1/workflows/{id}/copy/",
        "/api/v1/workflows/{id}/export/",
        "/api/v1/runs/",
        "/api/v1/runs/{id}/retry/",
        "/api/v1/deliveries/",
    ):
        assert path in schema["paths"], path
    # The filters CONTRACT.md §5 names are documented parameters.
    for path, names in {
        "/api/v1/runs/": {"workflow", "status", "record_id", "email"},
        "/api/v1/deliveries/": {"outcome"},
    }.items():
        documented = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert names <= documented, (path, documented)
    export = schema["paths"]["/api/v1/workflows/{id}/export/"]["get"]["responses"]["200"]
    assert export["content"]["application/json"]["schema"]["type"] == "object"  # not Workflow


def test_api_docs_use_local_static_files(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com"):
        assert cdn not in html
    assets = re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", html)
    assert any(asset.endswith(".js") for asset in assets), html[:2000]
    for asset in assets:
        asset_response = client.get(asset)
        assert asset_response.status_code == 200, asset
        if hasattr(asset_response, "close"):
            asset_response.close()


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"] == "ok"


def test_deleting_a_workflow_with_history_keeps_its_deliveries(api_client, admin_user, client):
    workflow = make_workflow(owner=admin_user)
    post_soap(client, workflow, fixture_bytes("salesforce/case_batch_3.xml"))
    response = api_client.delete(f"/api/v1/workflows/{workflow.pk}/")
    assert response.status_code == 204
    assert not Run.objects.exists()
    (delivery,) = api_client.get("/api/v1/deliveries/").json()["results"]
    assert delivery["workflow"] is None
    assert delivery["notification_count"] == 3


def test_browsers_find_a_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] in {"image/x-icon", "image/vnd.microsoft.icon"}


@pytest.mark.django_db
def test_unknown_api_paths_answer_json(api_client):
    missing = api_client.get("/api/v1/no-such-endpoint/")
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/json"
    assert "no API endpoint at /api/v1/no-such-endpoint/" in missing.json()["detail"]
    assert api_client.post("/api/v2/runs/", {}, format="json").status_code == 404
    # A known endpoint without its final slash: GET goes on (with its query string);
    # a POST, which a redirect would turn into a GET, is told the URL instead.
    redirected = api_client.get("/api/v1/runs?status=failed")
    assert redirected.status_code == 301
    assert redirected["Location"] == "/api/v1/runs/?status=failed"
    posted = api_client.post("/api/v1/workflows", {}, format="json")
    assert posted.status_code == 404
    assert posted.json()["detail"] == "Not found. API URLs end with a slash: /api/v1/workflows/"
    # Anonymous callers get the same answer: it reveals nothing.
    assert APIClient().get("/api/v1/no-such-endpoint/").status_code == 404


@pytest.mark.django_db
def test_token_writes_to_unknown_api_paths_get_json_not_the_csrf_page(admin_user):
    # A real HTTP client sends no CSRF token with its API token; the CSRF middleware
    # must not answer a mistyped URL with its HTML page (the 404 view is exempt).
    from django.test import Client
    from rest_framework.authtoken.models import Token

    token = Token.objects.get_or_create(user=admin_user)[0].key
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token}")
    for method, path in (
        ("post", "/api/v1/workflows"),
        ("delete", "/api/v1/workflows/3"),
        ("post", "/api/v1/nonexistent/"),
    ):
        response = getattr(client, method)(path, "{}", content_type="application/json")
        assert response.status_code == 404, (method, path)
        assert response["Content-Type"] == "application/json"
        assert "Not found" in response.json()["detail"]
    # The real endpoints still take the token without CSRF, as before.
    assert client.get("/api/v1/workflows/").status_code == 200


@pytest.mark.django_db
def test_add_to_directory_reports_the_mapping_with_the_other_fields_at_once(api_client):
    definition = {
        "name": "x",
        "event": {"type": "salesforce_outbound_message", "object": "Case"},
        "tasks": [
            {
                "type": "add_to_directory",
                "mode": "embedded_data",
                "contact": {"first_name": "", "last_name": "", "email": ""},
                "embedded_data": {},
            },
            {"type": "add_to_directory", "mode": "transaction", "contact": {"first_name": "A"}},
        ],
    }
    response = api_client.post("/api/v1/workflows/", definition, format="json")
    assert response.status_code == 400
    saving, looking_up = response.json()["tasks"]
    assert saving["mailing_list"] == ["This field is required."]
    assert set(saving["contact"]) == {"first_name", "last_name", "email"}
    assert looking_up["mailing_list"] == ["This field is required."]
    assert "map the email or the external data reference" in looking_up["contact"]["email"][0]
