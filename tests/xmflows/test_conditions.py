"""Tests for xmflows.conditions: operators, all/any, validation and reasons; no database."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmflows.conditions import (
    OPERATORS,
    ConditionError,
    ConditionResult,
    evaluate_conditions,
    validate_conditions,
)

FIELDS: dict[str, str | None] = {
    "IsClosed": "false",
    "Amount": "45000.0",
    "Score": "9",
    "Subject": "URGENT: printer on fire",
    "Region__c": None,
    "Blank__c": "",
    "Spaces__c": "   ",
    "ClosedDate": "2026-10-02T11:20:45.000Z",
    "DueDate": "2026-10-02",
    "Status": "Closed",
    "ObjectType": "Case",
}

OPS = "equals, not_equals, contains, is_empty, is_not_empty, greater_than, less_than"


def check(op: str, field: str, value: Any = None, fields: dict | None = None) -> bool:
    rule: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        rule["value"] = value
    conditions = {"match": "all", "rules": [rule]}
    return evaluate_conditions(conditions, FIELDS if fields is None else fields).passed


# --- equals / not_equals ----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("Amount", "45000", True),  # numeric: 45000.0 == 45000
        ("Amount", "45000.00", True),
        ("Amount", 45000, True),  # a JSON number in the definition
        ("Amount", "45001", False),
        ("Score", "09", True),
        ("IsClosed", "false", True),
        ("IsClosed", "FALSE", True),  # booleans ignore case
        ("IsClosed", False, True),  # a JSON boolean in the definition
        ("IsClosed", "true", False),
        ("Status", "Closed", True),
        ("Status", "closed", False),  # ordinary strings are exact
        ("Status", "Closed ", False),
        ("ObjectType", "Case", True),  # facts are plain names in the mapping
        ("Missing__c", "x", False),
        ("Missing__c", "", False),  # a missing field equals nothing
        ("Region__c", "", False),  # nil equals nothing either
        ("Blank__c", "", True),
    ],
)
def test_equals(field: str, value: Any, expected: bool) -> None:
    assert check("equals", field, value) is expected
    assert check("not_equals", field, value) is (not expected)


def test_equals_does_not_treat_words_as_numbers() -> None:
    fields = {"Code": "nan", "Other": "NaN", "Big": "1_000"}
    assert check("equals", "Code", "NaN", fields) is False
    assert check("equals", "Big", "1000", fields) is False


# --- contains ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("Subject", "urgent", True),  # case-insensitive
        ("Subject", "on fire", True),
        ("Subject", "water", False),
        ("Subject", "", True),
        ("Amount", "450", True),  # substring of the text, not numeric
        ("Region__c", "x", False),
        ("Missing__c", "x", False),
    ],
)
def test_contains(field: str, value: str, expected: bool) -> None:
    assert check("contains", field, value) is expected


# --- is_empty / is_not_empty ------------------------------------------------


@pytest.mark.parametrize(
    ("field", "empty"),
    [
        ("Region__c", True),  # nil
        ("Missing__c", True),  # absent
        ("Blank__c", True),
        ("Spaces__c", True),  # whitespace-only
        ("Status", False),
        ("IsClosed", False),  # "false" is a value, not emptiness
        ("Score", False),
    ],
)
def test_is_empty_and_is_not_empty(field: str, empty: bool) -> None:
    assert check("is_empty", field) is empty
    assert check("is_not_empty", field) is (not empty)


def test_unary_operators_ignore_a_value() -> None:
    assert check("is_empty", "Blank__c", "anything") is True


# --- greater_than / less_than -----------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "greater", "less"),
    [
        ("Amount", "9999", True, False),  # numeric, not "4" < "9" as text
        ("Amount", "45000", False, False),
        ("Amount", "100000", False, True),
        ("Score", "-1", True, False),
        ("Score", "10", False, True),
        ("ClosedDate", "2026-10-01", True, False),
        ("ClosedDate", "2026-10-02", True, False),  # later that day
        ("ClosedDate", "2026-10-03T00:00:00Z", False, True),
        ("ClosedDate", "2026-10-02T13:20:45+02:00", False, False),  # same moment
        ("DueDate", "2026-09-30", True, False),
        ("DueDate", "2026-10-02T00:00:00.000Z", False, False),
        ("DueDate", "2027-01-01", False, True),
        ("Status", "Alpha", True, False),  # text falls back to string order
        ("Status", "Open", False, True),
        ("Region__c", "0", False, False),
        ("Missing__c", "0", False, False),
    ],
)
def test_greater_and_less_than(field: str, value: str, greater: bool, less: bool) -> None:
    assert check("greater_than", field, value) is greater
    assert check("less_than", field, value) is less


def test_date_comparison_is_chronological_not_textual() -> None:
    # As text "2026-10-02T..." > "2026-10-02" is also true, so use a case where
    # text order and time order disagree: the offset moves the moment earlier.
    fields = {"When": "2026-10-02T01:00:00+05:00"}
    assert check("less_than", "When", "2026-10-01T21:00:00Z", fields) is True


def test_invalid_date_falls_back_to_text() -> None:
    fields = {"When": "2026-13-45"}
    assert check("greater_than", "When", "2026-01-01", fields) is True


# --- all / any --------------------------------------------------------------


def test_all_requires_every_rule() -> None:
    conditions = {
        "match": "all",
        "rules": [
            {"field": "Status", "op": "equals", "value": "Closed"},
            {"field": "IsClosed", "op": "equals", "value": "true"},
        ],
    }
    result = evaluate_conditions(conditions, FIELDS)
    assert result.passed is False
    assert result.reason == (
        "condition not met (all): IsClosed equals 'true' — actual value 'false'"
    )
    assert result.details == (
        {
            "field": "Status",
            "op": "equals",
            "value": "Closed",
            "actual": "Closed",
            "passed": True,
        },
        {
            "field": "IsClosed",
            "op": "equals",
            "value": "true",
            "actual": "false",
            "passed": False,
        },
    )


def test_all_passes_when_every_rule_holds() -> None:
    conditions = {
        "match": "all",
        "rules": [
            {"field": "Status", "op": "equals", "value": "Closed"},
            {"field": "Amount", "op": "greater_than", "value": "1000"},
        ],
    }
    assert evaluate_conditions(conditions, FIELDS) == ConditionResult(
        passed=True,
        reason="conditions met",
        details=(
            {
                "field": "Status",
                "op": "equals",
                "value": "Closed",
                "actual": "Closed",
                "passed": True,
            },
            {
                "field": "Amount",
                "op": "greater_than",
                "value": "1000",
                "actual": "45000.0",
                "passed": True,
            },
        ),
    )


def test_any_passes_with_one_rule() -> None:
    conditions = {
        "match": "any",
        "rules": [
            {"field": "IsClosed", "op": "equals", "value": "true"},
            {"field": "Subject", "op": "contains", "value": "urgent"},
        ],
    }
    result = evaluate_conditions(conditions, FIELDS)
    assert result.passed is True
    assert result.reason == "conditions met"
    assert [detail["passed"] for detail in result.details] == [False, True]


def test_any_fails_listing_every_rule() -> None:
    conditions = {
        "match": "any",
        "rules": [
            {"field": "IsClosed", "op": "equals", "value": "true"},
            {"field": "Region__c", "op": "is_not_empty"},
            {"field": "Owner__c", "op": "equals", "value": "me"},
        ],
    }
    result = evaluate_conditions(conditions, FIELDS)
    assert result.passed is False
    assert result.reason == (
        "condition not met (any): IsClosed equals 'true' — actual value 'false'; "
        "Region__c is not empty — actual value is nil; "
        "Owner__c equals 'me' — field not in the message"
    )


def test_missing_match_means_all() -> None:
    conditions = {
        "rules": [
            {"field": "Status", "op": "equals", "value": "Closed"},
            {"field": "IsClosed", "op": "equals", "value": "true"},
        ]
    }
    assert evaluate_conditions(conditions, FIELDS).passed is False


@pytest.mark.parametrize("conditions", [None, {}, {"match": "all", "rules": []}, {"match": "any"}])
def test_no_rules_pass(conditions: dict | None) -> None:
    assert evaluate_conditions(conditions, FIELDS) == ConditionResult(
        passed=True, reason="no conditions", details=()
    )


def test_long_actual_value_is_shortened_in_reason() -> None:
    fields = {"Description": "x" * 500}
    conditions = {"rules": [{"field": "Description", "op": "equals", "value": "y"}]}
    reason = evaluate_conditions(conditions, fields).reason
    assert len(reason) < 200
    assert "…" in reason


def test_unary_failure_reason_names_the_actual_value() -> None:
    conditions = {"rules": [{"field": "Status", "op": "is_empty"}]}
    assert evaluate_conditions(conditions, FIELDS).reason == (
        "condition not met (all): Status is empty — actual value 'Closed'"
    )


# --- validation -------------------------------------------------------------


@pytest.mark.parametrize(
    "conditions",
    [
        None,
        {},
        {"match": "any", "rules": []},
        {"match": "all", "rules": [{"field": "A", "op": "is_empty"}]},
        {"rules": [{"field": "A", "op": "equals", "value": ""}]},
        {"rules": [{"field": "A", "op": "greater_than", "value": 3}]},
        {"rules": [{"field": "A", "op": op, "value": "1"} for op in OPERATORS]},
    ],
)
def test_valid_definitions(conditions: dict | None) -> None:
    assert validate_conditions(conditions) == []


@pytest.mark.parametrize(
    ("conditions", "problems"),
    [
        ({"match": "some", "rules": []}, ["match must be 'all' or 'any'"]),
        (
            {"match": "all", "rules": [{"field": "A", "op": "bigger", "value": "1"}]},
            [f"rule 1: unknown operator 'bigger' (use one of: {OPS})"],
        ),
        (
            {
                "rules": [
                    {"field": "A", "op": "equals", "value": "1"},
                    {"field": "", "op": "equals", "value": "1"},
                ]
            },
            ["rule 2: field is required"],
        ),
        ({"rules": [{"op": "equals", "value": "1"}]}, ["rule 1: field is required"]),
        ({"rules": [{"field": "A", "value": "1"}]}, ["rule 1: op is required"]),
        (
            {"rules": [{"field": "A", "op": "contains"}]},
            ["rule 1: value is required for 'contains'"],
        ),
        *[
            (
                {"rules": [{"field": "Amount", "op": op, "value": blank}]},
                [f"rule 1: value is required for '{op}'"],
            )
            for op in ("contains", "greater_than", "less_than")
            for blank in ("", "  ")
        ],
        (
            {"rules": [{"field": "A", "op": "equals", "value": ["x"]}]},
            ["rule 1: value must be a string, a number or true/false"],
        ),
        (
            {"rules": [{"field": "A", "operator": "equals", "value": "1"}]},
            ["rule 1: unknown key 'operator'", "rule 1: op is required"],
        ),
        ({"rules": ["A equals 1"]}, ["rule 1: must be an object with 'field', 'op' and 'value'"]),
        ({"rules": "A equals 1"}, ["rules must be a list"]),
        ({"match": "all", "rule": []}, ["unknown key 'rule' (expected 'match' and 'rules')"]),
        ("IsClosed = true", ["conditions must be an object with 'match' and 'rules'"]),
        (
            {"rules": [{"field": "A", "op": ["equals"], "value": "1"}]},
            [f"rule 1: unknown operator '['equals']' (use one of: {OPS})"],
        ),
    ],
)
def test_validation_problems(conditions: Any, problems: list[str]) -> None:
    assert validate_conditions(conditions) == problems


def test_evaluate_refuses_an_invalid_definition() -> None:
    conditions = {"match": "some", "rules": [{"field": "A", "op": "bigger", "value": "1"}]}
    with pytest.raises(ConditionError) as raised:
        evaluate_conditions(conditions, FIELDS)
    assert str(raised.value) == (
        f"match must be 'all' or 'any'; rule 1: unknown operator 'bigger' (use one of: {OPS})"
    )
    assert isinstance(raised.value, ValueError)


# --- robustness -------------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.text(max_size=15),
    st.sampled_from(
        ["1", "1.0", "-2e3", "true", "FALSE", "2026-10-02", "2026-10-02T11:20:45.000Z"]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(OPERATORS),
    match=st.sampled_from(["all", "any"]),
    value=st.one_of(st.text(max_size=15), st.integers(), st.booleans(), _values),
    actual=_values,
)
def test_valid_conditions_never_raise(op: str, match: str, value: Any, actual: str | None) -> None:
    rule = {"field": "F", "op": op, "value": "" if value is None else value}
    result = evaluate_conditions({"match": match, "rules": [rule]}, {"F": actual})
    assert result.details[0]["passed"] is result.passed
    assert result.reason


def test_text_comparisons_name_the_rules_that_compare_as_text():
    from xmflows.conditions import text_comparisons

    conditions = {
        "rules": [
            {"field": "Amount", "op": "greater_than", "value": "1,000"},
            {"field": "Amount", "op": "less_than", "value": 5000},
            {"field": "CloseDate", "op": "greater_than", "value": "2026-01-01"},
            {"field": "Name", "op": "equals", "value": "ten"},
        ]
    }
    assert text_comparisons(conditions) == [
        "rule 1: '1,000' is neither a number nor a date (YYYY-MM-DD), so Amount is "
        "compared with it as text, alphabetically"
    ]
    assert text_comparisons(None) == [] and text_comparisons({"rules": "junk"}) == []
