"""Standard Salesforce objects the builder suggests, their common fields and id prefixes;
no Django imports.

An admin who has never read Salesforce's object reference still needs to know that a
Case carries `ContactEmail` and a Lead carries `Email`: the builder suggests these
names (event object datalist, dynamic-text menu, condition fields) before any message
has arrived, and the event test builds its sample message from them.
"""

from __future__ import annotations

import re

__all__ = [
    "API_NAME",
    "STANDARD_OBJECTS",
    "key_prefix",
    "standard_fields",
]

# A Salesforce API name: letters, digits and underscores, starting with a letter.
# Also what is safe as an XML element name in a sample message.
API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")

STANDARD_OBJECTS: dict[str, tuple[str, ...]] = {
    "Case": (
        "Id",
        "CaseNumber",
        "Subject",
        "Status",
        "Priority",
        "Origin",
        "Type",
        "Reason",
        "IsClosed",
        "ClosedDate",
        "CreatedDate",
        "ContactId",
        "ContactEmail",
        "ContactPhone",
        "ContactMobile",
        "AccountId",
        "OwnerId",
        "SuppliedName",
        "SuppliedEmail",
        "Description",
    ),
    "Lead": (
        "Id",
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "MobilePhone",
        "Company",
        "Title",
        "Status",
        "LeadSource",
        "Rating",
        "Industry",
        "Country",
        "City",
        "IsConverted",
        "CreatedDate",
        "OwnerId",
    ),
    "Opportunity": (
        "Id",
        "Name",
        "StageName",
        "Amount",
        "CloseDate",
        "IsWon",
        "IsClosed",
        "Probability",
        "Type",
        "LeadSource",
        "AccountId",
        "OwnerId",
        "CreatedDate",
    ),
    "Contact": (
        "Id",
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "MobilePhone",
        "Title",
        "Department",
        "AccountId",
        "MailingCountry",
        "MailingCity",
        "HasOptedOutOfEmail",
        "OwnerId",
        "CreatedDate",
    ),
    "Account": (
        "Id",
        "Name",
        "Type",
        "Industry",
        "Phone",
        "Website",
        "BillingCountry",
        "BillingCity",
        "AnnualRevenue",
        "NumberOfEmployees",
        "OwnerId",
        "CreatedDate",
    ),
}

# The first three characters of a record id say which object it belongs to.
_KEY_PREFIXES: dict[str, str] = {
    "case": "500",
    "lead": "00Q",
    "opportunity": "006",
    "contact": "003",
    "account": "001",
    "user": "005",
    "owner": "005",
}
# Custom objects get prefixes from a00 on; any of them makes a plausible sample.
_CUSTOM_PREFIX = "a00"


def standard_fields(object_name: str) -> tuple[str, ...]:
    """Common fields of a standard object (case-insensitive name); () for custom ones."""
    wanted = (object_name or "").strip().lower()
    for name, fields in STANDARD_OBJECTS.items():
        if name.lower() == wanted:
            return fields
    return ()


def key_prefix(object_name: str) -> str:
    """The record id prefix of an object ("500" for Case); custom objects get "a00"."""
    return _KEY_PREFIXES.get((object_name or "").strip().lower(), _CUSTOM_PREFIX)
