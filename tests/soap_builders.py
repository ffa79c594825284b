"""Builds Salesforce Outbound Message SOAP bodies for tests and benchmarks (no Django imports)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

DEFAULT_ORG_ID = "00D8a000000XyZaEAK"
_INSTANCE_URL = "https://example-dev-ed.my.salesforce.com/services/Soap"

# Besides &, < and >, a CR must become a character reference: a literal one is
# normalized to LF by every XML parser, and values should round-trip exactly.
_TEXT_ENTITIES = {"\r": "&#13;"}


def _text(value: str) -> str:
    return escape(value, _TEXT_ENTITIES)


def _field(name: str, value: str | None) -> str:
    if value is None:
        return f'     <sf:{name} xsi:nil="true"/>'
    return f"     <sf:{name}>{_text(value)}</sf:{name}>"


def _notification(notification: Mapping[str, Any], object_type: str) -> str:
    fields: Mapping[str, str | None] = notification.get("fields") or {}
    type_attr = quoteattr(f"sf:{object_type}")
    head = (
        "   <Notification>\n"
        f"    <Id>{_text(notification['id'])}</Id>\n"
        f"    <sObject xsi:type={type_attr}"
        ' xmlns:sf="urn:sobject.enterprise.soap.sforce.com"'
    )
    if not fields:
        # How a record deleted before delivery arrives: no field data at all.
        return f"{head}/>\n   </Notification>"
    body = "\n".join(_field(name, value) for name, value in fields.items())
    return f"{head}>\n{body}\n    </sObject>\n   </Notification>"


def build_outbound_message(
    notifications: Sequence[Mapping[str, Any]],
    *,
    org_id: str = DEFAULT_ORG_ID,
    object_type: str = "Case",
    session_id: str | None = None,
) -> bytes:
    """A SOAP 1.1 outbound message shaped like Salesforce's.

    Each notification is ``{"id": notification id, "fields": {name: value or
    None}}``; None is sent as ``xsi:nil="true"``, a field left out of the dict
    is omitted, and empty ``fields`` gives an empty sObject. Field names must be
    valid XML names; values are escaped. No limit on the count is enforced, so
    callers can build the 101-notification case too.
    """
    org = org_id[:15]
    if session_id is None:
        session = '   <SessionId xsi:nil="true"/>'
    else:
        session = f"   <SessionId>{_text(session_id)}</SessionId>"
    items = "\n".join(_notification(n, object_type) for n in notifications)
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        " <soapenv:Body>\n"
        '  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">\n'
        f"   <OrganizationId>{_text(org_id)}</OrganizationId>\n"
        "   <ActionId>04k8a000000Qr7tAAC</ActionId>\n"
        f"{session}\n"
        f"   <EnterpriseUrl>{_INSTANCE_URL}/c/62.0/{_text(org)}</EnterpriseUrl>\n"
        f"   <PartnerUrl>{_INSTANCE_URL}/u/62.0/{_text(org)}</PartnerUrl>\n"
        f"{items}\n"
        "  </notifications>\n"
        " </soapenv:Body>\n"
        "</soapenv:Envelope>\n"
    )
    return document.encode("utf-8")
