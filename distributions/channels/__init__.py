"""Channels: how a distribution line reaches a person (email now; SMS has its own modules).

Each channel exposes `send(line) -> SendResult` and raises `SendError` saying whether
the failure is temporary (try again later) or permanent (record it and stop).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class SendError(Exception):
    """A provider refused or could not take a message.

    `temporary=True`: the same message may go through later (provider down, rate
    limit, network); the line is retried with back-off. Otherwise it fails for good.
    """

    def __init__(self, message: str, *, temporary: bool):
        super().__init__(message)
        self.message = message
        self.temporary = temporary
