"""The event test's sample messages: valid outbound messages, plausible values, conditions met."""

import random
from datetime import UTC, datetime

import pytest

from xmflows import soap
from xmflows.conditions import evaluate_conditions
from xmflows.sample_message import (
    PLACEHOLDER_ORGANIZATION_ID,
    SAMPLE_EMAIL,
    build_sample_message,
    sample_fields,
)

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)


def test_the_sample_is_an_outbound_message_our_parser_reads():
    sample = build_sample_message(
        object_name="Case",
        field_names=["CaseNumber", "ContactEmail", "First_Name__c", "Bad name!", "Id"],
        now=NOW,
    )
    message = soap.parse_outbound_message(sample.body)
    (notification,) = message.notifications
    assert message.organization_id == PLACEHOLDER_ORGANIZATION_ID
    assert notification.object_type == "Case"
    assert notification.notification_id == sample.notification_id
    assert notification.record_id == sample.record_id
    assert sample.record_id.startswith("500") and len(sample.record_id) == 18
    assert dict(notification.fields) == sample.fields
    assert "Bad name!" not in sample.fields  # not an API name: left out, never invalid XML


def test_each_sample_is_a_new_notification():
    first = build_sample_message(object_name="Lead", field_names=[])
    second = build_sample_message(object_name="Lead", field_names=[])
    assert first.notification_id != second.notification_id
    assert first.record_id.startswith("00Q")


def test_values_fit_the_field_names():
    fields = sample_fields(
        object_name="Case",
        field_names=[
            "ContactEmail",
            "FirstName",
            "Last_Name__c",
            "ContactPhone",
            "ContactId",
            "IsClosed",
            "HasOptedOutOfEmail",
            "ClosedDate",
            "Due_Date__c",
            "CaseNumber",
            "Status",
            "Region__c",
        ],
        record_id="500TEST00000000AAA",
        now=NOW,
        rng=random.Random(1),
    )
    assert fields["Id"] == "500TEST00000000AAA"
    assert fields["ContactEmail"] == SAMPLE_EMAIL
    assert (fields["FirstName"], fields["Last_Name__c"]) == ("Test", "Contact")
    assert fields["ContactPhone"].startswith("+1")
    assert fields["ContactId"].startswith("003")
    assert (fields["IsClosed"], fields["HasOptedOutOfEmail"]) == ("true", "false")
    assert fields["ClosedDate"] == "2026-11-27T10:30:00.000Z"
    assert fields["Due_Date__c"] == "2026-11-27"
    assert fields["CaseNumber"].isdigit() and len(fields["CaseNumber"]) == 8
    assert fields["Status"] == "Closed"
    assert fields["Region__c"] == "Sample Region__c"


@pytest.mark.parametrize(
    "rule",
    [
        {"field": "Status", "op": "equals", "value": "Escalated"},
        {"field": "Status", "op": "not_equals", "value": "Closed"},
        {"field": "Subject", "op": "contains", "value": "refund"},
        {"field": "Reason__c", "op": "is_empty"},
        {"field": "Reason__c", "op": "is_not_empty"},
        {"field": "Amount__c", "op": "greater_than", "value": "100"},
        {"field": "Amount__c", "op": "less_than", "value": 5},
        {"field": "Due__c", "op": "greater_than", "value": "2027-01-31"},
        {"field": "IsEscalated", "op": "equals", "value": False},
    ],
)
def test_values_are_made_to_meet_each_kind_of_condition(rule):
    conditions = {"match": "all", "rules": [rule]}
    fields = sample_fields(
        object_name="Case",
        field_names=["Status", "Subject"],
        record_id="500TEST00000000AAA",
        conditions=conditions,
        now=NOW,
    )
    assert evaluate_conditions(conditions, fields).passed, fields


def test_any_needs_only_its_first_rule():
    conditions = {
        "match": "any",
        "rules": [
            {"field": "Status", "op": "equals", "value": "Closed"},
            {"field": "Status", "op": "equals", "value": "Open"},
        ],
    }
    fields = sample_fields(
        object_name="Case", field_names=[], record_id="500TEST00000000AAA", conditions=conditions
    )
    assert fields["Status"] == "Closed"
    assert evaluate_conditions(conditions, fields).passed


def test_an_object_name_that_is_not_an_api_name_is_refused():
    with pytest.raises(ValueError, match="not a Salesforce object API name"):
        build_sample_message(object_name="<Case>", field_names=[])
