"""SMS channel: the backend interface chosen by SMS_BACKEND, and the send of one line's text.

Backends (CONVENTIONS.md "Channels"), one small interface each:
- `distributions.channels.sms_twilio.TwilioBackend`: Twilio, the only module that
  imports `twilio`;
- `distributions.channels.sms_outbox.OutboxBackend`: the development default, the
  messages land in the outbox page and API;
- `distributions.channels.sms_memory.MemoryBackend`: tests read `sms_memory.outbox`.

This module offers the same functions as the email channel (`send(line)`,
`can_look_up_sends()`, `find_sent(line)`), so distributions.services sends a line
without caring which channel it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.db import DatabaseError
from django.utils.module_loading import import_string

from distributions.channels import SendError, SendResult

if TYPE_CHECKING:
    from distributions.models import Recipient

# The outbox keeps the line id with each message, as the email outbox does, so an
# interrupted send can be looked up.
RECIPIENT_HEADER = "X-Xmflows-Recipient"
STATUS_CALLBACK_PATH = "/hooks/twilio/status/"
INBOUND_PATH = "/hooks/twilio/inbound/"


@dataclass(frozen=True)
class OutgoingSms:
    """One text message to send."""

    to: str
    body: str
    # Where the provider reports delivery; it carries our line id (?line=), so a
    # status for a send whose provider id was never recorded still finds its line.
    status_callback: str = ""
    recipient_id: int | None = None


class SmsSendError(SendError):
    """A provider refused or could not take a text message.

    `code` is the provider's error code (Twilio's 21211, 21610 …) when it gave one;
    `opted_out` says the number itself refuses messages (it replied STOP), which the
    caller records as the contacts' SMS opt-out.
    """

    def __init__(
        self, message: str, *, temporary: bool, code: int | None = None, opted_out: bool = False
    ):
        super().__init__(message, temporary=temporary)
        self.code = code
        self.opted_out = opted_out


class SmsBackend:
    """Subclass and implement `send`; raise SmsSendError saying whether to retry."""

    # Whether the provider itself delivers the <Message> elements of a TwiML answer to
    # an inbound SMS. Twilio does; the outbox and memory backends have no provider
    # reading the answer, so replies to inbound messages go through send() instead,
    # and the conversation shows in the outbox as it would on the phone.
    delivers_twiml_replies: ClassVar[bool] = False
    # Whether find_sent can tell if an interrupted send happened (only backends that
    # write to our own database or memory can).
    can_look_up_sends: ClassVar[bool] = False

    def send(self, message: OutgoingSms) -> str:
        """Send it; return the provider's message id."""
        raise NotImplementedError

    def find_sent(self, *, recipient_id: int, to: str, since: datetime | None) -> str | None:
        """The provider id of the line's message if it was sent, else None."""
        return None


def get_backend() -> SmsBackend:
    """A backend instance of settings.SMS_BACKEND (read on every call: tests switch it)."""
    backend_class = import_string(settings.SMS_BACKEND)
    return backend_class()


def status_callback_url(recipient_id: int | None) -> str:
    """Our public URL for the provider's status callbacks, with our line id."""
    if recipient_id is None:
        return ""
    return f"{settings.PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}?line={recipient_id}"


def send_text(*, to: str, body: str, recipient_id: int | None = None) -> str:
    """Send one text through the configured backend; return the provider's id.

    Raises SmsSendError. A backend bug becomes a permanent error (retrying repeats it);
    a database error of the outbox a temporary one.
    """
    backend = get_backend()
    message = OutgoingSms(
        to=to,
        body=body,
        status_callback=status_callback_url(recipient_id),
        recipient_id=recipient_id,
    )
    try:
        provider_id = backend.send(message)
    except SmsSendError:
        raise
    except DatabaseError as error:
        raise SmsSendError(f"could not store the message: {error}", temporary=True) from error
    except Exception as error:
        raise SmsSendError(f"{type(error).__name__}: {error}", temporary=False) from error
    if not provider_id:
        raise SmsSendError("the SMS backend returned no message id", temporary=False)
    return str(provider_id)


# --- The channel interface distributions.services calls ---------------------------------


def send(line: Recipient) -> SendResult:
    """Send a line's frozen text (never re-rendered) to its number."""
    content = getattr(line, "message", None)
    body = content.body_text if content is not None else ""
    if not body.strip():
        raise SmsSendError("the text message is empty", temporary=False)
    return SendResult(
        provider_message_id=send_text(to=line.to_address, body=body, recipient_id=line.pk)
    )


def can_look_up_sends() -> bool:
    try:
        return bool(import_string(settings.SMS_BACKEND).can_look_up_sends)
    except ImportError:
        return False


def find_sent(line: Recipient) -> str | None:
    """After a crash during the provider call: the id of the line's message, or None
    when it was not sent. Only meaningful when can_look_up_sends()."""
    return get_backend().find_sent(
        recipient_id=line.pk, to=line.to_address, since=line.sending_started_at
    )
