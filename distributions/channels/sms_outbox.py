"""Outbox SMS backend: stores every text in the database instead of sending it.

The development default (no TWILIO_ACCOUNT_SID): admins read the texts on /outbox/
and in /api/v1/outbox/?channel=sms, next to the outbox emails.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings

from distributions.channels.sms import RECIPIENT_HEADER, OutgoingSms, SmsBackend


class OutboxBackend(SmsBackend):
    can_look_up_sends = True

    def send(self, message: OutgoingSms) -> str:
        from distributions.models import Channel, OutboxMessage

        message_id = f"outbox-sms-{uuid.uuid4().hex}"
        headers = {}
        if message.recipient_id is not None:
            headers[RECIPIENT_HEADER] = str(message.recipient_id)
        OutboxMessage.objects.create(
            channel=Channel.SMS,
            to=message.to,
            from_address=(
                settings.TWILIO_FROM_NUMBER or settings.TWILIO_MESSAGING_SERVICE_SID or "outbox"
            ),
            body=message.body,
            headers=headers,
            provider_message_id=message_id,
        )
        return message_id

    def find_sent(self, *, recipient_id: int, to: str, since: datetime | None) -> str | None:
        from distributions.models import Channel, OutboxMessage

        candidates = OutboxMessage.objects.filter(channel=Channel.SMS, to=to)
        if since is not None:
            candidates = candidates.filter(created_at__gte=since - timedelta(minutes=1))
        # The first message of the line: a two-way survey's later questions carry the
        # same line id.
        for message_id, headers in candidates.order_by("id").values_list(
            "provider_message_id", "headers"
        ):
            if str((headers or {}).get(RECIPIENT_HEADER)) == str(recipient_id):
                return message_id or f"outbox:{recipient_id}"
        return None
