"""The authorization matrix: every URL of config/urls.py, for every role, gets the status expected.

URLs are walked from the resolver (tests/security/urls.py), so a URL added without a
decision here fails `test_every_url_has_an_expected_status`. Roles: anonymous, another
staff member who owns nothing ("other"), the owner of the workflow and survey (a
staff member), a superuser, and a signed-in user who is not staff ("nonstaff": with
an API token in the matrix, and with a browser session, signed in at /accounts/login/,
in test_nonstaff_pages).

Legend: L = a redirect to a login page (/accounts/login/, or the admin's own for
admin URLs); 200, 401, 403, 404, 405 as HTTP.
Requests are GETs; the ownership rules of writes are in test_ownership_of_writes.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.conftest import drain
from tests.figures import record
from tests.security.urls import UnknownUrl, UrlCase, all_url_cases, url_for
from tests.security.world import ROLES, build_world

pytestmark = pytest.mark.django_db

L = "L"
# name (+format: DRF's ".json" twin, expected the same) -> anonymous, other, owner,
# superuser, and nonstaff with an API token (None: the URL is a page; tokens do not
# sign in to pages).
EXPECTED: dict[str, tuple] = {
    # --- REST API: every signed-in user reads workflows, runs, deliveries and the
    # directory (runs and workflows without their secrets for nonstaff: see
    # test_tokens.py); surveys, responses and distributions follow survey sharing;
    # the outbox, senders and frequency rules are for staff.
    "api-root": (401, 200, 200, 200, 200),
    "schema": (401, 200, 200, 200, 200),
    "api-docs": (401, 200, 200, 200, 200),
    # No endpoint there: the same JSON 404 for everyone (it reveals nothing).
    "api-not-found": (404, 404, 404, 404, 404),
    "workflow-list": (401, 200, 200, 200, 200),
    "workflow-detail": (401, 200, 200, 200, 200),
    "workflow-export": (401, 200, 200, 200, 200),
    "workflow-copy": (401, 405, 405, 405, 405),  # POST only
    "run-list": (401, 200, 200, 200, 200),
    "run-detail": (401, 200, 200, 200, 200),
    "run-retry": (401, 405, 405, 405, 405),  # POST only
    "delivery-list": (401, 200, 200, 200, 200),
    "delivery-detail": (401, 200, 200, 200, 200),
    "survey-list": (401, 200, 200, 200, 200),
    "survey-detail": (401, 403, 200, 200, 403),
    "survey-activate": (401, 405, 405, 405, 405),
    "survey-deactivate": (401, 405, 405, 405, 405),
    "response-list": (401, 200, 200, 200, 200),
    "response-detail": (401, 404, 200, 200, 404),
    "directory-list": (401, 200, 200, 200, 200),
    "directory-detail": (401, 200, 200, 200, 200),
    "mailing-list-list": (401, 200, 200, 200, 200),
    "mailing-list-detail": (401, 200, 200, 200, 200),
    "contact-list": (401, 200, 200, 200, 200),
    "contact-detail": (401, 200, 200, 200, 200),
    "distribution-list": (401, 200, 200, 200, 200),
    "distribution-detail": (401, 404, 200, 200, 404),
    "distribution-recipients": (401, 404, 200, 200, 404),
    "outbox-list": (401, 200, 200, 200, 403),
    "outbox-detail": (401, 200, 200, 200, 403),
    "verified-sender-list": (401, 200, 200, 200, 403),
    "verified-sender-detail": (401, 200, 200, 200, 403),
    "frequency-rule-list": (401, 200, 200, 200, 403),
    "frequency-rule-detail": (401, 200, 200, 200, 403),
    "sms-conversation-list": (401, 200, 200, 200, 403),
    # The world has no conversation (an SMS survey): staff get 404, others are refused.
    "sms-conversation-detail": (401, 404, 404, 404, 403),
    # --- Machine endpoints: their own authentication (the secret URL, signatures).
    "salesforce-outbound-message": (405, 405, 405, 405, 405),  # POST only
    "salesforce-outbound-message-other": (405, 405, 405, 405, 405),  # the same view
    "healthz": (200, 200, 200, 200, 200),
    "readyz": (200, 200, 200, 200, 200),
    "twilio-status": (405, 405, 405, 405, 405),
    "twilio-inbound": (405, 405, 405, 405, 405),
    # --- Respondents: the personal link is the credential.
    "survey-page": (200, 200, 200, 200, 200),
    "survey-opt-out": (200, 200, 200, 200, 200),
    # --- CSV downloads: session or token; survey sharing decides.
    "distribution-history-csv": (401, 403, 200, 200, 403),
    "survey-distribution-history-csv": (401, 403, 200, 200, 403),
    "survey-responses-csv": (401, 403, 200, 200, 403),
    # --- Pages (session only). Everyone signed in reads workflows and reports; the
    # owner alone edits; sharing decides a survey's Distributions tab.
    "home": (302, 302, 302, 302, None),  # to the workflows, which sign in first
    "workflow-list-page": (L, 200, 200, 200, None),
    "workflow-create": (L, 200, 200, 200, None),
    "workflow-create-json": (L, 200, 200, 200, None),
    "dynamic-text-menu": (L, 200, 200, 200, None),
    "piped-text-preview": (L, 405, 405, 405, None),
    "workflow-detail-page": (L, 200, 200, 200, None),
    "workflow-edit": (L, 403, 200, 403, None),
    "workflow-edit-json": (L, 403, 200, 403, None),
    "workflow-test-event": (L, 405, 405, 405, None),
    "workflow-action": (L, 405, 405, 405, None),
    "run-list-page": (L, 200, 200, 200, None),
    "run-detail-page": (L, 200, 200, 200, None),
    "run-retry-page": (L, 405, 405, 405, None),
    "run-dry-run": (L, 200, 200, 200, None),
    "run-replay": (L, 405, 405, 405, None),
    "why-not-sent": (L, 200, 200, 200, None),
    "delivery-list-page": (L, 200, 200, 200, None),
    "queue": (L, 200, 200, 200, None),
    "distribution-report": (L, 200, 200, 200, None),
    "survey-distributions": (L, 403, 200, 200, None),
    "outbox": (L, 200, 200, 200, None),
    # --- Signing in (every user: the admin's login page takes staff only).
    "login": (200, 302, 302, 302, None),  # signed in already: on to the workflows
    "logout": (405, 405, 405, 405, None),  # POST only
    "session-state": (200, 200, 200, 200, None),  # says whether one is signed in
    "password_change": (L, 200, 200, 200, None),
    "password_change_done": (L, 200, 200, 200, None),
}
# A signed-in user who is not staff, in a browser session: like the staff member who
# owns nothing ("other"), except where staff alone are let in.
NONSTAFF_PAGES_DIFFER = {
    "outbox": 403,  # every email's body, personal links included
}
# Pages and API routes that share a name (reverse() picks by arguments): told apart
# by their route.
PAGE_ROUTES = {
    "workflows/": "workflow-list-page",
    "workflows/<int:workflow_id>/": "workflow-detail-page",
    "reports/workflows/": "run-list-page",
    "reports/workflows/runs/<int:run_id>/": "run-detail-page",
    "reports/workflows/runs/<int:run_id>/retry/": "run-retry-page",
    "reports/workflows/deliveries/": "delivery-list-page",
}

# Admin: views of registered models. Staff without model permissions (the owner and
# "other" here hold none) are refused; the superuser sees everything. Models whose
# admin is read-only (rows written only by xmflows itself) refuse "add" to all.
READ_ONLY_ADMIN = {
    "conversation",
    "deliveryevent",
    "distribution",
    "outboxmessage",
    "recipient",
    "smsmessage",
    "failure",
    "ormq",
    "success",
    "response",
    "surveylink",
    "delivery",
    "notification",
    "run",
    "workflow",  # built in the workflow builder, which validates a definition
    "signinthrottle",  # counted by the sign-in pages; deleting one lifts its block
    "retainedoptout",  # kept when an opted-out contact is deleted; deleting one forgets it
}
ADMIN_SITE_VIEWS: dict[str, tuple] = {
    "admin:index": (L, 200, 200, 200),
    "admin:login": (200, 302, 302, 302),  # signed in already: on to the index
    "admin:logout": (302, 405, 405, 405),  # POST only
    # On to /accounts/password/, whose form counts wrong old passwords.
    "admin:password_change": (302, 302, 302, 302),
    "admin:password_change_done": (L, 200, 200, 200),
    "admin:jsi18n": (L, 200, 200, 200),
    "admin:autocomplete": (L, 403, 403, 403),  # needs a model and field
    "admin:app_list": (L, 404, 404, 200),  # no permission on the app: as if absent
    "admin:view_on_site": (L, 404, 404, 404),  # runs have no public page
    "admin:auth_user_password_change": (L, 403, 403, 200),
}


# django-anymail's webhooks (/hooks/email/<esp>/…) answer 403 to everyone until
# ANYMAIL_WEBHOOK_SECRET is set (distributions/email_hooks.py); with it, basic auth
# decides (test_webhooks.py).
ANYMAIL_HOOK = (403, 403, 403, 403, 403)


def page_key(case: UrlCase) -> str:
    return PAGE_ROUTES.get(case.route, case.name)


def admin_expected(case: UrlCase, world_has_object: bool) -> tuple:
    if case.name in ADMIN_SITE_VIEWS:
        return ADMIN_SITE_VIEWS[case.name]
    if case.unnamed and "url" in case.params:
        return (L, 404, 404, 404)  # the admin's catch-all
    if case.unnamed:
        return (L, 302, 302, 302)  # <id>/ redirects to <id>/change/, which decides
    view = case.name.rsplit("_", 1)[1]
    model = case.name.removeprefix("admin:").rsplit("_", 1)[0].rsplit("_", 1)[1]
    if view == "add":
        return (L, 403, 403, 403 if model in READ_ONLY_ADMIN else 200)
    if view == "changelist":
        return (L, 403, 403, 200)
    if not world_has_object:
        # A missing object: the admin says so and goes back to its index (history
        # checks existence before permissions).
        return (L, 302 if view == "history" else 403, 302 if view == "history" else 403, 302)
    if model == "workflow" and view == "delete":
        return (L, 403, 403, 403)  # the owner's alone, as in the API and the builder
    if model == "notification" and view == "delete":
        return (L, 403, 403, 403)  # it makes a Salesforce retry a duplicate: kept
    return (L, 403, 403, 200)


def observed(response) -> object:
    drain(response)
    if response.status_code == 302 and response["Location"].startswith(
        ("/admin/login/", "/accounts/login/")
    ):
        return L
    return response.status_code


@pytest.fixture
def world(settings):
    return build_world(settings)


def test_every_url_has_an_expected_status(world):
    """The matrix, checked in full; a mismatch lists every URL that differs."""
    clients = {role: world.client(role) for role in ROLES}
    token_client = world.token_client("nonstaff")
    mismatches: list[str] = []
    unknown: list[str] = []
    requests = 0
    for case in sorted(all_url_cases(), key=lambda c: c.route):
        try:
            path = url_for(case, world)
        except UnknownUrl as error:
            unknown.append(str(error))
            continue
        if case.name.startswith("admin:"):
            # 999999: the world has no object of that model (see urls._admin_object).
            expected = admin_expected(case, world_has_object="/999999/" not in path)
            token_expected = None
        else:
            key = page_key(case)
            if case.name.startswith("anymail:"):
                EXPECTED.setdefault(key, ANYMAIL_HOOK)
            if key not in EXPECTED:
                unknown.append(f"{case.route} ({key}): add it to EXPECTED")
                continue
            *expected, token_expected = EXPECTED[key]
        got = [observed(clients[role].get(path)) for role in ROLES]
        requests += len(ROLES)
        if token_expected is not None:
            got.append(observed(token_client.get(path)))
            expected = [*expected, token_expected]
            requests += 1
        if list(got) != list(expected):
            mismatches.append(f"{path:<60} expected {tuple(expected)}, got {tuple(got)}")
    assert not unknown, "URLs the matrix does not know:\n" + "\n".join(unknown)
    assert not mismatches, "authorization matrix mismatches:\n" + "\n".join(mismatches)
    record("authorization matrix", urls=len(all_url_cases()), requests=requests, mismatches=0)


def test_nonstaff_pages(world):
    """A user who is not staff, signed in with a browser session: every page as the
    staff member who owns nothing sees it, except NONSTAFF_PAGES_DIFFER; no admin URL
    lets them in (the admin's login page answers, saying they are not authorized)."""
    client = world.client("nonstaff")
    other = world.client("other")
    mismatches: list[str] = []
    pages = 0
    for case in sorted(all_url_cases(), key=lambda c: c.route):
        try:
            path = url_for(case, world)
        except UnknownUrl:
            continue  # test_every_url_has_an_expected_status names it
        if case.name.startswith("admin:"):
            if case.name in {"admin:login", "admin:logout"}:
                continue  # the admin's own sign-in and sign-out pages
            # "Change password" leads to the page every user has (/accounts/password/).
            expected = 302 if case.name == "admin:password_change" else L
        else:
            key = page_key(case)
            if EXPECTED.get(key, (None,))[-1] is not None:
                continue  # not a page: the token column of the matrix covers it
            expected = NONSTAFF_PAGES_DIFFER.get(key, observed(other.get(path)))
            pages += 1
        got = observed(client.get(path))
        if got != expected:
            mismatches.append(f"{path:<60} expected {expected}, got {got}")
    assert pages >= 25
    assert not mismatches, "nonstaff page mismatches:\n" + "\n".join(mismatches)


# --- writes: who may change what ----------------------------------------------------

# (what, method, path from the world, body, expected for anonymous, other, owner,
# superuser, nonstaff-with-a-token; None: a page, not for tokens).
# fmt: off
WRITES: list[tuple] = [
    ("rename a workflow", "patch", lambda w: f"/api/v1/workflows/{w.workflow.pk}/",
     {"name": "Renamed"}, (401, 403, 200, 403, 403)),
    ("delete a workflow", "delete", lambda w: f"/api/v1/workflows/{w.workflow.pk}/",
     None, (401, 403, 204, 403, 403)),
    ("copy a workflow", "post", lambda w: f"/api/v1/workflows/{w.workflow.pk}/copy/",
     {}, (401, 201, 201, 201, 201)),
    ("retry a run (it succeeded: 409)", "post", lambda w: f"/api/v1/runs/{w.run.pk}/retry/",
     {}, (401, 409, 409, 409, 403)),
    ("rename a survey", "patch", lambda w: f"/api/v1/surveys/{w.survey.pk}/",
     {"name": "Renamed"}, (401, 403, 200, 200, 403)),
    ("close a survey", "post", lambda w: f"/api/v1/surveys/{w.survey.pk}/deactivate/",
     {}, (401, 403, 200, 200, 403)),
    # 409: a workflow distributes the survey, and it has distributions: it is kept
    ("delete a survey", "delete", lambda w: f"/api/v1/surveys/{w.survey.pk}/",
     None, (401, 403, 409, 409, 403)),
    ("edit a contact", "patch", lambda w: f"/api/v1/contacts/{w.line.contact_id}/",
     {"first_name": "Edited"}, (401, 200, 200, 200, 403)),
    ("add a verified sender", "post", lambda w: "/api/v1/verified-senders/",
     {"address": "new@example.net"}, (401, 201, 201, 201, 403)),
    ("delete a workflow (page)", "post", lambda w: f"/workflows/{w.workflow.pk}/delete/",
     {}, (L, 403, 302, 403, None)),
    ("disable a workflow (page)", "post", lambda w: f"/workflows/{w.workflow.pk}/disable/",
     {}, (L, 403, 302, 403, None)),
    ("retry a run (page)", "post", lambda w: f"/reports/workflows/runs/{w.run.pk}/retry/",
     {}, (L, 302, 302, 302, None)),
]
# fmt: on


@pytest.mark.parametrize("role", [*ROLES, "nonstaff"])
def test_ownership_of_writes(settings, role):
    mismatches = []
    checked = 0
    world = build_world(settings)
    client = world.token_client(role) if role == "nonstaff" else world.client(role)
    for what, method, path_of, body, expected_by_role in WRITES:
        expected = expected_by_role[[*ROLES, "nonstaff"].index(role)]
        if expected is None:
            continue
        # Each write is rolled back, so the next one meets the world as built.
        with transaction.atomic():
            path = path_of(world)
            if path.startswith("/api/"):
                response = getattr(client, method)(path, data=body, content_type="application/json")
            else:
                response = getattr(client, method)(path, data=body)
            got = observed(response)
            transaction.set_rollback(True)
        checked += 1
        if got != expected:
            mismatches.append(f"{role}: {what}: expected {expected}, got {got}")
    assert not mismatches, "\n".join(mismatches)
    record("authorization matrix", writes_checked=checked)
