"""Sample Salesforce Outbound Messages for the event test button, written with lxml;
no Django imports.

The sample is what Salesforce would send for one record of the event's object: a
fresh notification id (so deduplication never swallows a second test), a sample
record id with the object's key prefix, the event's organization id (or a
placeholder when the event accepts any), and a plausible value per field name —
an address for *Email*, a given name for first-name fields, a date for *Date… —
adjusted so the workflow's own conditions pass where they can: a test should show
the tasks at work, not "condition not met".
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from xmflows.salesforce_objects import API_NAME, key_prefix

__all__ = [
    "PLACEHOLDER_ORGANIZATION_ID",
    "SAMPLE_EMAIL",
    "SampleMessage",
    "build_sample_message",
    "sample_fields",
    "sample_value",
]

SOAPENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"

# example.com is reserved (RFC 2606): a test never reaches a real person.
SAMPLE_EMAIL = "test.contact@example.com"
# 555-0100…0199 numbers are reserved for fiction.
SAMPLE_PHONE = "+14155550100"
PLACEHOLDER_ORGANIZATION_ID = "00D000000000TESTAA"
_INSTANCE_URL = "https://example.my.salesforce.com/services/Soap"
_ID_ALPHABET = string.ascii_letters + string.digits
# Standard fields that hold a date and a time; other *Date fields hold a date only.
_DATETIME_FIELDS = frozenset(
    {"createddate", "lastmodifieddate", "closeddate", "systemmodstamp", "lastactivitydate"}
)
_STATUS_BY_OBJECT = {"case": "Closed", "lead": "Open - Not Contacted", "contact": "Active"}


@dataclass(frozen=True)
class SampleMessage:
    body: bytes
    notification_id: str
    record_id: str
    organization_id: str
    fields: dict[str, str | None]


def _salesforce_id(prefix: str, rng: random.Random) -> str:
    # 18 characters like a real id; "TEST" in it makes a sample easy to recognise.
    tail = "".join(rng.choice(_ID_ALPHABET) for _ in range(11))
    return f"{prefix[:3]}TEST{tail}"


def _flat(name: str) -> str:
    """Compare names without case, underscores or the custom-field suffix."""
    return name.lower().removesuffix("__c").replace("_", "")


def sample_value(
    field_name: str,
    *,
    object_name: str,
    record_id: str,
    now: datetime,
    rng: random.Random,
) -> str:
    """A plausible value for a field, judged by its name only."""
    flat = _flat(field_name)
    if flat == "id":
        return record_id
    if "email" in flat:
        return "false" if flat.startswith(("has", "is")) else SAMPLE_EMAIL
    if "firstname" in flat or flat in {"givenname", "forename"}:
        return "Test"
    if "lastname" in flat or flat in {"surname", "familyname"}:
        return "Contact"
    if flat.startswith(("is", "has")):
        # HasOptedOutOf… would keep the test from sending anything.
        return "false" if "optedout" in flat or "donotcall" in flat else "true"
    if "phone" in flat or "mobile" in flat:
        return SAMPLE_PHONE
    if flat.endswith("id") and len(flat) > 2:
        return _salesforce_id(key_prefix(flat[:-2]), rng)
    if flat in _DATETIME_FIELDS or "datetime" in flat or flat.endswith("time"):
        return now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if "date" in flat:
        return now.date().isoformat()
    if "number" in flat and "employees" not in flat:
        return f"{rng.randrange(10**7, 10**8):08d}"
    if flat in {"amount", "annualrevenue", "price", "revenue"}:
        return "1250.00"
    if flat == "probability":
        return "80"
    if "employees" in flat or flat in {"quantity", "count"}:
        return "120"
    if flat == "status":
        return _STATUS_BY_OBJECT.get(object_name.lower(), "Closed")
    if flat == "stagename":
        return "Closed Won"
    if flat == "priority":
        return "Medium"
    if flat == "subject":
        return f"Sample {object_name} from the xmflows event test"
    if "country" in flat:
        return "US"
    if "city" in flat:
        return "San Francisco"
    if flat in {"language", "languagecode", "locale"}:
        return "en"
    if "website" in flat or flat.endswith("url"):
        return "https://www.example.com/"
    if flat == "name" or flat.endswith(("company", "accountname")):
        return f"Sample {object_name}"
    return f"Sample {field_name}"


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _satisfy(rule: Mapping[str, Any], current: str | None) -> tuple[bool, str | None]:
    """(changed, value) so that `rule` passes, when a value can be found."""
    op = rule.get("op")
    raw = rule.get("value")
    expected = ("true" if raw else "false") if isinstance(raw, bool) else str(raw or "")
    if op == "equals":
        return True, expected
    if op == "not_equals":
        if (current or "").lower() == expected.lower():
            return True, f"not {expected}"
        return False, current
    if op == "contains":
        if expected.lower() in (current or "").lower():
            return False, current
        return True, expected
    if op == "is_empty":
        return True, None
    if op == "is_not_empty":
        return (False, current) if current else (True, "Sample value")
    if op in {"greater_than", "less_than"}:
        step = 1 if op == "greater_than" else -1
        number = _number(expected)
        if number is not None:
            return True, str(number + step)
        day = _day(expected)
        if day is not None:
            return True, (day + timedelta(days=step)).isoformat()
    return False, current


def sample_fields(
    *,
    object_name: str,
    field_names: Iterable[str],
    record_id: str,
    conditions: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> dict[str, str | None]:
    """Sample values for `field_names` (invalid API names are left out), then
    adjusted so the conditions pass: all rules for "all", the first for "any"."""
    now = now or datetime.now(UTC)
    rng = rng or random.Random()
    fields: dict[str, str | None] = {"Id": record_id}
    for name in field_names:
        if API_NAME.match(name or "") and name not in fields:
            fields[name] = sample_value(
                name, object_name=object_name, record_id=record_id, now=now, rng=rng
            )
    rules = [rule for rule in (conditions or {}).get("rules") or [] if isinstance(rule, Mapping)]
    if (conditions or {}).get("match") == "any":
        rules = rules[:1]
    for rule in rules:
        name = rule.get("field")
        if not isinstance(name, str) or not API_NAME.match(name) or name == "Id":
            continue
        changed, value = _satisfy(rule, fields.get(name))
        if changed or name not in fields:
            fields[name] = value
    return fields


def build_sample_message(
    *,
    object_name: str,
    field_names: Iterable[str],
    organization_id: str | None = None,
    conditions: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> SampleMessage:
    """One notification for one sample record, as Salesforce would POST it."""
    if not API_NAME.match(object_name or ""):
        raise ValueError(f"not a Salesforce object API name: {object_name!r}")
    rng = rng or random.Random()
    organization = organization_id or PLACEHOLDER_ORGANIZATION_ID
    notification_id = _salesforce_id("04l", rng)
    record_id = _salesforce_id(key_prefix(object_name), rng)
    fields = sample_fields(
        object_name=object_name,
        field_names=field_names,
        record_id=record_id,
        conditions=conditions,
        now=now,
        rng=rng,
    )

    envelope = etree.Element(
        f"{{{SOAPENV_NS}}}Envelope",
        nsmap={"soapenv": SOAPENV_NS, "xsd": XSD_NS, "xsi": XSI_NS},
    )
    body = etree.SubElement(envelope, f"{{{SOAPENV_NS}}}Body")
    notifications = etree.SubElement(
        body, f"{{{OUTBOUND_NS}}}notifications", nsmap={None: OUTBOUND_NS}
    )
    etree.SubElement(notifications, f"{{{OUTBOUND_NS}}}OrganizationId").text = organization
    etree.SubElement(notifications, f"{{{OUTBOUND_NS}}}ActionId").text = "04kTEST00000000AAA"
    session = etree.SubElement(notifications, f"{{{OUTBOUND_NS}}}SessionId")
    session.set(f"{{{XSI_NS}}}nil", "true")
    org15 = organization[:15]
    etree.SubElement(
        notifications, f"{{{OUTBOUND_NS}}}EnterpriseUrl"
    ).text = f"{_INSTANCE_URL}/c/62.0/{org15}"
    etree.SubElement(
        notifications, f"{{{OUTBOUND_NS}}}PartnerUrl"
    ).text = f"{_INSTANCE_URL}/u/62.0/{org15}"
    notification = etree.SubElement(notifications, f"{{{OUTBOUND_NS}}}Notification")
    etree.SubElement(notification, f"{{{OUTBOUND_NS}}}Id").text = notification_id
    sobject = etree.SubElement(notification, f"{{{OUTBOUND_NS}}}sObject", nsmap={"sf": SOBJECT_NS})
    sobject.set(f"{{{XSI_NS}}}type", f"sf:{object_name}")
    for name, value in fields.items():
        element = etree.SubElement(sobject, f"{{{SOBJECT_NS}}}{name}")
        if value is None:
            element.set(f"{{{XSI_NS}}}nil", "true")
        else:
            element.text = value
    document = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return SampleMessage(
        body=document,
        notification_id=notification_id,
        record_id=record_id,
        organization_id=organization,
        fields=fields,
    )
