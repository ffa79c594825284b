"""Email channel: one Django message per line, sent through EMAIL_BACKEND (django-anymail).

The backend decides the provider (CONVENTIONS.md "Channels"): the outbox in
development, any anymail ESP in production, anymail's test backend in tests.
"""

from __future__ import annotations

import html
import re
import smtplib
import socket
from datetime import datetime, timedelta
from email.utils import formataddr
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import requests
from anymail.exceptions import AnymailError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.utils.module_loading import import_string
from urllib3.exceptions import ProtocolError

from distributions.channels import SendError, SendResult

if TYPE_CHECKING:
    from distributions.models import Recipient

# Lets the send be found again (outbox lookup) and ties provider events back to the
# line when an ESP reports our metadata instead of its own message id.
RECIPIENT_HEADER = "X-Xmflows-Recipient"
METADATA_KEY = "xmflows_recipient"


def from_header(name: str, address: str) -> str:
    # formataddr quotes or encodes a name holding commas, quotes or non-ASCII text.
    return formataddr((name, address)) if name else address


def build_message(line: Recipient) -> EmailMultiAlternatives:
    """The email for a line, from its frozen rendered copy (never re-rendered)."""
    content = getattr(line, "message", None)
    body_html = content.body_html if content else ""
    body_text = content.body_text if content else ""
    snapshot = (content.snapshot if content else None) or {}
    opt_out_url = snapshot.get("links", {}).get("OptOutURL", "")
    headers = {RECIPIENT_HEADER: str(line.pk)}
    if opt_out_url:
        # RFC 2369 / RFC 8058: mail clients show an "Unsubscribe" button, and the
        # one-click form lets them unsubscribe with a POST and no page.
        headers["List-Unsubscribe"] = f"<{opt_out_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = EmailMultiAlternatives(
        subject=line.subject,
        body=body_text or html_to_text(body_html),
        from_email=from_header(line.from_name, line.from_address),
        to=[line.to_address],
        reply_to=[line.reply_to] if line.reply_to else None,
        headers=headers,
    )
    if body_html:
        message.attach_alternative(body_html, "text/html")
    # anymail passes metadata to the ESP, which echoes it in tracking webhooks.
    message.metadata = {METADATA_KEY: str(line.pk)}
    message.track_opens = True
    return message


def send(line: Recipient) -> SendResult:
    """Send one line's email; raise SendError saying whether to try again."""
    message = build_message(line)
    try:
        connection = get_connection(fail_silently=False)
        sent = connection.send_messages([message])
    except Exception as error:  # every backend has its own exceptions: classify them
        raise classify_error(error) from error
    if not sent:
        # A pre_send signal cancelled it, or the backend dropped it without an error.
        raise SendError("the email backend did not send the message", temporary=False)
    return SendResult(provider_message_id=provider_message_id(message, line))


def provider_message_id(message: EmailMultiAlternatives, line: Recipient) -> str:
    status = getattr(message, "anymail_status", None)
    if status is not None and status.message_id is not None:
        message_id = status.message_id
        if isinstance(message_id, set):  # one recipient, so one id; be safe anyway
            message_id = ",".join(sorted(str(part) for part in message_id))
        return str(message_id)
    outbox_id = getattr(message, "outbox_message_id", None)
    if outbox_id:
        return str(outbox_id)
    # SMTP, console and locmem backends report no id: any non-empty value records
    # "sent" so the line is never sent again.
    return f"{settings.EMAIL_BACKEND.rsplit('.', 1)[-1]}:{line.pk}"


def classify_error(error: BaseException) -> SendError:
    """Temporary (retry with back-off) or permanent (Failed), with the provider's words.

    Temporary: HTTP 5xx and 429, connection errors and timeouts, SMTP 4xx and lost
    connections. Permanent: HTTP 4xx, refused or invalid recipients, anything else
    (a retry would only repeat it).
    """
    text = describe_error(error)
    if isinstance(error, AnymailRecipientsRefused | AnymailInvalidAddress):
        return SendError(text, temporary=False)
    if _is_read_timeout(error):
        # The provider had the whole request and did not answer in time: it may well
        # have accepted the message. Sending again could deliver it twice, and a
        # duplicate survey is worse than a visible failure an admin can resend.
        return SendError(
            f"send outcome unknown: the provider did not answer in time after receiving "
            f"the message; not resent to avoid a duplicate ({text})",
            temporary=False,
        )
    if _is_network_problem(error):
        return SendError(text, temporary=True)
    status = getattr(error, "status_code", None)
    if isinstance(error, AnymailError) and status is not None:
        return SendError(text, temporary=status >= 500 or status == 429)
    if isinstance(error, smtplib.SMTPResponseException):
        return SendError(text, temporary=400 <= error.smtp_code < 500)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return SendError(text, temporary=False)
    if isinstance(error, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return SendError(text, temporary=True)
    return SendError(text, temporary=False)


def _is_read_timeout(error: BaseException) -> bool:
    """The request reached the provider but no answer came back: a read timeout, or
    the connection dropped after sending ("Connection aborted."). A connect timeout or
    a refused connection never reached it, so those stay safe to retry."""
    for candidate in (error, error.__cause__):
        if candidate is None:
            continue
        if isinstance(candidate, requests.ReadTimeout):
            return True
        if isinstance(candidate, requests.ConnectionError) and not isinstance(
            candidate, requests.ConnectTimeout
        ):
            reason = candidate.args[0] if candidate.args else None
            if isinstance(reason, ProtocolError):
                return True
    return False


def _is_network_problem(error: BaseException) -> bool:
    # anymail re-raises a requests exception as a class deriving from both
    # AnymailRequestsAPIError and the original (Timeout, ConnectionError), and chains it.
    for candidate in (error, error.__cause__):
        if candidate is None:
            continue
        if isinstance(candidate, requests.Timeout | requests.ConnectionError):
            return True
        if isinstance(candidate, socket.timeout | TimeoutError | ConnectionError):
            return True
    return False


def describe_error(error: BaseException) -> str:
    """The provider's own message, as readable as it gets; never raises."""
    try:
        text = str(error)
    except Exception:  # anymail's __str__ reads a response that a bare error lacks
        text = " ".join(str(arg) for arg in getattr(error, "args", ()))
        status = getattr(error, "status_code", None)
        if status is not None:
            text = f"{text} (HTTP {status})".strip()
    text = re.sub(r"\s+\n", "\n", text).strip()
    return text or type(error).__name__


def find_sent(line: Recipient) -> str | None:
    """After a crash during the provider call: the outbox's id for the line's message,
    or None when the outbox has none (then it was not sent).

    Only meaningful when can_look_up_sends(): a real ESP offers no such lookup.
    """
    from distributions.models import Channel, OutboxMessage

    since: datetime | None = line.sending_started_at
    candidates = OutboxMessage.objects.filter(channel=Channel.EMAIL, to=line.to_address)
    if since is not None:
        candidates = candidates.filter(created_at__gte=since - timedelta(minutes=1))
    for message_id, headers in candidates.values_list("provider_message_id", "headers"):
        if str((headers or {}).get(RECIPIENT_HEADER)) == str(line.pk):
            return message_id or f"outbox:{line.pk}"
    return None


def can_look_up_sends() -> bool:
    """Whether find_sent can settle an interrupted send (only the outbox can)."""
    from distributions.backends import OutboxEmailBackend

    try:
        return issubclass(import_string(settings.EMAIL_BACKEND), OutboxEmailBackend)
    except ImportError:
        return False


class _TextExtractor(HTMLParser):
    """HTML to readable plain text: paragraphs become lines, links show their URL."""

    _BREAKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6"})
    _SKIP = frozenset({"style", "script", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href: list[str | None] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")
        elif tag == "a":
            self._href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BREAKS:
            self.parts.append("\n")
        elif tag == "a" and self._href:
            href = self._href.pop()
            if href:
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(body: str) -> str:
    """The plain-text alternative of an HTML body (no Django, no network)."""
    if not body:
        return ""
    if "<" not in body:
        return html.unescape(body)
    parser = _TextExtractor()
    parser.feed(body)
    parser.close()
    text = "".join(parser.parts)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    # Collapse runs of blank lines left by nested blocks.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
