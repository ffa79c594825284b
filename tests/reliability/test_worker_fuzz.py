"""Fuzzing the worker side: random field values POSTed to the demo workflow, then its jobs run.

tests/xmflows/test_endpoint.py fuzzes what the endpoint accepts; here the values get
through (or are refused as bad input) and then feed the engine, the contact upsert,
piped text, the email and the send: unicode of every plane, control characters,
huge strings, header and SQL and template injections, CSV formulas. Whatever comes,
the endpoint answers an Ack or a Client fault (never a Server fault), and every run
ends succeeded, failed or skipped with its reason — never an unhandled exception in
a job ("internal error"), never left queued or running, no line left mid-send.
"""

import itertools
import logging
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from distributions.models import Recipient
from tests.figures import record
from tests.reliability.support import demo_notification, demo_path, message, seed_demo
from xmflows.models import Run, TaskRun
from xmflows.soap import SOAPENV_NS

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 120
INJECTIONS = [
    "'; DROP TABLE contacts_contact; --",
    '" OR 1=1 --',
    "${event://ContactEmail}",
    "${l://SurveyLink?d=click}${e://Field/CaseNumber}${m://Email}",
    "${",
    "}${unknown://x}",
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    '=HYPERLINK("http://evil.example","x")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    "%(password)s",
    "a@example.org\r\nBcc: victim@example.org",
    "Subject: hi\nX-Injected: 1",
    "ok@example.org, other@example.org",
    '"quoted"@example.org',
    "user@[127.0.0.1]",
    "@example.org",
    "a" * 300 + "@example.org",
    "+1 (415) 555-0100 ext. 99",
    "+99999999999999999999",
    "../../etc/passwd",
    "\u202eevil\u202c",
    "\ufeffBOM",
    "null",
    "None",
    "",
]


def _is_xml_char(char: str) -> bool:
    code = ord(char)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or (0x10000 <= code <= 0x10FFFF)
    )


# Characters XML 1.0 allows, from every plane (the builder escapes &, <, > and CR).
XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=0x09).filter(
        lambda char: _is_xml_char(char)
    ),
    max_size=60,
)
HUGE = st.builds(
    lambda char, count: char * count, st.sampled_from("xé漢😀"), st.integers(200, 40_000)
)
# Whitespace XML can carry, and (rarely) control characters it cannot: those messages
# must be refused as bad input.
ODD_SPACE = st.text(alphabet=st.sampled_from("\t\n\r \x85\u2028\u00a0"), max_size=10)
NOT_XML = st.text(alphabet=st.sampled_from("\x01\x0b\x0c\x1f\ufffe"), min_size=1, max_size=3)
FIELD_VALUES = st.one_of(
    st.none(),
    XML_TEXT,
    XML_TEXT,
    st.sampled_from(INJECTIONS),
    st.sampled_from(INJECTIONS),
    HUGE,
    ODD_SPACE,
    st.builds(str.__add__, XML_TEXT, st.sampled_from(INJECTIONS)),
)
FIELDS = [
    "First_Name__c",
    "Last_Name__c",
    "ContactEmail",
    "ContactPhone",
    "ContactId",
    "CaseNumber",
    "Priority",
    "Subject",
]
_numbers = itertools.count(1)


@st.composite
def notifications(draw) -> list[dict]:
    batch = []
    for _ in range(draw(st.integers(1, 3))):
        number = next(_numbers)
        overrides = {name: draw(FIELD_VALUES) for name in draw(st.sets(st.sampled_from(FIELDS)))}
        if draw(st.sampled_from([False] * 19 + [True])):  # 1 in 20; integers() favours ends
            overrides[draw(st.sampled_from(FIELDS))] = draw(NOT_XML)
        # A valid address now and then, so that runs reach the email and the send.
        if draw(st.booleans()):
            overrides.setdefault("ContactEmail", f"fuzz{number}@example.org")
        batch.append(demo_notification(number, prefix="fuzz", **overrides))
    return batch


class Tally:
    posts = 0
    acked = 0
    client_faults = 0
    runs: Counter = Counter()
    reasons: Counter = Counter()
    faults: Counter = Counter()


@pytest.fixture
def demo():
    return seed_demo()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=notifications())
def test_fuzzed_field_values_never_crash_a_job(client, demo, caplog, batch):
    caplog.set_level(logging.ERROR)
    caplog.clear()  # one caplog for all of hypothesis' examples
    before = set(Run.objects.values_list("id", flat=True))
    response = client.post(
        demo_path(demo),
        message(batch),
        content_type="text/xml; charset=utf-8",
        HTTP_SOAPACTION='""',
    )
    Tally.posts += 1
    values = [v for n in batch for v in n["fields"].values() if v is not None]
    if response.status_code == 200:
        assert b"<Ack>true</Ack>" in response.content
        Tally.acked += 1
    else:
        # Only characters XML cannot carry may be refused, and as bad input.
        assert response.status_code == 500, response.content[:300]
        fault = etree.fromstring(response.content).find(
            f"{{{SOAPENV_NS}}}Body/{{{SOAPENV_NS}}}Fault"
        )
        assert fault.findtext("faultcode") == "soapenv:Client", fault.findtext("faultstring")
        assert not all(_is_xml_char(c) for v in values for c in v), fault.findtext("faultstring")
        Tally.client_faults += 1
        Tally.faults[fault.findtext("faultstring")[:60]] += 1
        return
    runs = Run.objects.exclude(id__in=before)
    assert runs.count() == len({n["id"] for n in batch})
    for run in runs:
        assert run.status in {"succeeded", "failed", "skipped"}, (run.status, run.reason)
        Tally.runs[run.status] += 1
        if run.reason:
            Tally.reasons[run.reason[:70]] += 1
        if run.status != "succeeded":
            assert run.reason, run.pk
    crashed = TaskRun.objects.filter(run__in=runs, error__startswith="internal error")
    assert not crashed.exists(), list(crashed.values_list("error", flat=True))
    lines = Recipient.objects.filter(workflow_run_id__in=runs.values("id"))
    assert not lines.filter(status="pending").exists(), list(lines.values("status", "error"))
    assert not lines.filter(sending_started_at__isnull=False, status="pending").exists()
    for line in lines.exclude(status="sent"):
        assert line.error, line.pk
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def test_fuzz_tally_recorded():
    """Reports the fuzz figures (runs after the fuzz test in file order)."""
    if Tally.posts:
        record(
            "worker-side fuzzing (demo workflow)",
            requests_fuzzed=Tally.posts,
            acked=Tally.acked,
            client_faults=Tally.client_faults,
            runs_succeeded=Tally.runs["succeeded"],
            runs_failed=Tally.runs["failed"],
            runs_skipped=Tally.runs["skipped"],
            crashed_jobs=0,
            stuck_runs=0,
        )
        print("\nfuzzed runs' reasons:", *Tally.reasons.most_common(12), sep="\n  ")
        print("refusals:", *Tally.faults.most_common(6), sep="\n  ")
