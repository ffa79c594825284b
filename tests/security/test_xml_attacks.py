"""The XML attack corpus through the real endpoint: refused fast, in bounded memory, and blind.

tests/xmflows/test_soap.py proves the parser alone refuses each attack; this posts
each one to a real event URL, as an attacker who found it would, and measures the
whole request: a SOAP Client fault (never an Ack, never a 5xx of our own), under a
second, under 64 MB of Python allocations (tracemalloc peak), no byte of a canary
file in the answer or the database, and no connection to a listening canary port.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from tests.conftest import fixture_bytes
from tests.factories import make_workflow, post_soap
from tests.figures import record
from xmflows.models import Delivery, Notification

pytestmark = pytest.mark.django_db

CANARY = "CANARY-d41d8cd9-root:x:0:0"
# Not refused, because nothing in them acts: lxml never processes XInclude or
# stylesheet instructions, so they arrive as an empty field / a skipped instruction.
INERT = {"XInclude", "processing instruction to a stylesheet"}
MAX_SECONDS = 1.0
MAX_PEAK_BYTES = 64 * 1024 * 1024
BASE = fixture_bytes("salesforce/case_closed.xml").decode()


def with_doctype(doctype: str, subject: str = "x") -> bytes:
    body = BASE.replace("?>\n", f"?>\n{doctype}\n", 1)
    return body.replace(
        "<sf:Subject>Parcel arrived damaged</sf:Subject>", f"<sf:Subject>{subject}</sf:Subject>"
    ).encode()


def attacks(canary_file: Path, port: int) -> dict[str, bytes]:
    url = f"http://127.0.0.1:{port}"
    lol = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    quadratic = "A" * 100_000
    return {
        "external entity to a file": with_doctype(
            f'<!DOCTYPE e [<!ENTITY x SYSTEM "{canary_file.as_uri()}">]>', "&x;"
        ),
        "external entity to a URL": with_doctype(
            f'<!DOCTYPE e [<!ENTITY x SYSTEM "{url}/entity">]>', "&x;"
        ),
        "external DTD": with_doctype(f'<!DOCTYPE e SYSTEM "{url}/external.dtd">'),
        "public DTD": with_doctype(f'<!DOCTYPE e PUBLIC "-//X//DTD X//EN" "{url}/p.dtd">'),
        "parameter entities": with_doctype(
            f'<!DOCTYPE e [<!ENTITY % p SYSTEM "{url}/param.dtd"> %p;'
            f' <!ENTITY % f SYSTEM "{canary_file.as_uri()}"> %f;]>'
        ),
        "entity expansion (billion laughs)": with_doctype(f"<!DOCTYPE e [{lol}]>", "&lol9;"),
        "quadratic blow-up": with_doctype(
            f'<!DOCTYPE e [<!ENTITY a "{quadratic}">]>', "&a;" * 15_000
        ),
        "deeply nested elements": with_doctype("", "<a>" * 50_000 + "</a>" * 50_000),
        # Up to XMFLOWS_MAX_MESSAGE_BYTES a long field is just a long field; beyond, the
        # message is refused by its size before it is parsed.
        "huge text node": with_doctype("", "x" * 3_000_000),
        "wrong encoding declaration": BASE.replace('encoding="UTF-8"', 'encoding="UTF-16"')
        .replace("Parcel", "Pärcel")
        .encode(),
        "DOCTYPE hidden in UTF-7": (
            b'<?xml version="1.0" encoding="UTF-7"?>'
            + f'<!DOCTYPE e [<!ENTITY x SYSTEM "{canary_file.as_uri()}">]><e>&x;</e>'.replace(
                "<", "+ADw-"
            ).encode()
        ),
        "DOCTYPE in UTF-16": with_doctype(
            f'<!DOCTYPE e [<!ENTITY x SYSTEM "{canary_file.as_uri()}">]>', "&x;"
        )
        .decode()
        .replace('encoding="UTF-8"', 'encoding="UTF-16"')
        .encode("utf-16"),
        "XInclude": BASE.replace(
            "<sf:Subject>Parcel arrived damaged</sf:Subject>",
            '<sf:Subject><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
            f'href="{canary_file.as_uri()}" parse="text"/></sf:Subject>',
        ).encode(),
        "processing instruction to a stylesheet": BASE.replace(
            "?>\n", f'?>\n<?xml-stylesheet type="text/xsl" href="{url}/x.xsl"?>\n', 1
        ).encode(),
    }


@pytest.fixture
def canary_port():
    """A local port that records every connection: any network fetch is caught."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    hits: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            hits.append("connected")
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_every_xml_attack_is_refused_fast_in_bounded_memory_and_blind(
    client, admin_user, tmp_path, canary_port
):
    port, hits = canary_port
    canary_file = tmp_path / "passwd"
    canary_file.write_text(f"{CANARY}\n", encoding="utf-8")
    workflow = make_workflow(owner=admin_user)
    slow, heavy, answered = [], [], []
    corpus = attacks(canary_file, port)
    for name, body in corpus.items():
        tracemalloc.start()
        began = time.perf_counter()
        response = post_soap(client, workflow, body)
        seconds = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if seconds > MAX_SECONDS:
            slow.append(f"{name}: {seconds:.2f}s")
        if peak > MAX_PEAK_BYTES:
            heavy.append(f"{name}: {peak / 1e6:.0f} MB")
        expected_ack = name in INERT
        acked = response.status_code == 200 and b"<Ack>true</Ack>" in response.content
        refused = response.status_code == 500 and b"soapenv:Client" in response.content
        if (expected_ack and not acked) or (not expected_ack and not refused):
            answered.append(f"{name}: {response.status_code} {response.content[:200]!r}")
        assert CANARY.encode() not in response.content, name
    assert not answered, answered
    assert not slow, slow
    assert not heavy, heavy
    assert hits == [], "an attack made the server connect out"
    for payload in Notification.objects.values_list("payload", flat=True):
        assert CANARY not in str(payload)
    # Both inert ones carry case_closed.xml's notification id: the second is a duplicate.
    assert Notification.objects.count() == 1
    for excerpt, reason in Delivery.objects.values_list("body_excerpt", "reason"):
        assert CANARY not in excerpt + reason
    assert Delivery.objects.filter(outcome="rejected").count() == len(corpus) - len(INERT)
    record(
        "XML attacks through the endpoint",
        attacks=len(corpus),
        refused=len(corpus) - len(INERT),
        inert_accepted=len(INERT),
        files_read=0,
        network_calls=0,
    )
