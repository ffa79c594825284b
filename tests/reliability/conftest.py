"""Fixtures of the reliability tests: the outbox as the email provider (real brokers and
workers: broker_env and start_cluster in tests/conftest.py)."""

import pytest

from tests.reliability.support import OUTBOX_BACKEND


@pytest.fixture(autouse=True)
def outbox_email(settings):
    # pytest-django swaps in Django's locmem backend; these tests count what reached
    # the "provider" where users would look: the outbox (one row per email sent).
    settings.EMAIL_BACKEND = OUTBOX_BACKEND
