"""Signing in to the browser pages: every user, staff or not (SPEC: analysts read
reports and download CSV), at /accounts/login/; and what a user who is not staff
sees there: no event URL or personal survey link of someone else's workflow."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from surveys.models import SurveyCollaborator
from tests.factories import make_user
from tests.security.world import PASSWORD, build_world
from xmflows.models import SignInThrottle

pytestmark = pytest.mark.django_db


def sign_in(client: Client, username: str, password: str = PASSWORD, next_url: str = ""):
    page = client.get(f"/accounts/login/?next={next_url}" if next_url else "/accounts/login/")
    assert page.status_code == 200
    return client.post(
        "/accounts/login/", {"username": username, "password": password, "next": next_url}
    )


@pytest.fixture
def analyst():
    user = make_user(username="analyst", is_staff=False, password=PASSWORD)
    assert not user.is_staff
    return user


def test_a_page_sends_a_visitor_to_the_sign_in_page_and_back(analyst):
    client = Client()
    refused = client.get("/reports/distributions/")
    assert refused.status_code == 302
    assert refused["Location"] == "/accounts/login/?next=/reports/distributions/"
    signed_in = sign_in(client, "analyst", next_url="/reports/distributions/")
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/reports/distributions/"
    page = client.get("/reports/distributions/").content.decode()
    assert 'id="sign-out"' in page
    assert "analyst" in page
    assert 'href="/admin/"' not in page  # the admin would refuse them
    assert 'href="/outbox/"' not in page  # staff only


def test_the_admin_login_alone_would_refuse_a_user_who_is_not_staff(analyst):
    # Why /accounts/login/ exists: the admin's page takes staff members only.
    client = Client()
    client.post("/admin/login/", {"username": "analyst", "password": PASSWORD})
    assert client.get("/workflows/").status_code == 302
    assert sign_in(Client(), "analyst").status_code == 302


def test_a_wrong_password_says_so_and_signs_no_one_in(analyst):
    client = Client()
    refused = sign_in(client, "analyst", password="wrong")
    assert refused.status_code == 200
    assert "Please enter a correct username and password" in html.unescape(refused.content.decode())
    assert client.get("/workflows/").status_code == 302


def test_next_never_leads_off_site(analyst):
    signed_in = sign_in(Client(), "analyst", next_url="https://evil.example/")
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/workflows/"


def test_sign_out_is_a_post_and_ends_the_session(analyst):
    client = Client()
    sign_in(client, "analyst")
    assert client.get("/accounts/logout/").status_code == 405
    assert client.get("/workflows/").status_code == 200
    out = client.post("/accounts/logout/")
    assert out.status_code == 302
    assert out["Location"] == "/accounts/login/"
    assert client.get("/workflows/").status_code == 302


def test_the_session_state_says_whether_one_is_signed_in_and_gives_the_current_token(analyst):
    client = Client()
    out = client.get("/accounts/session/")
    assert out.status_code == 200
    assert out.json() == {"signed_in": False, "sign_in_url": "/accounts/login/"}
    assert "no-cache" in out["Cache-Control"]
    sign_in(client, "analyst")
    state = client.get("/accounts/session/").json()
    assert state["signed_in"] is True and state["username"] == "analyst"
    # The token it gives is the one a post must carry now (signing in rotated it).
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    assert strict.post("/accounts/logout/").status_code == 403
    save = strict.post(
        "/accounts/logout/", {"csrfmiddlewaretoken": state["csrf_token"]}, follow=False
    )
    assert save.status_code == 302
    assert client.get("/accounts/session/").json()["signed_in"] is False
    assert client.post("/accounts/session/").status_code == 405


def test_a_user_changes_their_own_password(analyst):
    client = Client()
    sign_in(client, "analyst")
    form = client.get("/accounts/password/")
    assert form.status_code == 200
    wrong = client.post(
        "/accounts/password/",
        {"old_password": "nope", "new_password1": "N3w-pass!", "new_password2": "N3w-pass!"},
    )
    assert wrong.status_code == 200
    assert "old password was entered incorrectly" in html.unescape(wrong.content.decode())
    changed = client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": "N3w-pass!", "new_password2": "N3w-pass!"},
    )
    assert changed.status_code == 302
    assert client.get(changed["Location"]).status_code == 200
    assert client.get("/workflows/").status_code == 200  # still signed in here
    assert sign_in(Client(), "analyst", password="N3w-pass!").status_code == 302
    assert sign_in(Client(), "analyst").status_code == 200  # the old one is refused


def test_an_analyst_downloads_a_shared_surveys_history_csv_in_the_browser(settings):
    world = build_world(settings)
    client = Client()
    assert sign_in(client, "integrator").status_code == 302  # the world's non-staff user
    url = f"/surveys/{world.survey.pk}/distribution-history.csv"
    assert client.get(url).status_code == 403  # not shared with them yet
    SurveyCollaborator.objects.create(
        survey=world.survey, user=world.users["nonstaff"], can_view=True
    )
    download = client.get(url)
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    body = b"".join(download.streaming_content).decode("utf-8-sig")
    assert world.line.to_address in body


def test_someone_elses_event_url_and_survey_links_stay_hidden_from_a_user_who_is_not_staff(
    settings,
):
    world = build_world(settings)
    token = world.workflow.event.token
    link_token = world.link.token
    pages = [f"/workflows/{world.workflow.pk}/", f"/reports/workflows/runs/{world.run.pk}/"]
    nonstaff = Client()
    sign_in(nonstaff, "integrator")
    for path in pages:
        page = nonstaff.get(path)
        assert page.status_code == 200, path
        text = page.content.decode()
        assert token not in text, path
        assert link_token not in text, path
    assert "Shown to the workflow's owner (owner) and staff members only" in html.unescape(
        nonstaff.get(pages[0]).content.decode()
    )
    # Staff members and the owner see both, as before.
    for role in ("other", "owner"):
        client = world.client(role)
        assert token in client.get(pages[0]).content.decode(), role
        assert link_token in client.get(pages[1]).content.decode(), role
    # A copy is theirs, with its own URL, which they see.
    copied = nonstaff.post(f"/workflows/{world.workflow.pk}/copy/")
    assert copied.status_code == 302
    own = nonstaff.get(copied["Location"]).content.decode()
    assert 'id="copy-url"' in own


# --- throttling (xmflows/sign_in.py) ------------------------------------------------


def from_address(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def attempt(client: Client, username: str, password: str, path: str = "/accounts/login/"):
    return client.post(path, {"username": username, "password": password})


def signed_in(response) -> bool:
    return response.status_code == 302


def test_five_wrong_passwords_block_that_username_from_that_address_only(analyst):
    attacker = from_address("203.0.113.9")
    for _ in range(5):
        assert not signed_in(attempt(attacker, "analyst", "guess"))
    refused = attempt(attacker, "analyst", PASSWORD)  # even the right one, now
    assert refused.status_code == 200
    text = html.unescape(refused.content.decode())
    assert "Too many failed sign-ins for this username from your address" in text
    assert "ask an administrator to lift the block" in text
    # The real user, elsewhere, is not locked out by someone else's guesses.
    assert signed_in(attempt(from_address("198.51.100.7"), "analyst", PASSWORD))
    throttle = SignInThrottle.objects.get(key="user:analyst|ip:203.0.113.9")
    assert throttle.failures == 5 and throttle.locked_until is not None


def test_the_block_ends_and_a_right_password_clears_the_count(analyst):
    client = from_address("203.0.113.9")
    for _ in range(5):
        attempt(client, "analyst", "guess")
    SignInThrottle.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    assert signed_in(attempt(client, "analyst", PASSWORD))
    assert not SignInThrottle.objects.filter(key="user:analyst|ip:203.0.113.9").exists()
    # Four mistakes later, still in: the count started again.
    other = from_address("203.0.113.9")
    for _ in range(4):
        attempt(other, "Analyst ", "guess")  # the same username, as Django reads it
    assert signed_in(attempt(other, "analyst", PASSWORD))


def test_mistakes_older_than_the_window_do_not_count(analyst):
    client = from_address("203.0.113.9")
    for _ in range(4):
        attempt(client, "analyst", "guess")
    SignInThrottle.objects.update(window_started_at=timezone.now() - timedelta(minutes=16))
    attempt(client, "analyst", "guess")
    assert SignInThrottle.objects.get(key="user:analyst|ip:203.0.113.9").failures == 1
    assert signed_in(attempt(client, "analyst", PASSWORD))


def test_twenty_failures_from_one_address_block_it_for_every_username(analyst):
    client = from_address("203.0.113.50")
    for number in range(20):
        attempt(client, f"user{number}", "guess")
    refused = attempt(client, "analyst", PASSWORD)
    assert not signed_in(refused)
    assert "Too many failed sign-ins from your address" in html.unescape(refused.content.decode())
    assert signed_in(attempt(from_address("203.0.113.51"), "analyst", PASSWORD))


def test_the_admin_login_is_throttled_too_and_the_admin_lifts_a_block():
    make_user(username="boss", is_superuser=True, password=PASSWORD)
    attacker = from_address("203.0.113.9")
    for _ in range(5):
        attempt(attacker, "boss", "guess", path="/admin/login/")
    refused = attempt(attacker, "boss", PASSWORD, path="/admin/login/")
    assert refused.status_code == 200
    assert "Too many failed sign-ins" in html.unescape(refused.content.decode())
    # Another staff member sees it in the admin and deletes it: the block is lifted.
    client = Client()
    client.force_login(make_user(username="colleague", is_superuser=True))
    listing = client.get("/admin/xmflows/signinthrottle/")
    assert listing.status_code == 200
    assert "user:boss|ip:203.0.113.9" in html.unescape(listing.content.decode())
    throttle = SignInThrottle.objects.get(key="user:boss|ip:203.0.113.9")
    deleted = client.post(f"/admin/xmflows/signinthrottle/{throttle.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert signed_in(attempt(attacker, "boss", PASSWORD, path="/admin/login/"))


def test_a_right_password_refused_for_another_reason_is_not_a_guess(analyst):
    # The admin's page refuses a user who is not staff even with the right password.
    client = from_address("203.0.113.9")
    for _ in range(6):
        assert not signed_in(attempt(client, "analyst", PASSWORD, path="/admin/login/"))
    assert not SignInThrottle.objects.exists()
    assert signed_in(attempt(client, "analyst", PASSWORD))


def test_a_form_with_an_empty_password_does_not_clear_the_count(analyst):
    client = from_address("203.0.113.9")
    for _ in range(4):
        attempt(client, "analyst", "guess")
    attempt(client, "analyst", "")  # no password checked: neither a failure nor a success
    attempt(client, "analyst", "guess")
    assert not signed_in(attempt(client, "analyst", PASSWORD))


def test_the_command_lifts_blocks_for_whoever_cannot_reach_the_admin(analyst):
    from io import StringIO

    from django.core.management import CommandError, call_command

    client = from_address("127.0.0.1")
    for number in range(20):
        attempt(client, f"typo{number}", "guess")
    assert not signed_in(attempt(client, "analyst", PASSWORD))
    listing = StringIO()
    call_command("signin_unblock", stdout=listing)
    assert "ip:127.0.0.1: 20 failures, blocked until" in listing.getvalue()
    with pytest.raises(CommandError, match="no sign-in counter matches"):
        call_command("signin_unblock", "--username", "nobody", stdout=StringIO())
    out = StringIO()
    call_command("signin_unblock", "--address", "127.0.0.1", stdout=out)
    assert "lifted 21 sign-in counter(s)" in out.getvalue()  # the address, each typo from it
    assert signed_in(attempt(client, "analyst", PASSWORD))


def test_the_daily_clean_up_forgets_idle_counters(analyst):
    from xmflows.jobs import cleanup_history

    attempt(from_address("203.0.113.9"), "analyst", "guess")
    SignInThrottle.objects.filter(key="ip:203.0.113.9").update(
        last_failure_at=timezone.now() - timedelta(days=2)
    )
    assert cleanup_history()["sign_in_throttles"] == 1
    assert list(SignInThrottle.objects.values_list("key", flat=True)) == [
        "user:analyst|ip:203.0.113.9"
    ]


def test_a_user_who_is_not_staff_gets_no_link_that_would_refuse_them(settings):
    world = build_world(settings)
    run_page = f"/reports/workflows/runs/{world.run.pk}/"
    tab = f"/surveys/{world.survey.pk}/distributions/"
    nonstaff = Client()
    sign_in(nonstaff, "integrator")
    for path in (run_page, f"/workflows/{world.workflow.pk}/", "/reports/workflows/"):
        text = html.unescape(nonstaff.get(path).content.decode())
        assert "/admin/contacts/contact/" not in text, path  # the admin refuses them
        assert tab not in text, path  # so does a survey not shared with them
        assert "(its survey is not shared with you)" in text, path
    # Shared with them: the Distributions tab is linked again.
    SurveyCollaborator.objects.create(
        survey=world.survey, user=world.users["nonstaff"], can_view=True
    )
    assert tab in nonstaff.get(run_page).content.decode()
    # Staff see the admin's contact page.
    assert "/admin/contacts/contact/" in world.client("owner").get(run_page).content.decode()


def test_the_distribution_report_says_what_it_leaves_out(settings):
    world = build_world(settings)
    nonstaff = Client()
    sign_in(nonstaff, "integrator")
    url = f"/reports/distributions/?workflow={world.workflow.pk}"
    text = html.unescape(nonstaff.get(url).content.decode())
    assert "1 distribution of this workflow is to surveys not shared with you" in text
    assert "this workflow has distributed nothing yet" not in text
    owner_view = html.unescape(world.client("owner").get(url).content.decode())
    assert "not shared with you" not in owner_view


def test_the_api_docs_send_a_signed_out_browser_to_sign_in(analyst):
    browser = Client().get("/api/v1/docs/", HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert browser.status_code == 302
    assert browser["Location"] == "/accounts/login/?next=/api/v1/docs/"
    assert Client().get("/api/v1/docs/").status_code == 401  # an API client: as before
    client = Client()
    sign_in(client, "analyst")
    assert client.get("/api/v1/docs/", HTTP_ACCEPT="text/html").status_code == 200


def test_an_ipv6_client_cannot_dodge_the_count_by_changing_address_within_its_64(analyst):
    for host in range(5):
        attempt(from_address(f"2001:db8:1:2::{host + 1}"), "analyst", "guess")
    refused = attempt(from_address("2001:db8:1:2:ffff::9"), "analyst", PASSWORD)
    assert not signed_in(refused)
    assert SignInThrottle.objects.filter(key="user:analyst|ip:2001:db8:1:2::/64").exists()
    assert signed_in(attempt(from_address("2001:db8:1:3::1"), "analyst", PASSWORD))


def change_password(client: Client, old: str, new: str = "N3w-pass!"):
    return client.post(
        "/accounts/password/",
        {"old_password": old, "new_password1": new, "new_password2": new},
    )


def test_guessing_the_old_password_of_an_open_session_is_throttled_too(analyst):
    # Someone at a session left open must not find its password by trying old ones.
    session = from_address("203.0.113.9")
    session.force_login(analyst)
    for _ in range(5):
        wrong = change_password(session, "guess")
        assert wrong.status_code == 200
        assert "old password was entered incorrectly" in html.unescape(wrong.content.decode())
    refused = change_password(session, PASSWORD)  # even the right one, now
    assert refused.status_code == 200
    assert "Too many failed sign-ins for this username from your address" in html.unescape(
        refused.content.decode()
    )
    analyst.refresh_from_db()
    assert analyst.check_password(PASSWORD)  # not changed
    # The same block stops signing in as them from that address, not from elsewhere.
    assert not signed_in(attempt(from_address("203.0.113.9"), "analyst", PASSWORD))
    assert signed_in(attempt(from_address("198.51.100.7"), "analyst", PASSWORD))
    # Lifted: the right old password changes it and clears the count.
    SignInThrottle.objects.all().delete()
    assert change_password(session, PASSWORD).status_code == 302
    analyst.refresh_from_db()
    assert analyst.check_password("N3w-pass!")


def test_the_admins_change_password_link_leads_to_the_throttled_page(analyst):
    client = Client()
    client.force_login(make_user(username="boss", is_superuser=True, password=PASSWORD))
    admin_index = client.get("/admin/").content.decode()
    assert 'href="/admin/password_change/"' in admin_index
    response = client.get("/admin/password_change/")
    assert response.status_code == 302 and response["Location"] == "/accounts/password/"
