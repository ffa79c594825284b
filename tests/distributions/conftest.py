"""Fixtures of the distribution tests: the outbox backend, as in development."""

import pytest

OUTBOX_BACKEND = "distributions.backends.OutboxEmailBackend"


@pytest.fixture(autouse=True)
def outbox_email_backend(settings):
    # pytest-django swaps in Django's locmem backend; these tests read what was sent
    # where users do (the outbox API), so they use the development default instead.
    settings.EMAIL_BACKEND = OUTBOX_BACKEND


# --- SMS (issue 5) ------------------------------------------------------------------------

MEMORY_SMS_BACKEND = "distributions.channels.sms_memory.MemoryBackend"
TWILIO_SMS_BACKEND = "distributions.channels.sms_twilio.TwilioBackend"
TWILIO_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TWILIO_AUTH_TOKEN = "twilio-auth-token-for-tests"
TWILIO_FROM_NUMBER = "+15005550006"


@pytest.fixture
def sms_memory_backend(settings):
    """Texts go to distributions.channels.sms_memory.outbox; Twilio is not configured,
    and its webhooks accept unsigned requests (the development setup, as run.sh's
    DEBUG gives it)."""
    from distributions.channels import sms_memory

    settings.SMS_BACKEND = MEMORY_SMS_BACKEND
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    settings.TWILIO_ACCEPT_UNSIGNED = True
    sms_memory.outbox.clear()
    yield sms_memory.outbox
    sms_memory.outbox.clear()


@pytest.fixture
def twilio_settings(settings):
    """Twilio configured as in production: the real backend, signed webhooks."""
    settings.SMS_BACKEND = TWILIO_SMS_BACKEND
    settings.TWILIO_ACCOUNT_SID = TWILIO_ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = TWILIO_AUTH_TOKEN
    settings.TWILIO_FROM_NUMBER = TWILIO_FROM_NUMBER
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    return settings
