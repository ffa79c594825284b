"""Admin pages of senders and suppressions: they normalise what staff type, refuse
duplicates with a message instead of a server error, and keep senders workflows need."""

import html

import pytest

from distributions.models import EmailSuppression, VerifiedSender
from tests.distributions.builders import SENDER, make_distribution_workflow, make_sender

pytestmark = pytest.mark.django_db

SENDERS_URL = "/admin/distributions/verifiedsender/"
SUPPRESSIONS_URL = "/admin/distributions/emailsuppression/"


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


def _page(response) -> str:
    return html.unescape(response.content.decode())


# --- Defect 1: verified senders are normalised as the API normalises them ------------------


@pytest.mark.parametrize(
    ("existing", "typed", "canonical"),
    [
        ("surveys@example.com", "SURVEYS@example.com", "surveys@example.com"),
        ("surveys@example.com", " Surveys@Example.COM ", "surveys@example.com"),
        ("@example.com", "example.com", "@example.com"),
        ("@example.com", " Example.COM ", "@example.com"),
        ("@example.com", "@EXAMPLE.com", "@example.com"),
    ],
)
def test_adding_a_sender_that_is_already_verified_says_so(
    admin_client_logged_in, existing, typed, canonical
):
    make_sender(existing)
    response = admin_client_logged_in.post(
        f"{SENDERS_URL}add/", {"address": typed, "verified": "on"}
    )
    assert response.status_code == 200  # the form again, not a server error
    assert f"{canonical} is already verified; there is no need to add it again" in _page(response)
    assert list(VerifiedSender.objects.values_list("address", flat=True)) == [existing]


def test_a_listed_but_unverified_sender_is_edited_not_added_again(admin_client_logged_in):
    VerifiedSender.objects.create(address="surveys@example.com", verified=False)
    response = admin_client_logged_in.post(
        f"{SENDERS_URL}add/", {"address": "Surveys@Example.com", "verified": "on"}
    )
    assert response.status_code == 200
    assert "surveys@example.com is already listed, not verified; edit that entry" in _page(response)
    assert VerifiedSender.objects.count() == 1


def test_the_admin_stores_a_sender_in_the_apis_form(admin_client_logged_in):
    response = admin_client_logged_in.post(
        f"{SENDERS_URL}add/", {"address": " Example.ORG ", "verified": "on"}
    )
    assert response.status_code == 302
    response = admin_client_logged_in.post(
        f"{SENDERS_URL}add/", {"address": "Care@Example.net", "verified": "on"}
    )
    assert response.status_code == 302
    assert sorted(VerifiedSender.objects.values_list("address", flat=True)) == [
        "@example.org",
        "care@example.net",
    ]
    # Saving an entry unchanged is not a duplicate of itself.
    sender = VerifiedSender.objects.get(address="@example.org")
    response = admin_client_logged_in.post(
        f"{SENDERS_URL}{sender.pk}/change/", {"address": "example.org", "verified": "on"}
    )
    assert response.status_code == 302


def test_a_sender_that_is_neither_address_nor_domain_is_refused(admin_client_logged_in):
    response = admin_client_logged_in.post(
        f"{SENDERS_URL}add/", {"address": "not a domain", "verified": "on"}
    )
    assert response.status_code == 200
    assert "'not a domain' is neither an email address nor a domain" in _page(response)
    assert not VerifiedSender.objects.exists()


# --- Defect 2: suppressions are compared as the send compares them -------------------------


def test_suppressing_an_address_twice_says_so(admin_client_logged_in):
    existing = EmailSuppression.objects.create(address="x@example.org", reason="hard_bounce")
    response = admin_client_logged_in.post(
        f"{SUPPRESSIONS_URL}add/", {"address": "X@Example.org", "reason": "complaint"}
    )
    assert response.status_code == 200
    day = f"{existing.created_at:%Y-%m-%d}"
    assert (
        f"x@example.org is already suppressed (hard bounce on {day}); edit that entry "
        "instead of adding it again"
    ) in _page(response)
    assert list(EmailSuppression.objects.values_list("address", "reason")) == [
        ("x@example.org", "hard_bounce")
    ]


def test_a_suppression_is_stored_in_lower_case(admin_client_logged_in):
    response = admin_client_logged_in.post(
        f"{SUPPRESSIONS_URL}add/", {"address": " Y@Example.org ", "reason": "complaint"}
    )
    assert response.status_code == 302
    suppression = EmailSuppression.objects.get()
    assert suppression.address == "y@example.org"
    response = admin_client_logged_in.post(
        f"{SUPPRESSIONS_URL}{suppression.pk}/change/",
        {"address": "Y@EXAMPLE.ORG", "reason": "complaint", "detail": "by hand"},
    )
    assert response.status_code == 302


# --- Defect 4: a sender a workflow sends from is not deleted -------------------------------


def _in_use(workflow, *, sender: str = SENDER, from_email: str = SENDER) -> str:
    return (
        f"cannot delete {sender}: workflow '{workflow.name}' (id {workflow.pk}), task 1, "
        f"sends from {from_email}; no other verified sender covers it, so every run would "
        "fail. Change the From address in the workflow, or first verify it as another "
        "sender (the address or its domain)"
    )


def test_deleting_a_sender_a_workflow_sends_from_is_refused(admin_client_logged_in, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    sender = VerifiedSender.objects.get(address=SENDER)
    url = f"{SENDERS_URL}{sender.pk}/delete/"

    page = _page(admin_client_logged_in.get(url))
    assert "cannot be deleted while workflows send from it" in page
    assert _in_use(workflow) in page
    assert 'name="post"' not in page  # no confirmation button
    refused = admin_client_logged_in.post(url, {"post": "yes"})
    assert _in_use(workflow) in _page(refused)
    assert VerifiedSender.objects.filter(pk=sender.pk).exists()


def test_the_bulk_delete_action_is_refused_the_same_way(admin_client_logged_in, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    unused = make_sender("news@example.net")
    sender = VerifiedSender.objects.get(address=SENDER)
    action = {"action": "delete_selected", "_selected_action": [sender.pk, unused.pk]}

    page = _page(admin_client_logged_in.post(SENDERS_URL, action))
    assert "cannot be deleted while workflows send from them" in page
    assert _in_use(workflow) in page
    admin_client_logged_in.post(SENDERS_URL, {**action, "post": "yes"})
    assert VerifiedSender.objects.count() == 2


def test_deleting_together_every_entry_that_covers_an_address_is_refused(
    admin_client_logged_in, admin_user
):
    workflow = make_distribution_workflow(owner=admin_user)
    domain = make_sender("@example.com")
    sender = VerifiedSender.objects.get(address=SENDER)
    action = {
        "action": "delete_selected",
        "_selected_action": [sender.pk, domain.pk],
        "post": "yes",
    }
    page = _page(admin_client_logged_in.post(SENDERS_URL, action))
    assert _in_use(workflow) in page
    assert _in_use(workflow, sender="@example.com") in page
    assert VerifiedSender.objects.count() == 2


def test_a_sender_still_covered_by_its_domain_can_be_deleted(admin_client_logged_in, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    domain = make_sender("@example.com")
    sender = VerifiedSender.objects.get(address=SENDER)
    response = admin_client_logged_in.post(f"{SENDERS_URL}{sender.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert list(VerifiedSender.objects.values_list("address", flat=True)) == ["@example.com"]
    # The domain is now the only entry that verifies the workflow's From address.
    page = _page(admin_client_logged_in.get(f"{SENDERS_URL}{domain.pk}/delete/"))
    assert _in_use(workflow, sender="@example.com") in page


def test_senders_no_workflow_needs_can_be_deleted(admin_client_logged_in, admin_user):
    make_distribution_workflow(owner=admin_user)
    unused = make_sender("news@example.net")
    unverified = VerifiedSender.objects.create(address="@example.com", verified=False)
    action = {"action": "delete_selected", "_selected_action": [unused.pk, unverified.pk]}
    response = admin_client_logged_in.post(SENDERS_URL, {**action, "post": "yes"})
    assert response.status_code == 302
    assert list(VerifiedSender.objects.values_list("address", flat=True)) == [SENDER]
