"""Workflow pages and workflow reports: login, owner-only editing, search, run detail, retry."""

import html
import json
import re

import pytest

from surveys.models import SurveyStatus
from tests.conftest import fixture_bytes
from tests.distributions.builders import (
    distribute_task,
    make_distribution_workflow,
    make_sender,
    make_survey,
)
from tests.factories import event_path, make_mailing_list, make_user, make_workflow
from xmflows.models import Run, TaskRun, Workflow

pytestmark = pytest.mark.django_db(transaction=True)


def post_sample(client, workflow, name="salesforce/case_batch_3.xml"):
    response = client.post(
        event_path(workflow), fixture_bytes(name), content_type="text/xml; charset=utf-8"
    )
    assert response.status_code == 200
    return response


@pytest.mark.parametrize(
    "path",
    ["/workflows/", "/workflows/new/", "/reports/workflows/", "/reports/workflows/deliveries/"],
)
def test_pages_require_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_workflow_detail_shows_event_url_and_copy_button(client):
    owner = make_user(username="owner")
    workflow = make_workflow(owner=owner)
    client.force_login(owner)
    page = client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert workflow.event.url in page
    assert "Copy URL" in page
    assert "Edit definition" in page


def test_non_owner_sees_copy_not_edit_and_is_refused_on_the_server(client):
    owner = make_user(username="owner")
    other = make_user(username="other")
    workflow = make_workflow(owner=owner)
    client.force_login(other)
    page = client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert "Edit definition" not in page
    assert "Copy" in page
    assert client.get(f"/workflows/{workflow.pk}/edit/").status_code == 403
    refused = client.post(f"/workflows/{workflow.pk}/disable/")
    assert refused.status_code == 403
    assert "only the workflow's owner can edit it; copy it instead" in html.unescape(
        refused.content.decode()
    )
    workflow.refresh_from_db()
    assert workflow.enabled

    copied = client.post(f"/workflows/{workflow.pk}/copy/")
    assert copied.status_code == 302
    mine = Workflow.objects.get(owner=other)
    assert mine.event.token != workflow.event.token
    assert client.get(f"/workflows/{mine.pk}/edit/").status_code == 200


def test_definition_editor_shows_errors_next_to_the_field_and_saves_valid_json(client):
    owner = make_user(username="owner")
    workflow = make_workflow(owner=owner)
    client.force_login(owner)
    bad = client.post(
        f"/workflows/{workflow.pk}/edit/",
        {
            "definition": json.dumps(
                {"name": "x", "event": {"object": "Case"}, "tasks": [{"type": "nope"}]}
            )
        },
    )
    assert bad.status_code == 400
    assert "unknown task type" in bad.content.decode()
    # Each problem on a line of its own, named by its place in the definition.
    assert "<li><code>tasks[0].type</code>: " in bad.content.decode()
    not_json = client.post(f"/workflows/{workflow.pk}/edit/", {"definition": "{oops"})
    assert not_json.status_code == 400
    assert "<li><code>definition</code>: not valid JSON" in not_json.content.decode()

    good = {
        "name": "Renamed",
        "enabled": False,
        "event": {"type": "salesforce_outbound_message", "object": "Lead"},
        "tasks": [],
    }
    saved = client.post(f"/workflows/{workflow.pk}/edit/", {"definition": json.dumps(good)})
    assert saved.status_code == 302
    workflow.refresh_from_db()
    assert (workflow.name, workflow.enabled, workflow.event.object_name) == (
        "Renamed",
        False,
        "Lead",
    )


def test_new_workflow_page_creates_a_workflow_owned_by_the_user(client):
    user = make_user(username="creator")
    client.force_login(user)
    definition = {"name": "Mine", "event": {"object": "Case"}, "tasks": []}
    response = client.post("/workflows/new/", {"definition": json.dumps(definition)})
    assert response.status_code == 302
    assert Workflow.objects.get(name="Mine").owner == user


def test_reports_find_a_run_by_record_id_and_show_payload_and_reason(client):
    owner = make_user(username="owner")
    workflow = make_workflow(
        owner=owner,
        conditions={
            "match": "all",
            "rules": [{"field": "Status", "op": "equals", "value": "Open"}],
        },
    )
    post_sample(client, workflow)
    client.force_login(owner)
    page = client.get("/reports/workflows/", {"q": "5008a00002Ab12aAAB"}).content.decode()
    run = Run.objects.get(record_id="5008a00002Ab12aAAB")
    assert f"#{run.pk}" in page
    assert "Status equals" in page  # the reason it was skipped
    others = Run.objects.exclude(pk=run.pk)
    assert all(f"#{r.pk}<" not in page for r in others)

    detail = client.get(f"/reports/workflows/runs/{run.pk}/").content.decode()
    assert "ContactEmail" in detail and "siobhan.odonnell@example.org" in detail
    assert "Skipped" in detail


def test_reports_filter_by_status_and_paginate_by_keyset(client):
    owner = make_user(username="owner")
    workflow = make_workflow(owner=owner)
    post_sample(client, workflow)
    client.force_login(owner)
    from xmflows import selectors

    first = selectors.run_list(page_size=2)
    assert len(first.items) == 2 and first.next_before == first.items[-1].pk
    second = selectors.run_list(page_size=2, before=first.next_before)
    assert len(second.items) == 1 and second.next_before is None
    assert (
        client.get("/reports/workflows/", {"status": "failed"})
        .content.decode()
        .count('href="/reports/workflows/runs/')
        == 0
    )


def test_failed_run_can_be_retried_from_its_page(client):
    owner = make_user(username="owner")
    workflow = make_workflow(owner=owner)
    post_sample(client, workflow, "salesforce/case_closed.xml")
    run = Run.objects.get()
    Run.objects.filter(pk=run.pk).update(status="failed", reason="task 1 (x): boom")
    client.force_login(owner)
    assert "Retry failed tasks" in client.get(f"/reports/workflows/runs/{run.pk}/").content.decode()
    response = client.post(f"/reports/workflows/runs/{run.pk}/retry/")
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert not TaskRun.objects.filter(run=run, status="failed").exists()


def test_deliveries_tab_shows_rejections_with_reason(client):
    owner = make_user(username="owner")
    workflow = make_workflow(owner=owner, event={"object": "Lead"})
    client.post(
        event_path(workflow),
        fixture_bytes("salesforce/case_closed.xml"),
        content_type="text/xml; charset=utf-8",
    )
    client.force_login(owner)
    page = client.get("/reports/workflows/deliveries/", {"outcome": "rejected"}).content.decode()
    assert "wrong object type" in page


def test_deliveries_say_who_sent_a_test_and_which_workflow_is_gone(client):
    owner = make_user(username="owner", is_staff=True)
    kept = make_workflow(owner=owner, name="Kept")
    gone = make_workflow(owner=owner, name="Gone")
    client.force_login(owner)
    assert client.post(f"/workflows/{kept.pk}/test-event/").status_code == 302
    for workflow in (gone, gone):  # the second is refused once the workflow is disabled
        client.post(
            event_path(workflow),
            fixture_bytes("salesforce/case_closed.xml"),
            content_type="text/xml; charset=utf-8",
        )
        Workflow.objects.filter(pk=gone.pk).update(enabled=False)
    client.post("/events/salesforce/no-such-token/", b"<x/>", content_type="text/xml")
    gone.delete()
    rows = [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
        for row in re.findall(
            r"<tr>(.*?)</tr>",
            client.get("/reports/workflows/deliveries/").content.decode(),
            re.S,
        )
    ]
    test_row = next(row for row in rows if "Kept" in row)
    assert "event test by owner" in test_row  # not an empty From
    assert sum("a deleted workflow" in row for row in rows) == 2  # accepted and refused
    assert sum("unknown URL" in row for row in rows) == 1


@pytest.mark.django_db
def test_refusals_are_pages_of_the_site_that_say_why(client):
    owner = make_user(username="owner")
    other = make_user(username="other", is_staff=True, is_superuser=True)
    workflow = make_workflow(owner=owner)
    client.force_login(other)
    # The admin's delete of another's workflow: not a bare "403 Forbidden".
    refused = client.get(f"/admin/xmflows/workflow/{workflow.pk}/delete/")
    assert refused.status_code == 403
    page = html.unescape(refused.content.decode())
    assert "Not allowed" in page and "only the workflow's owner can edit it" in page
    assert "belongs to owner" in page
    # A page's refusal has the site's navigation and the reason.
    stranger = make_user(username="stranger", is_staff=False)
    client.force_login(stranger)
    outbox = client.get("/outbox/")
    assert outbox.status_code == 403
    assert "the outbox is for staff" in outbox.content.decode()
    assert 'href="/reports/workflows/"' in outbox.content.decode()
    # A survey that does not exist is not found, not forbidden.
    assert client.get("/reports/distributions/", {"survey": 999_999}).status_code == 404


@pytest.mark.django_db
def test_run_list_says_which_filters_it_could_not_read(client):
    client.force_login(make_user(username="reader"))
    page = html.unescape(
        client.get(
            "/reports/workflows/",
            {"status": "bogus", "since": "notadate", "until": "2026-13-45", "workflow": "x"},
        ).content.decode()
    )
    assert "status: unknown status 'bogus'" in page
    assert "since: 'notadate' is not a date (YYYY-MM-DD); not applied" in page
    assert "until: '2026-13-45' is not a date" in page
    assert "workflow: 'x' is not a workflow id" in page
    clean = client.get("/reports/workflows/", {"status": "failed"}).content.decode()
    assert "not applied" not in clean


def test_a_workflow_whose_directory_task_cannot_run_says_so_on_its_pages(client):
    mailing_list = make_mailing_list()
    task = {
        "type": "add_to_directory",
        "mode": "embedded_data",
        "mailing_list": mailing_list.pk,
        "contact": {"email": "${event://ContactEmail}"},
    }
    analyst = make_user(username="analyst", is_staff=False)
    theirs = make_workflow(owner=analyst, tasks=[task])
    staffs = make_workflow(owner=make_user(username="staff"), tasks=[task])
    client.force_login(analyst)
    notice = (
        "“XM Directory: Add to directory” will fail on every run: the workflow's owner analyst "
        "may not change the contact directory: only staff members can"
    )
    for path in (f"/workflows/{theirs.pk}/", f"/workflows/{theirs.pk}/edit/"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert notice in html.unescape(page.content.decode()), path
    assert "will fail on every run" not in client.get(f"/workflows/{staffs.pk}/").content.decode()
    # And the run says the same.
    with_runs = client.post(
        event_path(theirs), fixture_bytes("salesforce/case_closed.xml"), content_type="text/xml"
    )
    assert with_runs.status_code == 200
    run = Run.objects.get(workflow=theirs)
    assert run.status == "failed"
    assert "may not change the contact directory" in run.reason


def test_a_run_that_is_gone_says_why_on_its_page(client):
    user = make_user(username="owner")
    client.force_login(user)
    workflow = make_workflow(owner=user)
    client.post(event_path(workflow), fixture_bytes("salesforce/case_closed.xml"), "text/xml")
    run = Run.objects.get()
    workflow.delete()  # a distribution or CSV row may still name the run
    for path in (
        f"/reports/workflows/runs/{run.pk}/",
        f"/reports/workflows/runs/{run.pk}/dry-run/",
    ):
        page = client.get(path)
        assert page.status_code == 404
        text = html.unescape(page.content.decode())
        assert (
            f"Run {run.pk} does not exist (any more): deleting a workflow deletes its runs" in text
        )
        assert 'href="/workflows/"' in text  # the site's layout, not a bare page


def test_the_builder_says_what_will_misbehave_on_every_run(client):
    owner = make_user(username="owner")
    make_sender()
    survey = make_survey(owner=owner, name="Old survey", status=SurveyStatus.INACTIVE)
    task = distribute_task(survey=survey, mailing_list=make_mailing_list())
    task["message"]["subject"] = "Hi ${bogus://X}"
    task["message"]["body"] = "<p>Dear ${event://}, ${event://StageName</p>"
    task["contact"]["first_name"] = "${m://FirstName}"
    task["contact"]["last_name"] = "${l://SurveyURL} ${event://Last_Name__c}"
    workflow = make_workflow(
        owner=owner,
        tasks=[task],
        conditions={
            "match": "all",
            "rules": [
                {"field": "Amount", "op": "greater_than", "value": "ten thousand"},
                {"field": "Amount", "op": "less_than", "value": "5000"},
            ],
        },
    )
    client.force_login(owner)
    text = html.unescape(client.get(f"/workflows/{workflow.pk}/").content.decode())
    for notice in (
        "Conditions, rule 1: 'ten thousand' is neither a number nor a date (YYYY-MM-DD), "
        "so Amount is compared with it as text, alphabetically.",
        "Task 1, subject: ${bogus://X} has an unknown kind 'bogus' (event, m, e, tx or l); "
        "it comes out empty.",
        "Task 1, body: ${event://} names no field (${event://FieldName}); it comes out empty.",
        "Task 1, body: '${event://StageName</p>' is not closed: a placeholder ends with }; "
        "it is copied as text.",
        "Task 1: survey “Old survey” is not active: every run fails",
        "Task 1: the invitation holds no ${l://SurveyLink} or ${l://SurveyURL}",
        "Task 1, contact first name: ${m://FirstName} is always empty here: contact fields "
        "are filled from the event, before the contact exists (use ${event://…}).",
        "Task 1, contact last name: ${l://SurveyURL} is always empty here: contact fields "
        "are filled from the event, before a survey link exists (use ${event://…}).",
    ):
        assert notice in text, notice
    assert "rule 2:" not in text  # a number: compared as numbers
    # A sound workflow has none.
    fine = make_distribution_workflow(owner=owner)
    assert "Check before it runs" not in client.get(f"/workflows/{fine.pk}/").content.decode()
    # A sender withdrawn since the save (the save itself refuses an unverified one).
    from distributions.models import VerifiedSender

    VerifiedSender.objects.update(verified=False)
    text = html.unescape(client.get(f"/workflows/{workflow.pk}/").content.decode())
    sender = task["message"]["from_email"]
    assert f"Task 1: the sender {sender} is not a verified sender: every email fails" in text


def test_the_demo_and_a_disabled_workflow_say_what_that_means(client):
    from xmflows.demo import DEMO_WORKFLOW_NAME

    owner = make_user(username="owner")
    demo = make_workflow(owner=owner, name=DEMO_WORKFLOW_NAME)
    mine = make_workflow(owner=owner, name="Mine", enabled=False)
    client.force_login(owner)
    for path in (f"/workflows/{demo.pk}/", f"/workflows/{demo.pk}/edit/"):
        assert "puts its definition back at every start" in client.get(path).content.decode()
    page = client.get(f"/workflows/{mine.pk}/").content.decode()
    assert "puts its definition back" not in page
    assert "Salesforce retries each for up to 24 hours" in page
    assert "Salesforce retries" not in client.get(f"/workflows/{demo.pk}/").content.decode()
