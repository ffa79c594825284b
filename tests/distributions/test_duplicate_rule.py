"""The 12-hour duplicate rule's look-up: which earlier lines count."""

from datetime import timedelta

import pytest
from django.utils import timezone

from distributions.models import Recipient
from distributions.services import distribution_create, duplicate_find
from tests.distributions.builders import make_line, make_survey
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _line(distribution, *, status: str, sent_hours_ago: float | None) -> Recipient:
    sent_at = None if sent_hours_ago is None else timezone.now() - timedelta(hours=sent_hours_ago)
    return make_line(
        distribution, status, sent_at=sent_at, message_hash=f"hash-{status}-{sent_hours_ago}"
    )


@pytest.mark.parametrize(
    ("status", "sent_hours_ago", "counts"),
    [
        ("sent", 11.9, True),
        ("delivered", 1, True),
        ("finished", 2, True),
        ("sent", 12.1, False),  # outside the window
        ("pending", None, True),  # about to go
        ("scheduled", None, True),
        ("failed", 1, False),  # never reached the person
        ("skipped", None, False),
        ("opted_out", None, False),
    ],
)
def test_which_lines_count_as_the_same_message_sent(status, sent_hours_ago, counts):
    survey = make_survey(owner=make_user())
    distribution = distribution_create(survey=survey, channel="email")
    line = _line(distribution, status=status, sent_hours_ago=sent_hours_ago)
    found = duplicate_find(message_hash=line.message_hash)
    assert (found.pk if found else None) == (line.pk if counts else None)
    assert duplicate_find(message_hash="another message") is None


def test_the_newest_matching_line_is_named():
    survey = make_survey(owner=make_user())
    first = distribution_create(survey=survey, channel="email")
    second = distribution_create(survey=survey, channel="email")
    _line(first, status="sent", sent_hours_ago=3)
    newest = _line(second, status="sent", sent_hours_ago=3)
    Recipient.objects.filter(distribution=first).update(message_hash=newest.message_hash)
    assert duplicate_find(message_hash=newest.message_hash).distribution_id == second.pk
