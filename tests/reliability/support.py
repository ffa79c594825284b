"""Helpers of the reliability tests: the demo workflow, its messages, concurrent POSTs, counts."""

from __future__ import annotations

import io
import json
import queue
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.management import call_command
from django.db import connections
from django.test import Client

from tests.factories import post_soap
from tests.soap_builders import build_outbound_message

OUTBOX_BACKEND = "distributions.backends.OutboxEmailBackend"
SLOW_OUTBOX_BACKEND = "tests.reliability.slow_backend.SlowOutboxBackend"


def seed_demo() -> dict[str, Any]:
    """`manage.py seed_demo --json`: the demo workflow (save contact, email the survey)."""
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out)
    return json.loads(out.getvalue())


def demo_path(demo: dict[str, Any]) -> str:
    """The path of the demo event URL (PUBLIC_BASE_URL is http://testserver in tests)."""
    return "/" + demo["event_url"].split("://", 1)[1].split("/", 1)[1]


def demo_address(number: int, prefix: str = "person") -> str:
    return f"{prefix}{number:05d}@example.org"


def demo_notification(number: int, prefix: str = "person", **fields: str | None) -> dict:
    """One closed Case for the demo workflow; `number` makes the ids and the address."""
    values: dict[str, str | None] = {
        "Id": f"5008a{number:010d}AAB",
        "CaseNumber": f"{number:08d}",
        "ContactEmail": demo_address(number, prefix),
        "ContactId": f"0038a{number:010d}AAB",
        "First_Name__c": "Ada",
        "Last_Name__c": f"Number {number}",
        "Priority": "High",
        "IsClosed": "true",
        "Status": "Closed",
    }
    values.update(fields)
    return {"id": f"04l8a{number:010d}AAR", "fields": values}


def message(notifications: Sequence[dict]) -> bytes:
    return build_outbound_message(list(notifications))


@dataclass(frozen=True)
class Answer:
    status: int
    acked: bool
    body: bytes


def post_all(path: str, bodies: Iterable[bytes], *, threads: int) -> list[Answer]:
    """POST every body from `threads` threads at once, each with its own client and
    database connection (so the endpoint's deduplication meets real concurrency)."""
    work: queue.Queue[tuple[int, bytes]] = queue.Queue()
    for item in enumerate(bodies):
        work.put(item)
    answers: dict[int, Answer] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker() -> None:
        client = Client()
        try:
            start.wait(timeout=30)
            while True:
                try:
                    index, body = work.get_nowait()
                except queue.Empty:
                    return
                response = post_soap(client, path, body)
                answers[index] = Answer(
                    response.status_code, b"<Ack>true</Ack>" in response.content, response.content
                )
        except BaseException as error:
            errors.append(error)
        finally:
            # The test database cannot be flushed or dropped while a thread's
            # connection stays open.
            connections.close_all()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in pool), "a POST hung"
    assert not errors, errors
    return [answers[index] for index in sorted(answers)]


def outbox_per_address() -> Counter:
    """How many emails each address received (the outbox is the provider here)."""
    from distributions.models import Channel, OutboxMessage

    return Counter(OutboxMessage.objects.filter(channel=Channel.EMAIL).values_list("to", flat=True))


def run_statuses() -> Counter:
    from xmflows.models import Run

    return Counter(Run.objects.values_list("status", flat=True))


def line_statuses() -> Counter:
    from distributions.models import Recipient

    return Counter(Recipient.objects.values_list("status", flat=True))
