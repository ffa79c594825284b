"""Outbox email backend: stores every message in the database instead of sending it."""

import uuid
from email.header import decode_header, make_header

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage


class OutboxEmailBackend(BaseEmailBackend):
    """The development default: admins read "sent" mail on the outbox page and API.

    Like anymail's backends it sets `message.anymail_status.message_id`-style data
    on the message (`outbox_message_id`), so callers can store a provider id.
    """

    def send_messages(self, email_messages: list[EmailMessage]) -> int:
        from distributions.models import Channel, OutboxMessage

        sent = 0
        for message in email_messages:
            html = ""
            for content, mimetype in getattr(message, "alternatives", []) or []:
                if mimetype == "text/html":
                    html = content
            if getattr(message, "content_subtype", "") == "html":
                html = message.body
            message_id = f"outbox-{uuid.uuid4().hex}"
            for recipient in message.recipients():
                OutboxMessage.objects.create(
                    channel=Channel.EMAIL,
                    to=recipient,
                    from_address=_readable(message.from_email or ""),
                    subject=message.subject or "",
                    body=message.body or "",
                    html_body=html,
                    headers={k: str(v) for k, v in (message.extra_headers or {}).items()},
                    provider_message_id=message_id,
                )
            message.outbox_message_id = message_id
            sent += 1
        return sent


def _readable(header: str) -> str:
    """'=?utf-8?q?Support_Zo=C3=AB?= <a@example.com>' as a person reads it: the outbox
    shows what the recipient's mail program would."""
    try:
        return str(make_header(decode_header(header)))
    except (ValueError, LookupError):
        return header
