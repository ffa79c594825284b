"""Fixtures of the distribution tests: the outbox backend, as in development."""

import pytest

OUTBOX_BACKEND = "distributions.backends.OutboxEmailBackend"


@pytest.fixture(autouse=True)
def outbox_email_backend(settings):
    # pytest-django swaps in Django's locmem backend; these tests read what was sent
    # where users do (the outbox API), so they use the development default instead.
    settings.EMAIL_BACKEND = OUTBOX_BACKEND
