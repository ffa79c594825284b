"""What an admin does in the browser: build "closed case → survey email" from scratch with
the {a} menu, copy the event URL, post a sample to it, read the run; find why a send
was skipped; copy someone else's workflow; download a CSV; dry run and replay; the
event test button and the message preview."""

from __future__ import annotations

import csv
import io
import re
import urllib.request

import pytest
from django.contrib.auth import get_user_model

from distributions.models import OutboxMessage, Recipient, VerifiedSender
from surveys.models import SurveyCollaborator
from tests.browser.conftest import PASSWORD, log_in, screenshot
from tests.conftest import fixture_bytes
from tests.factories import make_contact, make_mailing_list, make_survey, make_workflow
from xmflows.demo import DEMO_CONTACT_MAPPING, DEMO_EMAIL_MESSAGE
from xmflows.models import Run, RunTrigger, Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SENDER = "surveys@example.com"
RECORD_ID = "5008a00002Ab01aAAB"  # tests/fixtures/salesforce/case_closed.xml


def make_admin(username: str = "admin"):
    return get_user_model().objects.create_superuser(username, f"{username}@example.com", PASSWORD)


@pytest.fixture
def demo_data(site):
    VerifiedSender.objects.get_or_create(address=SENDER)
    admin = make_admin()
    mailing_list = make_mailing_list(name="Customers")
    survey = make_survey(owner=admin, name="Customer satisfaction")
    return {"admin": admin, "mailing_list": mailing_list, "survey": survey}


def demo_workflow(data, **overrides) -> Workflow:
    task = {
        "type": "distribute_survey",
        "channel": "email",
        "survey": data["survey"].pk,
        "mailing_list": data["mailing_list"].pk,
        "contact": dict(DEMO_CONTACT_MAPPING),
        "embedded_data": {"CaseNumber": "${event://CaseNumber}"},
        "message": dict(DEMO_EMAIL_MESSAGE),
        "send_delay_minutes": 0,
    }
    overrides.setdefault("owner", data["admin"])
    return make_workflow(tasks=[task], **overrides)


def post_sample(url: str, name: str = "salesforce/case_closed.xml") -> bytes:
    """POST a Salesforce message to an event URL, over HTTP, as Salesforce does."""
    assert url.startswith("http://"), url
    request = urllib.request.Request(  # noqa: S310 (an http URL of the live server)
        url,
        data=fixture_bytes(name),
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert response.status == 200
        return response.read()


def insert_placeholder(page, field, placeholder: str, search: str) -> None:
    """Open the {a} menu beside `field`, search, and pick `placeholder`."""
    field_id = field.get_attribute("id")
    page.click(f"button.dyn[data-target='{field_id}']")
    menu = page.locator("#dyn-menu")
    menu.wait_for(state="visible")
    page.fill("#dyn-menu-filter", search)
    menu.locator(f"button.entry[data-placeholder='{placeholder}']").click()
    assert menu.is_hidden()


def test_build_the_demo_workflow_from_scratch_and_follow_a_message(page, site, demo_data):
    log_in(page, "admin")
    page.click("text=New workflow")
    page.wait_for_url("**/workflows/new/")
    screenshot(page, "01-builder-empty")

    page.fill("[name=name]", "Closed case → survey email")
    page.fill("[name='event.object']", "Case")
    page.fill("[name='event.fields']", "First_Name__c, Last_Name__c")
    page.click("[data-action=add-rule]")
    rule = page.locator("tr.rule").last
    rule.locator("input[name$='.field']").fill("IsClosed")
    rule.locator("select[name$='.op']").select_option("equals")
    rule.locator("input[name$='.value']").fill("true")

    page.click("[data-action=add-task][data-task-type=distribute_survey]")
    card = page.locator("article.task").first
    assert card.locator(".task-number").inner_text() == "1"
    card.locator("select[name$='.survey']").select_option(str(demo_data["survey"].pk))
    card.locator("select[name$='.mailing_list']").select_option(str(demo_data["mailing_list"].pk))

    def contact(name):
        return card.locator(f"input[name$='.contact.{name}']")

    insert_placeholder(page, contact("first_name"), "${event://First_Name__c}", "First_Name")
    insert_placeholder(page, contact("last_name"), "${event://Last_Name__c}", "Last_Name")
    insert_placeholder(page, contact("email"), "${event://ContactEmail}", "ContactEmail")
    assert contact("email").input_value() == "${event://ContactEmail}"

    row = card.locator("tr.embedded-row").first
    row.locator("input[name$='.name']").fill("CaseNumber")
    insert_placeholder(page, row.locator("input[name$='.value']"), "${event://CaseNumber}", "CaseN")

    card.locator("input[name$='.message.from_name']").fill("Customer Care")
    card.locator("input[name$='.message.from_email']").fill(SENDER)
    subject = card.locator("input[name$='.message.subject']")
    subject.fill("How did we do, ")
    insert_placeholder(page, subject, "${m://FirstName}", "FirstName")
    subject.press("End")
    subject.type("?")
    assert subject.input_value() == "How did we do, ${m://FirstName}?"
    body = card.locator("textarea[name$='.message.body']")
    body.fill("<p>Your case ${e://Field/CaseNumber} is closed.</p>\n")
    insert_placeholder(page, body, "${l://SurveyLink?d=Take%20the%20survey}", "Survey link")
    assert body.input_value().endswith("${l://SurveyLink?d=Take%20the%20survey}")
    assert card.locator("textarea[name$='.message.text']").is_hidden()  # SMS only

    # The required marks follow the channel: a text goes to the phone.
    def starred(name):
        field_id = contact(name).get_attribute("id")
        return card.locator(f"label[for='{field_id}'] abbr.required").count() == 1

    assert starred("email") and not starred("phone")
    channel = card.locator("select[name$='.channel']")
    channel.select_option("sms")
    assert starred("phone") and not starred("email")
    channel.select_option("email")
    assert starred("email") and not starred("phone")
    # Only the star comes and goes, never the label's own words.
    for name, label in (("email", "Email *"), ("phone", "Phone")):
        field_id = contact(name).get_attribute("id")
        assert card.locator(f"label[for='{field_id}']").inner_text().strip() == label

    # A reminder: its inputs show once its box is ticked, by the card's channel.
    reminder = card.locator("fieldset[data-follow-up=reminder]")
    after_days = reminder.locator("input[name$='.reminder.after_days']")
    assert after_days.is_hidden()
    reminder.locator("legend input[type=checkbox]").check()
    after_days.fill("3")
    reminder.locator("input[name$='.reminder.subject']").fill("Still time, ${m://FirstName}")
    reminder.locator("textarea[name$='.reminder.body']").fill("<p>${l://SurveyLink}</p>")
    assert reminder.locator("textarea[name$='.reminder.text']").is_hidden()
    assert card.locator("fieldset[data-follow-up=thank_you] textarea").first.is_hidden()
    screenshot(page, "02-builder-filled")

    # An add-to-directory card names its rows by the mode chosen (then is removed).
    page.click("[data-action=add-task][data-task-type=add_to_directory]")
    second = page.locator("article.task").nth(1)
    saving = second.locator("[data-mode-text=embedded_data]")
    looking_up = second.locator("[data-mode-text=transaction]")
    assert saving.count() == 6  # the heading, the table's, the button's, three asterisks
    assert all(saving.nth(i).is_visible() for i in range(saving.count()))
    assert all(looking_up.nth(i).is_hidden() for i in range(looking_up.count()))
    second.locator("select[name$='.mode']").select_option("transaction")
    assert all(looking_up.nth(i).is_visible() for i in range(looking_up.count()))
    assert all(saving.nth(i).is_hidden() for i in range(saving.count()))
    assert second.get_by_role("button", name="+ Add transaction field").is_visible()
    second.locator("[data-action=remove-task]").click()
    assert page.locator("article.task").count() == 1

    page.click("#save-workflow")
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))  # not /workflows/new/
    assert "Workflow saved." in page.content()
    workflow = Workflow.objects.get(name="Closed case → survey email")
    config = workflow.tasks.get().config
    assert config["contact"]["first_name"] == "${event://First_Name__c}"
    assert config["reminder"]["after_days"] == 3 and not config["thank_you"]

    page.click("#copy-url")
    page.wait_for_selector("#copy-status:has-text('Copied')")
    event_url = page.evaluate("navigator.clipboard.readText()")
    assert event_url == workflow.event.url and event_url.startswith(site)
    screenshot(page, "03-workflow-detail")

    ack = post_sample(event_url)
    assert b"<Ack>true</Ack>" in ack
    assert OutboxMessage.objects.get().subject == "How did we do, Jonas?"

    page.click("header.site >> text=Reports")
    page.fill("input[name=q]", RECORD_ID)
    page.click("form.filters button[type=submit]")
    run = Run.objects.get()
    page.click(f"a[href='/reports/workflows/runs/{run.pk}/']")
    payload = page.locator("#payload")
    assert "jonas.berg@example.org" in payload.inner_text()
    assert "First_Name__c" in payload.inner_text()
    tasks = page.locator("#tasks").inner_text()
    assert "Succeeded" in tasks and "XM Directory: Distribute survey" in tasks
    # The full output is JSON, folded away under the readable summary.
    assert '"to": "jonas.berg@example.org"' in page.locator("#tasks").text_content()
    assert "Sent" in page.locator("#recipients").inner_text()
    assert "Sent" in page.locator("#answer .headline").inner_text()
    screenshot(page, "04-run-detail")


def test_find_why_a_send_was_skipped(page, demo_data):
    directory = demo_data["mailing_list"].directory
    make_contact(directory=directory, email="jonas.berg@example.org", email_opted_out=True)
    workflow = demo_workflow(demo_data)
    post_sample(workflow.event.url)
    log_in(page, "admin")
    page.click("header.site >> text=Why not sent?")
    page.fill("input[name=q]", "Jonas.Berg@example.org")
    page.click("text=Find the answer")
    answer = page.locator("section.answer").first
    assert "Opted Out" in answer.inner_text()
    assert "contact opted out of email" in answer.inner_text()
    screenshot(page, "05-why-not-sent")
    answer.locator("a", has_text="line #").click()
    page.wait_for_url("**/distributions/?distribution=*")
    assert "Opted Out" in page.locator("table").last.inner_text()
    screenshot(page, "06-survey-distributions")


def test_copy_someone_elses_workflow(page, demo_data):
    colleague = make_admin("colleague")
    theirs = demo_workflow(demo_data, owner=colleague, name="Colleague's case survey")
    make_admin("me")
    log_in(page, "me")
    page.click("text=Others' (read-only, copyable)")
    page.click("text=Colleague's case survey")
    assert page.locator("fieldset.builder [name=name]").is_disabled()
    assert page.locator("#edit-workflow").count() == 0
    screenshot(page, "07-someone-elses-workflow")
    page.click("#copy-workflow")
    page.wait_for_selector("text=Copied. This copy is yours")
    mine = Workflow.objects.get(owner__username="me")
    assert page.url.endswith(f"/workflows/{mine.pk}/")
    assert page.locator("#event-url").input_value() == mine.event.url != theirs.event.url
    page.click("#edit-workflow")
    page.fill("[name=name]", "My case survey")
    page.click("#save-workflow")
    page.wait_for_selector("text=Workflow saved.")
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.name, theirs.name) == ("My case survey", "Colleague's case survey")


def test_download_a_distribution_history_csv(page, demo_data):
    workflow = demo_workflow(demo_data)
    post_sample(workflow.event.url)
    survey = demo_data["survey"]
    log_in(page, "admin")
    page.goto(f"/surveys/{survey.pk}/distributions/")
    page.click("#survey-report-link")
    page.wait_for_selector("svg.chart")
    assert page.locator("svg.chart").count() == 3
    screenshot(page, "08-distribution-report")
    with page.expect_download() as download_info:
        page.click("#download-survey-csv")
    download = download_info.value
    assert download.suggested_filename == f"survey-{survey.pk}-distribution-history.csv"
    content = open(download.path(), encoding="utf-8").read()  # noqa: SIM115
    assert content.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(content.removeprefix("\ufeff"))))
    assert len(rows) == 2, content
    assert rows[0][:3] == ["Distribution ID", "Contact ID", "First Name"]
    assert rows[1][4] == "jonas.berg@example.org" and rows[1][8] == "Sent"
    assert rows[1][18] == RECORD_ID


def test_an_analyst_signs_in_and_downloads_the_history_csv(page, demo_data):
    """A user who is not staff: the sign-in page any page leads to, the reports, the
    CSV of a survey shared with them, no event URL of the admin's workflow, sign out."""
    workflow = demo_workflow(demo_data)
    post_sample(workflow.event.url)
    survey = demo_data["survey"]
    analyst = get_user_model().objects.create_user("analyst", "analyst@example.com", PASSWORD)
    SurveyCollaborator.objects.create(survey=survey, user=analyst, can_view=True)
    page.goto(f"/surveys/{survey.pk}/distributions/")
    assert "/accounts/login/?next=" in page.url
    page.fill("#id_username", "analyst")
    page.fill("#id_password", PASSWORD)
    screenshot(page, "11-sign-in")
    page.click("#sign-in")
    page.wait_for_url(f"**/surveys/{survey.pk}/distributions/")
    assert page.locator("header.site a[href='/admin/']").count() == 0
    page.click("#survey-report-link")
    page.wait_for_selector("svg.chart")
    with page.expect_download() as download_info:
        page.click("#download-survey-csv")
    content = open(download_info.value.path(), encoding="utf-8").read()  # noqa: SIM115
    rows = list(csv.reader(io.StringIO(content.removeprefix("\ufeff"))))
    assert rows[1][4] == "jonas.berg@example.org" and rows[1][8] == "Sent"
    page.goto(f"/workflows/{workflow.pk}/")
    assert page.locator("#event-url").count() == 0
    assert page.locator("#event-url-hidden").is_visible()
    assert workflow.event.token not in page.content()
    screenshot(page, "12-analyst-workflow-page")
    page.click("#sign-out")
    page.wait_for_url("**/accounts/login/")
    page.goto("/reports/workflows/")
    assert "/accounts/login/?next=" in page.url


def test_a_rule_that_takes_no_value_disables_its_value_box(page, demo_data):
    log_in(page, "admin")
    page.goto("/workflows/new/")
    page.click("[data-action=add-rule]")
    row = page.locator("tr.rule").last
    value = row.locator("input[data-role=rule-value]")
    assert value.is_enabled()
    row.locator("select[data-role=rule-op]").select_option("is_empty")
    assert value.is_disabled() and value.get_attribute("placeholder") == "(no value)"
    row.locator("select[data-role=rule-op]").select_option("greater_than")
    assert value.is_enabled()


def new_workflow_with_a_distribution_task(page) -> None:
    """The builder, signed in as the admin, with a Case event and one Distribute survey task."""
    log_in(page, "admin")
    page.goto("/workflows/new/")
    page.fill("[name='event.object']", "Case")
    page.fill("[name='event.fields']", "CaseNumber, ContactEmail")
    page.click("[data-action=add-task][data-task-type=distribute_survey]")


def test_the_dynamic_text_menu_works_from_the_keyboard(page, demo_data):
    new_workflow_with_a_distribution_task(page)
    opener = page.locator("article.task button.dyn").first
    field_id = opener.get_attribute("data-target")
    assert opener.get_attribute("aria-expanded") == "false"
    opener.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#dyn-menu:not([hidden]) button.entry")
    assert opener.get_attribute("aria-expanded") == "true"
    assert page.evaluate("document.activeElement.id") == "dyn-menu-filter"
    page.keyboard.press("ArrowDown")  # the first entry
    first = page.evaluate("document.activeElement.dataset.placeholder")
    page.keyboard.press("ArrowDown")
    second = page.evaluate("document.activeElement.dataset.placeholder")
    assert first and second and first != second
    page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement.dataset.placeholder") == first
    page.keyboard.press("End")
    page.keyboard.press("ArrowDown")  # wraps round to the first
    assert page.evaluate("document.activeElement.dataset.placeholder") == first
    page.keyboard.press("Enter")
    assert page.locator("#dyn-menu").is_hidden()
    assert first in page.locator(f"#{field_id}").input_value()
    assert opener.get_attribute("aria-expanded") == "false"
    # Escape goes back to the field; Tab out of the menu closes it.
    opener.click()
    page.wait_for_selector("#dyn-menu:not([hidden])")
    page.keyboard.press("Escape")
    assert page.locator("#dyn-menu").is_hidden()
    assert page.evaluate("document.activeElement.id") == field_id
    opener.click()
    page.wait_for_selector("#dyn-menu:not([hidden]) button.entry")
    page.keyboard.press("Shift+Tab")
    assert page.locator("#dyn-menu").is_hidden()


def test_the_menu_of_a_contact_field_offers_only_event_fields(page, demo_data):
    # A contact field is rendered before the contact exists and has no survey link:
    # ${m://…} and ${l://…} would only ever render empty there.
    new_workflow_with_a_distribution_task(page)
    task = page.locator("article.task").first

    def offered(button) -> list[str]:
        button.click()
        page.wait_for_selector("#dyn-menu:not([hidden]) button.entry")
        placeholders = page.locator("#dyn-menu button.entry").evaluate_all(
            "entries => entries.map(e => e.dataset.placeholder)"
        )
        page.keyboard.press("Escape")
        return placeholders

    contact_field = task.locator(".mapping button.dyn").first
    in_contact = offered(contact_field)
    assert "${event://ContactEmail}" in in_contact
    assert all(p.startswith("${event://") for p in in_contact), in_contact
    body = task.locator(".message-fields textarea").first
    in_body = offered(task.locator(f"button.dyn[data-target='{body.get_attribute('id')}']"))
    assert "${m://FirstName}" in in_body and "${l://SurveyURL}" in in_body


def test_without_javascript_every_channel_field_of_a_task_is_shown(chromium, site, demo_data):
    workflow = demo_workflow(demo_data)  # an email task: its SMS text is hidden with JS
    context = chromium.new_context(base_url=site, java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, "admin")
        page.goto(f"/workflows/{workflow.pk}/edit/")
        text = page.locator("textarea[name$='.message.text']")
        assert text.is_visible()  # a changed channel's field can be filled without JS
        assert page.locator("input[name$='.message.subject']").is_visible()
    finally:
        context.close()


def test_dry_run_then_replay_for_real(page, demo_data):
    workflow = demo_workflow(demo_data)
    post_sample(workflow.event.url)
    run = Run.objects.get()
    log_in(page, "admin")
    page.goto(f"/reports/workflows/runs/{run.pk}/")
    page.click("#dry-run")
    page.wait_for_selector("#conditions-result")
    assert "Met" in page.locator("#conditions-result").inner_text()
    assert page.locator("#dry-run-subject-0").inner_text() == "How did we do, Jonas?"
    # Same message, same address, within 12 hours: the dry run says a replay would skip.
    assert "would record the line as Skipped" in page.content()
    assert (Run.objects.count(), OutboxMessage.objects.count(), Recipient.objects.count()) == (
        1,
        1,
        1,
    )
    screenshot(page, "09-dry-run")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#replay")
    page.wait_for_selector("text=Replay of run")
    replay = Run.objects.exclude(pk=run.pk).get()
    assert replay.trigger == RunTrigger.REPLAY
    assert page.url.endswith(f"/reports/workflows/runs/{replay.pk}/")
    assert "the same message was sent to this address within 12 hours" in page.content()
    screenshot(page, "10-replay-run")


def test_event_test_button_and_message_preview(page, demo_data):
    workflow = demo_workflow(demo_data)
    log_in(page, "admin")
    page.goto(f"/workflows/{workflow.pk}/")
    page.click("#test-event")
    page.wait_for_url("**/reports/workflows/runs/*/")
    run = Run.objects.get()
    assert run.trigger == RunTrigger.TEST
    assert "test.contact@example.com" in page.locator("#payload").inner_text()
    screenshot(page, "11-event-test-run")

    page.goto(f"/workflows/{workflow.pk}/edit/")
    card = page.locator("article.task").first
    card.locator("[data-preview-run]").select_option(str(run.pk))
    card.locator("input[name$='.message.subject']").fill("Hi ${m://FirstName} (${event://Nope})")
    card.locator("[data-action=preview]").click()
    output = card.locator("[data-preview-output]")
    output.locator("text=Subject").wait_for()
    assert "Subject: Hi Test ()" in output.inner_text()
    assert "Nope" in output.locator(".warnings").inner_text()
    frame = card.frame_locator("[data-preview-output] iframe")
    assert "Take the survey" in frame.locator("body").inner_text()
    screenshot(page, "12-builder-preview")


def test_a_respondent_answers_the_survey_from_the_invitation(page, site, demo_data):
    # The whole loop in a real browser: Salesforce posts, the invitation goes out, the
    # respondent opens the personal link and submits (CSRF and referrer policy included).
    from surveys.models import Response

    workflow = demo_workflow(demo_data)
    assert b"<Ack>true</Ack>" in post_sample(workflow.event.url)
    line = Recipient.objects.get()
    link = f"{site}/s/{line.link.token}/"
    assert link in OutboxMessage.objects.get().body
    page.goto(link)
    page.check("input[type=radio][value='9']")
    page.fill("textarea", "Quick and kind.")
    page.click("button[value=finish]")
    page.wait_for_selector("h1:has-text('Thank you')")
    screenshot(page, "07-respondent-thank-you")
    response = Response.objects.get()
    assert response.finished_at is not None
    line.refresh_from_db()
    assert line.status == "finished"


def test_work_typed_in_the_builder_survives_a_session_ended_in_another_tab(page, demo_data):
    """Signed out in another tab, Save keeps the page and says so; signed in again
    (which rotates the CSRF token), the same button saves what was typed."""
    workflow = demo_workflow(demo_data, name="Before")
    log_in(page, "admin")
    page.goto(f"/workflows/{workflow.pk}/edit/")
    page.fill("[name=name]", "Typed before the session ended")

    other = page.context.new_page()
    other.goto("/workflows/")
    other.click("#sign-out")
    other.wait_for_url("**/accounts/login/")

    page.click("#save-workflow")
    notice = page.locator("#signed-out")
    notice.wait_for(state="visible")
    assert "Not saved: you are signed out" in notice.inner_text()
    assert f"/workflows/{workflow.pk}/edit/" in page.url
    assert page.input_value("[name=name]") == "Typed before the session ended"
    screenshot(page, "builder-signed-out")

    log_in(other, "admin")
    other.close()
    page.click("#save-workflow")
    page.wait_for_url(f"**/workflows/{workflow.pk}/")
    assert "Workflow saved." in page.inner_text("body")
    workflow.refresh_from_db()
    assert workflow.name == "Typed before the session ended"
