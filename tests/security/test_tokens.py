"""Token URLs and survey links cannot be guessed, enumerated, or read by those not meant to.

Event URLs (/events/salesforce/<token>/) let whoever holds them start a workflow;
personal survey links (/s/<token>/, /o/<token>/) let whoever holds them answer or opt
out as that person. So: at least 128 random bits each, exact-match lookups (no
prefix, case or wildcard tricks), the same 404 for every wrong token, and no API
response that hands them to a signed-in user who is neither staff nor the owner.
"""

from __future__ import annotations

import json
import math
import string

import pytest
from django.test import Client

from surveys.models import new_link_token
from tests.figures import record
from tests.security.urls import all_url_cases, url_for
from tests.security.world import build_world
from xmflows.models import new_event_token

pytestmark = pytest.mark.django_db

URL_SAFE = set(string.ascii_letters + string.digits + "-_")


@pytest.mark.parametrize("make_token", [new_event_token, new_link_token], ids=["event", "link"])
def test_tokens_carry_at_least_128_random_bits(make_token):
    tokens = [make_token() for _ in range(5000)]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert set(token) <= URL_SAFE, token
        # Base64url: 6 bits per character (secrets.token_urlsafe), never padded.
        assert len(token) * math.log2(len(URL_SAFE)) >= 128, token
    # Random, not sequential: every position takes many values across tokens.
    for position in range(len(tokens[0])):
        assert len({token[position] for token in tokens}) > 32, position


def wrong_variants(token: str) -> list[str]:
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    return [
        flipped,
        token[:-1],  # a prefix
        token + "x",
        token.swapcase(),
        token[:8] + "%",  # SQL wildcards must not match
        "_" * len(token),
        "%",
        token[: len(token) // 2],
        "0" * len(token),
    ]


def test_wrong_tokens_get_the_same_404_as_unknown_ones(settings):
    world = build_world(settings)
    client = Client()
    event, link = world.workflow.event.token, world.link.token
    attempts = 0
    for variant in wrong_variants(event):
        response = client.post(
            f"/events/salesforce/{variant}/", b"<x/>", content_type="text/xml; charset=utf-8"
        )
        assert response.status_code == 404, variant
        assert b"unknown event URL" in response.content
        attempts += 1
    bodies = set()
    for variant in wrong_variants(link):
        for prefix in ("/s/", "/o/"):
            response = client.get(f"{prefix}{variant}/")
            assert response.status_code == 404, (prefix, variant)
            bodies.add(response.content)
            attempts += 1
    # The real ones still work: the 404s above are about the token, not the URL.
    assert client.get(f"/s/{link}/").status_code == 200
    assert client.get(f"/o/{link}/").status_code == 200
    # Nothing in a 404 tells one wrong token from another.
    assert len(bodies) == 1, bodies
    record("token guessing", attempts=attempts, found=0)


def _api_get_paths(world) -> list[str]:
    """Every GET-able API URL of the matrix, filled with the world's objects."""
    paths = []
    for case in all_url_cases():
        if case.route.startswith("api/v1/") and "format" not in case.params:
            paths.append(url_for(case, world))
    return sorted(set(paths))


def test_no_api_response_gives_a_nonstaff_user_the_tokens_of_others(settings):
    world = build_world(settings)
    secrets = {
        "event token": world.workflow.event.token,
        "survey link token": world.link.token,
        "the owner's API token": world.tokens["owner"],
        "a staff member's API token": world.tokens["other"],
        "SECRET_KEY": settings.SECRET_KEY,
    }
    client = world.token_client("nonstaff")
    leaks = []
    checked = 0
    for path in _api_get_paths(world):
        for query in ("", "?page_size=500"):
            response = client.get(path + query)
            body = response.content.decode(errors="replace")
            checked += 1
            leaks += [f"{path}: {name}" for name, value in secrets.items() if value in body]
    assert not leaks, leaks
    # What they do see: the workflow and its runs, without the secrets.
    (workflow,) = client.get("/api/v1/workflows/").json()["results"]
    assert workflow["event_url"] is None
    (run,) = client.get("/api/v1/runs/").json()["results"]
    assert [task["output"].get("survey_link") for task in run["tasks"]] == [None]
    record("token leaks to non-staff", responses_checked=checked, leaks=0)


def test_staff_and_owners_see_the_secrets_they_need(settings):
    """Why the redaction cannot be a blanket one: the owner pastes the event URL into
    Salesforce, and staff follow a run to the link it sent."""
    world = build_world(settings)
    event_url = world.workflow.event.url
    for role in ("owner", "other", "superuser"):
        client = world.token_client(role)
        (workflow,) = client.get("/api/v1/workflows/").json()["results"]
        assert workflow["event_url"] == event_url, role
        (run,) = client.get("/api/v1/runs/").json()["results"]
        assert world.link.token in json.dumps(run), role
    # A non-staff integrator who owns a workflow sees its event URL.
    integrator = world.token_client("nonstaff")
    created = integrator.post(
        "/api/v1/workflows/",
        {"name": "Mine", "event": {"type": "salesforce_outbound_message", "object": "Lead"}},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["event_url"].startswith("http://testserver/events/salesforce/")
    mine = integrator.get(f"/api/v1/workflows/{created.json()['id']}/").json()
    assert mine["event_url"] == created.json()["event_url"]
