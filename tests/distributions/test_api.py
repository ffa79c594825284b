"""REST API: distributions with counts, recipient rows, the outbox, verified senders."""

import pytest
from rest_framework.test import APIClient

from distributions.models import OutboxMessage, VerifiedSender
from distributions.services import distribution_create
from tests.distributions.builders import (
    SENDER,
    make_distribution_workflow,
    make_line,
    make_sender,
    make_survey,
    send_case,
)
from tests.factories import make_user


@pytest.mark.django_db
def test_distributions_list_counts_by_status_and_filters(api_client, admin_user):
    survey = make_survey(owner=admin_user)
    first = distribution_create(survey=survey, channel="email", workflow_run_id=5, workflow_id=9)
    second = distribution_create(survey=survey, channel="email", workflow_run_id=6, workflow_id=8)
    other = distribution_create(survey=make_survey(owner=admin_user, name="B"), channel="email")
    for status in ["sent", "sent", "finished", "hard_bounce"]:
        make_line(first, status)
    make_line(second, "opted_out")
    body = api_client.get("/api/v1/distributions/", {"survey": survey.pk}).json()
    assert body["count"] == 2
    by_id = {item["id"]: item for item in body["results"]}
    assert by_id[first.pk]["counts"] == {"Sent": 2, "Survey Finished": 1, "Hard Bounce": 1}
    assert by_id[first.pk]["workflow_run"] == 5
    assert by_id[first.pk]["channel"] == "email"
    assert by_id[first.pk]["survey"] == survey.pk
    assert by_id[second.pk]["counts"] == {"Opted Out": 1}
    by_workflow = api_client.get("/api/v1/distributions/", {"workflow": 8}).json()
    assert [item["id"] for item in by_workflow["results"]] == [second.pk]
    detail = api_client.get(f"/api/v1/distributions/{first.pk}/").json()
    assert detail["counts"]["Sent"] == 2
    assert api_client.get(f"/api/v1/distributions/{other.pk}/").status_code == 200
    assert api_client.get("/api/v1/distributions/", {"survey": "x"}).status_code == 400


@pytest.mark.django_db
def test_recipient_rows_are_paginated_with_labels(api_client, admin_user):
    survey = make_survey(owner=admin_user)
    distribution = distribution_create(survey=survey, channel="email")
    lines = [make_line(distribution, "sent") for _ in range(3)]
    make_line(distribution, "failed", error="Bad or missing API token")
    body = api_client.get(f"/api/v1/distributions/{distribution.pk}/recipients/").json()
    assert body["count"] == 4
    assert [row["id"] for row in body["results"][:3]] == [line.pk for line in lines]
    failed = body["results"][3]
    assert failed["status"] == "Failed"
    assert failed["error"] == "Bad or missing API token"
    assert set(failed) >= {
        "contact",
        "first_name",
        "last_name",
        "email",
        "phone",
        "status",
        "error",
        "sent_at",
        "delivered_at",
        "opened_at",
        "started_at",
        "finished_at",
        "survey_link",
        "response",
    }
    only_failed = api_client.get(
        f"/api/v1/distributions/{distribution.pk}/recipients/", {"status": "Failed"}
    ).json()
    assert only_failed["count"] == 1


@pytest.mark.django_db
def test_distributions_of_surveys_you_cannot_see_are_hidden(admin_user):
    survey = make_survey(owner=admin_user)
    distribution = distribution_create(survey=survey, channel="email")
    stranger = APIClient()
    stranger.force_authenticate(make_user(username="trudy"))
    assert stranger.get("/api/v1/distributions/").json()["count"] == 0
    assert stranger.get(f"/api/v1/distributions/{distribution.pk}/").status_code == 404
    assert stranger.get(f"/api/v1/distributions/{distribution.pk}/recipients/").status_code == 404
    # An id that is not a number is not found either (was a 500).
    missing = stranger.get("/api/v1/distributions/abc/recipients/")
    assert (missing.status_code, missing["Content-Type"]) == (404, "application/json")
    assert APIClient().get("/api/v1/distributions/").status_code in (401, 403)


@pytest.mark.django_db(transaction=True)
def test_outbox_lists_sent_email_and_filters(client, api_client, admin_user):
    send_case(client, make_distribution_workflow(owner=admin_user))
    OutboxMessage.objects.create(channel="sms", to="+14155550100", body="Hi")
    everything = api_client.get("/api/v1/outbox/").json()
    assert everything["count"] == 2
    email = api_client.get("/api/v1/outbox/", {"to": "JONAS.berg@example.org"}).json()
    assert email["count"] == 1
    message = email["results"][0]
    assert message["channel"] == "email"
    assert message["to"] == "jonas.berg@example.org"
    assert message["from"] == "Customer Care <surveys@example.com>"
    assert message["subject"] == "How did we do, Jonas?"
    # body: what the task's HTML body rendered to; text: the plain-text part.
    assert '<a href="http://testserver/s/' in message["body"]
    assert "Take the survey (http://testserver/s/" in message["text"]
    assert "<a " not in message["text"]
    assert message["created_at"]
    sms = api_client.get("/api/v1/outbox/", {"channel": "sms"}).json()
    assert [item["to"] for item in sms["results"]] == ["+14155550100"]
    assert api_client.get("/api/v1/outbox/", {"channel": "fax"}).status_code == 400
    # A "+" typed as is in the query string arrives as a space: the number is still meant.
    raw = api_client.get("/api/v1/outbox/?to=+14155550100").json()
    assert [item["to"] for item in raw["results"]] == ["+14155550100"]


@pytest.mark.django_db(transaction=True)
def test_the_outbox_body_of_an_email_is_its_escaped_html(client, api_client, admin_user):
    workflow = make_distribution_workflow(
        owner=admin_user,
        message={
            "subject": "For ${event://First_Name__c}",
            "body": "<p>${event://First_Name__c}: ${l://SurveyLink?d=Take%20the%20survey}</p>",
            "from_email": "surveys@example.com",
        },
    )
    send_case(client, workflow, First_Name__c='<b>A&B "q"</b>')
    (message,) = api_client.get("/api/v1/outbox/", {"channel": "email"}).json()["results"]
    assert message["subject"] == 'For <b>A&B "q"</b>'  # a subject is plain text
    assert message["body"].startswith("<p>&lt;b&gt;A&amp;B &quot;q&quot;&lt;/b&gt;: <a href=")
    assert '<b>A&B "q"</b>: Take the survey (http://testserver/s/' in message["text"]


@pytest.mark.django_db
def test_outbox_shows_a_non_ascii_sender_name_as_written():
    from django.core.mail import EmailMessage

    from distributions.backends import OutboxEmailBackend
    from distributions.channels.email import from_header

    message = EmailMessage("Hi", "Body", from_header("Support Zoë", "a@example.com"), ["b@x.org"])
    OutboxEmailBackend().send_messages([message])
    assert OutboxMessage.objects.get().from_address == "Support Zoë <a@example.com>"


@pytest.mark.django_db
def test_outbox_and_senders_are_staff_only(admin_user):
    plain = APIClient()
    plain.force_authenticate(make_user(username="plain", is_staff=False))
    assert plain.get("/api/v1/outbox/").status_code == 403
    assert plain.get("/api/v1/verified-senders/").status_code == 403
    assert plain.post("/api/v1/verified-senders/", {"address": "x@y.example"}).status_code == 403


@pytest.mark.django_db
def test_verified_senders_crud(api_client):
    created = api_client.post(
        "/api/v1/verified-senders/", {"address": " Support@Example.COM "}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["address"] == "support@example.com"
    assert created.json()["verified"] is True
    domain = api_client.post("/api/v1/verified-senders/", {"address": "example.org"})
    assert domain.json()["address"] == "@example.org"
    duplicate = api_client.post("/api/v1/verified-senders/", {"address": "support@example.com"})
    assert duplicate.status_code == 400
    bad = api_client.post("/api/v1/verified-senders/", {"address": "not a domain"})
    assert bad.status_code == 400
    sender_id = created.json()["id"]
    patched = api_client.patch(f"/api/v1/verified-senders/{sender_id}/", {"verified": False})
    assert patched.json()["verified"] is False
    assert api_client.delete(f"/api/v1/verified-senders/{sender_id}/").status_code == 204
    assert list(VerifiedSender.objects.values_list("address", flat=True)) == ["@example.org"]


@pytest.mark.django_db
def test_a_duplicate_sender_is_named_in_its_canonical_form(api_client):
    make_sender("@example.com")
    duplicate = api_client.post("/api/v1/verified-senders/", {"address": " Example.COM "})
    assert duplicate.status_code == 400
    assert duplicate.json() == {
        "address": ["@example.com is already verified; there is no need to add it again"]
    }


@pytest.mark.django_db
def test_deleting_a_sender_a_workflow_sends_from_is_409(api_client, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    sender = VerifiedSender.objects.get(address=SENDER)
    refused = api_client.delete(f"/api/v1/verified-senders/{sender.pk}/")
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": (
            f"cannot delete {SENDER}: workflow 'Closed case survey' (id {workflow.pk}), "
            f"task 1, sends from {SENDER}; no other verified sender covers it, so every run "
            "would fail. Change the From address in the workflow, or first verify it as "
            "another sender (the address or its domain)"
        )
    }
    assert VerifiedSender.objects.filter(pk=sender.pk).exists()
    # Once its domain is verified, the address itself is no longer needed.
    make_sender("@example.com")
    assert api_client.delete(f"/api/v1/verified-senders/{sender.pk}/").status_code == 204
