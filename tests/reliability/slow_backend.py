"""A slow outbox email backend, for worker processes started by the reliability tests.

It subclasses the outbox backend, so xmflows still recognises it as one that can be
asked whether an interrupted send happened (distributions.channels.email.find_sent),
and sleeps XMFLOWS_TEST_SEND_SECONDS before storing each message: long enough for a
test to kill the worker while sends are in flight. Selected with
EMAIL_BACKEND=tests.reliability.slow_backend.SlowOutboxBackend in the worker's
environment (the worker runs from the project root, so `tests` is importable).
"""

import os
import time

from distributions.backends import OutboxEmailBackend


class SlowOutboxBackend(OutboxEmailBackend):
    def send_messages(self, email_messages) -> int:
        time.sleep(float(os.environ.get("XMFLOWS_TEST_SEND_SECONDS", "0.2")))
        return super().send_messages(email_messages)
