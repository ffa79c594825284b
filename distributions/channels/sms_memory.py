"""In-memory SMS backend for tests: every "sent" text is appended to `outbox`.

Like django.core.mail.outbox: tests clear it (`outbox.clear()`) and read it. It
answers TwiML replies by recording them too (see SmsBackend.delivers_twiml_replies).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from distributions.channels.sms import OutgoingSms, SmsBackend


@dataclass(frozen=True)
class SentSms:
    sid: str
    to: str
    body: str
    status_callback: str
    recipient_id: int | None


outbox: list[SentSms] = []


class MemoryBackend(SmsBackend):
    can_look_up_sends = True

    def send(self, message: OutgoingSms) -> str:
        # Shaped like a Twilio message SID: "SM" and 32 hex digits.
        sid = "SM" + uuid.uuid4().hex
        outbox.append(
            SentSms(
                sid=sid,
                to=message.to,
                body=message.body,
                status_callback=message.status_callback,
                recipient_id=message.recipient_id,
            )
        )
        return sid

    def find_sent(self, *, recipient_id: int, to: str, since: datetime | None) -> str | None:
        for sent in outbox:
            if sent.recipient_id == recipient_id and sent.to == to:
                return sent.sid
        return None
