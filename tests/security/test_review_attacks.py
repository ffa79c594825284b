"""An attacker's review: what the other security tests do not try.

Stored XSS through every value Salesforce sends and every name a collaborator types,
reflected XSS through query strings, response headers that keep pages out of frames
and tokens out of Referer headers, and the shape of the production cookies.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, TestCase

from distributions.models import Recipient
from surveys.models import Survey
from surveys.services import response_record_answers
from tests.conftest import drain
from tests.distributions.builders import make_distribution_workflow, make_survey, send_case
from tests.security.urls import UnknownUrl, all_url_cases, url_for
from tests.security.world import PASSWORD, World

pytestmark = pytest.mark.django_db

# Each payload carries a marker that must never reach a page as live markup.
SCRIPT = "<script>alert('x1')</script>"
IMG = '"><img src=x onerror=alert(2)>'
SVG = "'><svg onload=alert(3)>"
HOSTILE = f"{SCRIPT}{IMG}{SVG}"
LIVE_MARKUP = ("<script>alert('x1')", "<img src=x onerror", "<svg onload")
# A value in an href: escaping alone does not stop it.
# (The error pages' own "Back" link, javascript:history.back(), is ours.)
JAVASCRIPT_URL = re.compile(
    r"""(href|src|action)\s*=\s*["']?\s*javascript:(?!history\.back\(\))""", re.IGNORECASE
)


def _hostile_world(settings) -> World:
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"
    user_model = get_user_model()
    owner = user_model.objects.create_user("owner", "owner@example.com", PASSWORD, is_staff=True)
    superuser = user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    other = user_model.objects.create_user("other", "other@example.com", PASSWORD, is_staff=True)
    # What a collaborator (or an owner) types: shown to others.
    survey = make_survey(
        owner=owner,
        name=f"Survey {HOSTILE}",
        thank_you_text=f"Thanks ${{m://FirstName}} {HOSTILE}",
        questions=[
            {"type": "nps", "text": f"Recommend us, ${{m://FirstName}}? {HOSTILE}"},
            {"type": "text", "text": f"Anything else? {HOSTILE}", "required": False},
        ],
    )
    workflow = make_distribution_workflow(
        owner=owner,
        survey=survey,
        message={
            "from_name": "Care ${event://First_Name__c}",
            "subject": "Hi ${m://FirstName} ${event://Subject}",
            "body": (
                '<p>Hello ${m://FirstName}, <a href="${event://Website__c}">site</a></p>'
                "<p>${l://SurveyLink?d=Take the survey}</p>"
            ),
        },
    )
    workflow.name = f"Workflow {HOSTILE}"
    workflow.save(update_fields=["name"])
    # What Salesforce sends: whatever a customer typed into a Case.
    with TestCase.captureOnCommitCallbacks(execute=True):
        run = send_case(
            Client(),
            workflow,
            First_Name__c=f"Jonas {HOSTILE}",
            Last_Name__c=f"Berg {HOSTILE}",
            CaseNumber=f"0001 {HOSTILE}",
            Priority=HOSTILE,
            Subject=f"Printer {HOSTILE}",
            Website__c="javascript:alert(4)",
        )
    line = Recipient.objects.select_related("link").get()
    questions = list(line.link.survey.questions.order_by("position"))
    response_record_answers(
        link=line.link, answers={questions[0].pk: 9, questions[1].pk: HOSTILE}, finish=False
    )
    return World(
        users={"owner": owner, "superuser": superuser, "other": other},
        workflow=workflow,
        run=run,
        survey=Survey.objects.get(),
        link=line.link,
        line=line,
    )


def _live_markup(body: str) -> list[str]:
    found = [marker for marker in LIVE_MARKUP if marker in body]
    if JAVASCRIPT_URL.search(body):
        found.append("javascript: URL in an attribute")
    return found


# Query parameters the pages read (and may echo), each given a payload.
REFLECTED_QUERY = "&".join(
    f"{name}=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(2)%3E"
    for name in ("q", "to", "record_id", "status", "since", "until", "channel", "kind", "before")
)


def test_hostile_values_never_reach_a_page_as_markup(settings):
    """Every GET URL, as the superuser (who sees everything) and the owner, with and
    without hostile query parameters: no payload comes back as live markup."""
    world = _hostile_world(settings)
    clients = {role: Client(raise_request_exception=False) for role in ("owner", "superuser")}
    for role, client in clients.items():
        client.force_login(world.users[role])
    anonymous = Client(raise_request_exception=False)
    findings: list[str] = []
    shown_escaped: set[str] = set()
    pages = 0
    for case in sorted(all_url_cases(), key=lambda c: c.route):
        try:
            path = url_for(case, world)
        except (UnknownUrl, AttributeError):
            continue  # unknown: test_authorization names it; or no such object here
        browsers = [*clients.values()]
        if case.name in {"survey-page", "survey-opt-out"}:
            browsers = [anonymous, *browsers]
        for client in browsers:
            for query in ("", f"?{REFLECTED_QUERY}"):
                response = client.get(path + query, HTTP_ACCEPT="text/html")
                if response.streaming:
                    drain(response)
                    continue
                content_type = response.get("Content-Type", "")
                if "html" not in content_type:
                    continue
                pages += 1
                body = response.content.decode(errors="replace")
                if "&lt;script&gt;alert(" in body:
                    shown_escaped.add(case.name)
                for finding in _live_markup(body):
                    findings.append(f"{path}{query and ' (hostile query)'}: {finding}")
    assert pages > 100
    # The payloads did arrive, escaped, where an attacker would aim them.
    aimed_at = {
        "run-detail",
        "run-dry-run",
        "survey-page",
        "outbox",
        "workflow-detail",
        "distribution-report",
        "delivery-list",
        "admin:xmflows_run_change",
        "admin:surveys_response_change",
    }
    assert aimed_at <= shown_escaped, aimed_at - shown_escaped
    assert not findings, "live markup from hostile values:\n" + "\n".join(sorted(set(findings)))


def test_thank_you_page_and_message_preview_keep_hostile_values_inert(settings):
    """The two renderings the GET sweep cannot reach: the thank-you page (after the
    respondent's POST) and the builder's preview (JSON the builder puts in a sandboxed
    frame): piped values come out escaped in both."""
    world = _hostile_world(settings)
    respondent = Client()
    page = respondent.get(f"/s/{world.link.token}/")
    questions = list(world.survey.questions.order_by("position"))
    thanks = respondent.post(
        f"/s/{world.link.token}/",
        {
            "csrfmiddlewaretoken": page.cookies["csrftoken"].value,
            f"q{questions[0].pk}": "10",
            "action": "finish",
        },
    )
    assert thanks.status_code == 200
    body = thanks.content.decode()
    assert "Thanks Jonas &lt;script&gt;" in body
    assert not _live_markup(body)

    owner = Client()
    owner.force_login(world.users["owner"])
    preview = owner.post(
        "/workflows/piped-text-preview/",
        {
            "run": world.run.pk,
            "contact": {"first_name": "${event://First_Name__c}"},
            "message": {
                "subject": "Hi ${m://FirstName}",
                "body": "<p>Hello ${m://FirstName} ${event://Subject}</p>",
            },
        },
        content_type="application/json",
    ).json()
    assert preview["message"]["body"].startswith("<p>Hello Jonas &lt;script&gt;")
    assert not _live_markup(preview["message"]["body"])
    # A subject is plain text: shown by the builder with textContent, never as HTML.
    assert preview["message"]["subject"].startswith("Hi Jonas <script>")


def test_pages_for_signed_in_users_are_kept_out_of_caches(settings):
    """The workflow page shows its event URL (a bearer secret), the outbox every
    personal survey link, a run its payload: after signing out on a shared computer,
    Back must not bring them out of the browser's cache, nor may a shared cache keep
    them. A response that sets its own Cache-Control keeps it."""
    world = _hostile_world(settings)
    client = Client()
    client.force_login(world.users["owner"])
    for path in (
        f"/workflows/{world.workflow.pk}/",
        "/outbox/",
        f"/reports/workflows/runs/{world.run.pk}/",
        f"/api/v1/workflows/{world.workflow.pk}/",
        "/admin/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        cache_control = response.get("Cache-Control", "")
        assert "no-store" in cache_control and "private" in cache_control, (path, cache_control)
    csv = client.get(f"/surveys/{world.survey.pk}/responses.csv")
    drain(csv)
    assert csv["Cache-Control"] == "no-store"
    # Nobody signed in (Salesforce, a respondent): nothing added, no session read.
    ping = Client().get("/healthz")
    assert "Cache-Control" not in ping and "Cookie" not in ping.get("Vary", "")
