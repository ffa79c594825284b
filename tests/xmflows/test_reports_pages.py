"""Reports: "why not sent?" answers, run rows and run detail links, and the
distribution reports (counts, rates, charts, CSV downloads, access)."""

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from distributions.models import Recipient, VerifiedSender
from distributions.reports import METRICS, distribution_report, rate, report_recipients
from surveys.models import SurveyStatus
from tests.conftest import using_postgres
from tests.factories import (
    make_contact,
    make_mailing_list,
    make_survey,
    make_user,
    make_workflow,
    post_soap,
)
from tests.soap_builders import build_outbound_message
from xmflows.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

SENDER = "surveys@example.com"


@pytest.fixture(autouse=True)
def outbox_backend(settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"


@pytest.fixture
def owner():
    return make_user(username="owner")


def case(number: int, **fields):
    values = {
        "Id": f"5008a00009Zz{number:04d}AAB",
        "CaseNumber": f"0000{number:04d}",
        "ContactEmail": f"person{number}@example.org",
        "First_Name__c": "Alex",
        "Last_Name__c": f"Person {number}",
        "IsClosed": "true",
    }
    values.update(fields)
    return build_outbound_message([{"id": f"04l8a00000Q{number:06d}AAR", "fields": values}])


def survey_workflow(owner, *, survey=None, mailing_list=None, **overrides):
    VerifiedSender.objects.get_or_create(address=SENDER)
    survey = survey or make_survey(owner=owner)
    mailing_list = mailing_list or make_mailing_list()
    task = {
        "type": "distribute_survey",
        "channel": "email",
        "survey": survey.pk,
        "mailing_list": mailing_list.pk,
        "contact": {
            "first_name": "${event://First_Name__c}",
            "last_name": "${event://Last_Name__c}",
            "email": "${event://ContactEmail}",
        },
        "embedded_data": {},
        "message": {
            "from_name": "Care",
            "from_email": SENDER,
            "reply_to": "",
            "subject": "Case ${event://CaseNumber}",
            "body": "<p>${l://SurveyLink?d=Go}</p>",
        },
        "send_delay_minutes": 0,
    }
    return make_workflow(owner=owner, tasks=[task], **overrides)


# --- Why not sent? ----------------------------------------------------------------------


def test_why_not_sent_answers_for_each_kind_of_reason(client, owner):
    mailing_list = make_mailing_list()
    make_contact(
        directory=mailing_list.directory,
        mailing_lists=[mailing_list],
        email="person2@example.org",
        email_opted_out=True,
    )
    workflow = survey_workflow(
        owner,
        mailing_list=mailing_list,
        conditions={
            "match": "all",
            "rules": [{"field": "IsClosed", "op": "equals", "value": "true"}],
        },
    )
    post_soap(client, workflow, case(1))  # sent
    post_soap(client, workflow, case(2))  # opted out
    post_soap(client, workflow, case(3, IsClosed="false"))  # condition false
    inactive = survey_workflow(owner, survey=make_survey(owner=owner, status=SurveyStatus.INACTIVE))
    post_soap(client, inactive, case(4))  # task error
    client.force_login(owner)

    def answer(query: str) -> str:
        return client.get("/reports/workflows/why/", {"q": query}).content.decode()

    page = answer("person1@example.org")
    assert "Sent" in page and "sent to person1@example.org" in page
    page = answer("PERSON2@example.org")  # any case
    assert "Not sent to person2@example.org: Opted Out: contact opted out of email" in page
    assert "/surveys/" in page and "?distribution=" in page  # the line's distribution page
    # Skipped on its conditions, it saved no contact, yet it is found by email too.
    page = answer("person3@example.org")
    assert "Not sent: the workflow&#x27;s conditions were not met" in page
    assert "IsClosed equals" in page
    page = answer("5008a00009Zz0004AAB")
    assert "Not sent: task 1 (XM Directory: Distribute survey) failed: survey is not active" in page
    # The 15-character id an admin copies from Salesforce finds the run of its
    # 18-character form (what Salesforce sends), and the other way round.
    post_soap(client, inactive, case(5, Id="5008a00009Zz05aAAB"))
    assert "survey is not active" in answer("5008a00009Zz05a")
    assert "survey is not active" in answer("5008a00009Zz05aAAB")
    assert "No run of 5008a00009Zz05b." in answer("5008a00009Zz05b")
    assert "survey is not active" in answer("person4@example.org")
    page = answer("5008a00009Zz9999AAB")
    assert "No run of 5008a00009Zz9999AAB." in page

    # Sent, then unsubscribed with the invitation's link: still "Sent", and what since.
    line = Recipient.objects.get(email="person1@example.org")
    assert client.post(f"/o/{line.link.token}/").status_code == 200
    assert Recipient.objects.get(pk=line.pk).status == "opted_out"
    page = html.unescape(answer("person1@example.org"))
    assert "Not sent" not in page
    assert re.search(r"sent to person1@example.org on [0-9-]+ [0-9:]+ UTC; now Opted Out", page)


def test_why_not_sent_lists_lines_whose_run_was_deleted_with_its_workflow(client, owner):
    workflow = survey_workflow(owner)
    post_soap(client, workflow, case(11))
    line = Recipient.objects.get()
    assert line.status == "sent"
    workflow.delete()  # its runs go with it; the distribution line stays
    assert not Run.objects.exists()
    client.force_login(owner)
    page = " ".join(
        html.unescape(
            re.sub(
                r"<[^>]+>",
                " ",
                client.get("/reports/workflows/why/", {"q": line.email.upper()}).content.decode(),
            )
        ).split()
    )
    assert f"No run of {line.email.upper()}." in page
    assert "Sent by runs that no longer exist" in page
    assert f"#{line.pk} {line.survey.name} Email Sent" in page
    assert f"#{line.workflow_run_id}" in page
    # Someone who may not see the survey is told nothing about its lines.
    stranger = make_user(username="stranger")
    client.force_login(stranger)
    hidden = client.get("/reports/workflows/why/", {"q": line.email}).content.decode()
    assert "Sent by runs that no longer exist" not in hidden


def test_why_not_sent_lists_refused_messages_that_mention_the_record(client, owner):
    workflow = make_workflow(owner=owner, event={"object": "Lead"})
    post_soap(client, workflow, case(5))  # a Case to a Lead event: refused
    client.force_login(owner)
    page = client.get("/reports/workflows/why/", {"q": "5008a00009Zz0005AAB"}).content.decode()
    assert "Refused messages that mention" in page
    assert "wrong object type" in page


def test_why_not_sent_shows_each_redelivery_of_the_notification(client, owner):
    from xmflows.models import Delivery

    workflow = survey_workflow(owner)
    for _ in range(3):  # Salesforce retried twice
        assert post_soap(client, workflow, case(8)).status_code == 200
    assert Run.objects.count() == 1
    _, second, third = Delivery.objects.order_by("id")
    assert (second.duplicate_count, second.duplicate_ids) == (1, ["04l8a00000Q000008AAR"])
    client.force_login(owner)
    page = html.unescape(
        re.sub(
            r"<[^>]+>",
            "",
            client.get("/reports/workflows/why/", {"q": "5008a00009Zz0008AAB"}).content.decode(),
        )
    )
    assert f"Salesforce sent this notification again 2 times: delivery #{second.pk}" in page
    assert f"delivery #{third.pk}" in page and "acknowledged, not run again." in page
    # A replay of the run shares its notification, but Salesforce never sent the replay.
    from xmflows.services import run_replay

    run_replay(run=Run.objects.get())
    page = client.get("/reports/workflows/why/", {"q": "5008a00009Zz0008AAB"}).content.decode()
    assert page.count("Salesforce sent this notification again") == 1
    deliveries = client.get("/reports/workflows/deliveries/").content.decode()
    assert "(04l8a00000Q000008AAR)" in deliveries


def test_run_rows_show_task_errors_and_line_statuses(client, owner):
    mailing_list = make_mailing_list()
    make_contact(
        directory=mailing_list.directory, email="person2@example.org", email_opted_out=True
    )
    workflow = survey_workflow(owner, mailing_list=mailing_list)
    post_soap(client, workflow, case(2))
    client.force_login(owner)
    page = client.get("/reports/workflows/", {"q": "person2@example.org"}).content.decode()
    assert "not sent to person2@example.org: Opted Out" in page
    assert "Why was person2@example.org (not) sent a survey?" in page


def test_run_detail_links_to_the_contact_and_each_lines_distribution(client, owner):
    workflow = survey_workflow(owner)
    post_soap(client, workflow, case(6))
    run = Run.objects.get()
    line = Recipient.objects.get()
    client.force_login(owner)
    page = client.get(f"/reports/workflows/runs/{run.pk}/").content.decode()
    assert f'href="/admin/contacts/contact/{line.contact_id}/change/"' in page
    assert (
        f'href="/surveys/{line.survey_id}/distributions/?distribution={line.distribution_id}"'
        in (page)
    )
    assert f'href="/reports/workflows/runs/{run.pk}/dry-run/"' in page
    assert "Sent" in page


def test_run_detail_lists_the_fields_in_the_order_salesforce_sent_them(client, owner):
    workflow = survey_workflow(owner)
    # Neither alphabetical nor PostgreSQL jsonb's (shorter names first) order.
    post_soap(client, workflow, case(7, Zeta__c="z", Priority="High", A__c="a"))
    run = Run.objects.get()
    client.force_login(owner)
    sent = ["Id", "CaseNumber", "ContactEmail", "First_Name__c", "Last_Name__c", "IsClosed"]
    sent += ["Zeta__c", "Priority", "A__c"]
    page = client.get(f"/reports/workflows/runs/{run.pk}/").content.decode()
    table = re.search(r'<table id="payload">.*?</table>', page, re.S).group(0)
    assert re.findall(r"<tr><td>([^<]+)</td>", table) == sent
    # Task outputs read as JSON under the task's name, not as a Python repr.
    tasks = html.unescape(re.search(r'<table id="tasks">.*?</table>', page, re.S).group(0))
    assert "XM Directory: Distribute survey" in tasks
    assert '"recipient_id": ' in tasks and "'recipient_id'" not in tasks


def test_runs_api_email_filter_ignores_case(api_client, client, admin_user):
    workflow = survey_workflow(admin_user)
    post_soap(client, workflow, case(7))
    found = api_client.get("/api/v1/runs/", {"email": "Person7@Example.org"}).json()
    assert found["count"] == 1
    assert api_client.get("/api/v1/runs/", {"email": "person7"}).json()["count"] == 0


# --- Distribution reports -----------------------------------------------------------------


def lines_with_outcomes(client, owner):
    """Five lines of one survey: finished, opened, hard bounce, failed, and opted out."""
    mailing_list = make_mailing_list()
    make_contact(
        directory=mailing_list.directory, email="person15@example.org", email_opted_out=True
    )
    survey = make_survey(owner=owner)
    workflow = survey_workflow(owner, survey=survey, mailing_list=mailing_list)
    for number in (11, 12, 13, 14, 15):
        post_soap(client, workflow, case(number))
    now = timezone.now()
    lines = {line.email: line for line in Recipient.objects.all()}
    assert len(lines) == 5
    Recipient.objects.filter(pk=lines["person11@example.org"].pk).update(
        status="finished", delivered_at=now, opened_at=now, started_at=now, finished_at=now
    )
    Recipient.objects.filter(pk=lines["person12@example.org"].pk).update(
        status="opened", delivered_at=now, opened_at=now
    )
    Recipient.objects.filter(pk=lines["person13@example.org"].pk).update(status="hard_bounce")
    Recipient.objects.filter(pk=lines["person14@example.org"].pk).update(
        status="failed", sent_at=None
    )
    return survey, workflow


def test_distribution_report_counts_and_rates(client, owner):
    survey, workflow = lines_with_outcomes(client, owner)
    today = timezone.now().date()
    report = distribution_report(
        recipients=report_recipients(user=owner, survey_id=survey.pk),
        since=today - timedelta(days=6),
        until=today,
    )
    assert len(report.days) == 7 and report.days[-1] == today
    totals = report.totals
    assert totals["lines"] == 5
    assert (totals["sent"], totals["delivered"], totals["opened"]) == (3, 2, 2)
    assert (totals["started"], totals["finished"], totals["bounced"]) == (1, 1, 1)
    assert (totals["failed"], totals["opted_out"], totals["skipped"]) == (1, 1, 0)
    assert totals["waiting"] == 0
    by_key = {metric.key: metric for metric in METRICS}
    assert rate(totals, by_key["sent"]) == 60.0  # of lines
    assert rate(totals, by_key["finished"]) == 33.3  # of sent
    assert report.by_day[today]["lines"] == 5 and report.by_day[report.days[0]]["lines"] == 0
    assert report.by_channel["email"]["lines"] == 5
    assert report.lines_by_day_and_channel["email"][-1] == 5

    # Per workflow: the same lines, through the distributions it created.
    by_workflow = distribution_report(
        recipients=report_recipients(user=owner, workflow_id=workflow.pk), since=today, until=today
    )
    assert by_workflow.totals == totals
    other = distribution_report(
        recipients=report_recipients(user=owner, workflow_id=workflow.pk + 1000),
        since=today,
        until=today,
    )
    assert other.totals["lines"] == 0

    # A line planned for later is counted as not sent yet, not left out of every column.
    Recipient.objects.filter(status="failed").update(status="scheduled")
    later = distribution_report(
        recipients=report_recipients(user=owner, survey_id=survey.pk), since=today, until=today
    )
    assert (later.totals["waiting"], later.totals["failed"]) == (1, 0)
    assert rate(later.totals, by_key["waiting"]) == 20.0  # of lines


def test_distribution_report_page_draws_charts_with_csv_downloads(client, owner, settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"
    survey, workflow = lines_with_outcomes(client, owner)
    client.force_login(owner)
    page = client.get("/reports/distributions/", {"survey": survey.pk}).content.decode()
    assert page.count("<svg") == 3
    assert "Lines per day by status" in page and "Lines per day by channel" in page
    link = re.search(r'href="(/surveys/\d+/distribution-history\.csv\?since=[^"]+)"', page)
    download = client.get(html.unescape(link.group(1)))
    rows = b"".join(download.streaming_content).decode().splitlines()
    assert len(rows) == 1 + 5  # the header and this period's five lines
    assert "60.0% of lines" in page
    # Which figures the backend in use cannot have.
    assert "the outbox backend in use here reports nothing" in page
    by_workflow = client.get("/reports/distributions/", {"workflow": workflow.pk}).content.decode()
    assert "/history.csv" in by_workflow and "<svg" in by_workflow
    empty = client.get("/reports/distributions/", {"since": "2001-01-01", "until": "2001-01-31"})
    assert "No recipient lines in this period." in empty.content.decode()
    # Linked from the survey's Distributions tab and from the workflow page.
    tab = client.get(f"/surveys/{survey.pk}/distributions/").content.decode()
    assert f'href="/reports/distributions/?survey={survey.pk}"' in tab
    detail = client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert f"/reports/distributions/?workflow={workflow.pk}" in detail


def test_distribution_reports_show_only_surveys_the_user_may_see(client, owner):
    survey, _ = lines_with_outcomes(client, owner)
    stranger = make_user(username="stranger", is_staff=False)
    client.force_login(stranger)
    assert client.get("/reports/distributions/", {"survey": survey.pk}).status_code == 403
    page = client.get("/reports/distributions/").content.decode()
    assert "No recipient lines in this period." in page
    client.logout()
    assert client.get("/reports/distributions/").status_code == 302


# --- Searches stay index lookups (bench/reports.py measures them at a million runs) -----


@pytest.mark.skipif(using_postgres(), reason="reads SQLite's query plan")
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"search": "Jonas.Berg@Example.org"}, "run_email_lower"),
        ({"search": "5008a00002Ab01aAAB"}, "run_record_id"),
        ({"search": "+1 415 555 0100"}, "recipient_phone"),
        ({"search": "+1 415 555 0100"}, "run_phone"),
        ({"workflow_id": 1, "status": "failed"}, "run_workflow_status_recent"),
    ],
)
def test_report_searches_use_their_index(filters, index):
    from django.db import connection

    from xmflows.selectors import runs_matching

    queryset = Run.objects.all()
    if "search" in filters:
        queryset = runs_matching(queryset, filters["search"])
    else:
        queryset = queryset.filter(workflow_id=filters["workflow_id"], status=filters["status"])
    sql, params = queryset.order_by("-id")[:51].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert index in plan, plan


def test_date_filters_keep_exactly_the_runs_of_the_period(client, owner):
    workflow = make_workflow(owner=owner)
    for number in range(1, 5):
        post_soap(client, workflow, case(number))
    runs = list(Run.objects.order_by("id"))
    now = timezone.now()
    days = [now - timedelta(days=40), now - timedelta(days=20), now - timedelta(days=10), now]
    for run, moment in zip(runs, days, strict=True):
        Run.objects.filter(pk=run.pk).update(created_at=moment)
    from xmflows.selectors import run_list

    def found(since, until):
        page = run_list(
            since=since.date() if since else None, until=until.date() if until else None
        )
        return [run.pk for run in page.items]

    assert found(days[1], days[2]) == [runs[2].pk, runs[1].pk]
    assert found(days[3], None) == [runs[3].pk]
    assert found(None, days[0]) == [runs[0].pk]
    assert found(now + timedelta(days=2), None) == []
    assert found(None, now - timedelta(days=100)) == []
    client.force_login(owner)
    page = client.get(
        "/reports/workflows/",
        {"since": days[1].date().isoformat(), "until": days[2].date().isoformat()},
    ).content.decode()
    assert f"#{runs[1].pk}<" in page and f"#{runs[0].pk}<" not in page


def test_distribution_report_names_filters_it_cannot_read(client, owner):
    client.force_login(owner)
    page = html.unescape(
        client.get(
            "/reports/distributions/",
            {"since": "2026-02-30", "until": "yesterday", "channel": "fax", "workflow": "12345"},
        ).content.decode()
    )
    assert "since: not a valid date (YYYY-MM-DD): '2026-02-30'" in page
    assert "until: not a valid date (YYYY-MM-DD): 'yesterday'" in page
    assert "channel: unknown channel 'fax' (one of email, sms, sms_survey); not applied" in page
    assert "workflow: '12345' is not a workflow's id; not applied" in page
