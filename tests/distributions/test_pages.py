"""HTML pages: a survey's Distributions tab and the outbox."""

import pytest
from django.test import Client

from distributions.models import Distribution, OutboxMessage, Recipient
from tests.distributions.builders import make_distribution_workflow, make_survey, send_case
from tests.factories import make_user


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db(transaction=True)
def test_distributions_tab_lists_distributions_and_lines(client, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    run = send_case(client, workflow)
    survey_id = workflow.tasks.get().config["survey"]
    page = _logged_in(admin_user).get(f"/surveys/{survey_id}/distributions/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'href="/reports/workflows/runs/{run.pk}/"' in html
    assert "Sent: 1" in html
    assert "jonas.berg@example.org" in html
    assert f'href="/surveys/{survey_id}/distribution-history.csv"' in html or (
        f'action="/surveys/{survey_id}/distribution-history.csv"' in html
    )
    assert "/history.csv" in html
    assert 'id="selection-problem"' not in html
    # A distribution that is not this survey's, or no id at all, is said, not ignored.
    viewer = _logged_in(admin_user)
    for asked, said in (
        ("999999", "Distribution 999999 is not a distribution of this survey"),
        ("abc", "Distribution: &#x27;abc&#x27; is not a distribution&#x27;s id"),
    ):
        page = viewer.get(f"/surveys/{survey_id}/distributions/", {"distribution": asked})
        assert page.status_code == 200
        assert f"{said}; the latest one is shown." in page.content.decode()


@pytest.mark.django_db
def test_distributions_tab_needs_login_and_access(admin_user):
    survey = make_survey(owner=admin_user)
    anonymous = Client().get(f"/surveys/{survey.pk}/distributions/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")
    stranger = _logged_in(make_user(username="zed"))
    assert stranger.get(f"/surveys/{survey.pk}/distributions/").status_code == 403
    empty = _logged_in(admin_user).get(f"/surveys/{survey.pk}/distributions/")
    assert "has not been distributed yet" in empty.content.decode()


@pytest.mark.django_db
def test_outbox_page_sandboxes_email_html(admin_user):
    OutboxMessage.objects.create(
        channel="email",
        to="jonas@example.org",
        subject="Hello",
        body="plain",
        html_body='<p>Hi</p><script>alert(1)</script><a href="http://x/s/t/">go</a>',
    )
    OutboxMessage.objects.create(channel="sms", to="+14155550100", body="Reply 0-10")
    page = _logged_in(admin_user).get("/outbox/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in html
    assert "<script>alert(1)</script>" not in html  # only inside srcdoc, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Reply 0-10" in html


@pytest.mark.django_db
def test_outbox_page_is_for_staff(admin_user):
    assert Client().get("/outbox/").status_code == 302
    plain = _logged_in(make_user(username="plain", is_staff=False))
    assert plain.get("/outbox/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_admin_pages_of_distributions_render(client, admin_user):
    workflow = make_distribution_workflow(owner=admin_user)
    send_case(client, workflow)
    superuser = make_user(username="root", is_superuser=True)
    admin = _logged_in(superuser)
    distribution = Distribution.objects.get()
    line = Recipient.objects.get()
    for path in [
        "/admin/distributions/distribution/",
        f"/admin/distributions/distribution/{distribution.pk}/change/",
        "/admin/distributions/recipient/?status__exact=sent",
        f"/admin/distributions/recipient/{line.pk}/change/",
        "/admin/distributions/verifiedsender/",
        "/admin/distributions/emailsuppression/",
        "/admin/distributions/outboxmessage/",
        "/admin/distributions/deliveryevent/",
    ]:
        assert admin.get(path).status_code == 200, path


@pytest.mark.django_db
def test_the_api_schema_documents_the_distribution_endpoints(api_client):
    schema = api_client.get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/distributions/",
        "/api/v1/distributions/{id}/recipients/",
        "/api/v1/outbox/",
        "/api/v1/verified-senders/",
    ]:
        assert path in paths, path
