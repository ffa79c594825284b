"""Workflow conditions: validates and evaluates rules on a run's payload; no Django imports."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "MATCH_MODES",
    "OPERATORS",
    "ConditionError",
    "ConditionResult",
    "evaluate_conditions",
    "validate_conditions",
]

OPERATORS: tuple[str, ...] = (
    "equals",
    "not_equals",
    "contains",
    "is_empty",
    "is_not_empty",
    "greater_than",
    "less_than",
)
MATCH_MODES: tuple[str, ...] = ("all", "any")
# These look only at the field, so a "value" is neither needed nor checked.
_UNARY_OPERATORS = frozenset({"is_empty", "is_not_empty"})
# A blank value would make these true for any field ("contains nothing") or compare
# with nothing; "equals ''" stays allowed (is_empty says it better, but it is exact).
_NEEDS_TEXT = frozenset({"contains", "greater_than", "less_than"})
_RULE_KEYS = frozenset({"field", "op", "value"})
_CONDITION_KEYS = frozenset({"match", "rules"})

# How people read each operator (the builder's choices, reasons, the dry run).
OPERATOR_PHRASES: dict[str, str] = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "greater_than": "is greater than",
    "less_than": "is less than",
}
# Plain decimal notation only: float() would also take "nan", "inf" and
# "1_000", which no admin means as a number.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Salesforce sends dates as 2026-10-02 and datetimes as 2026-10-02T11:20:45.000Z;
# requiring the dashed date up front keeps fromisoformat from reading other
# strings (week dates, compact digits) as dates.
_ISO_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")
_BOOLEANS = frozenset({"true", "false"})
# A description field can be kilobytes long; the reason is one readable line.
_REASON_VALUE_LIMIT = 80


class ConditionError(ValueError):
    """The conditions definition is invalid; the message lists every problem."""


@dataclass(frozen=True)
class ConditionResult:
    passed: bool
    reason: str
    details: tuple[dict[str, Any], ...] = ()


def validate_conditions(
    conditions: Mapping[str, Any] | None, *, new_definition: bool = True
) -> list[str]:
    """Return one readable sentence per problem in ``conditions``; [] when valid.

    ``None`` and ``{}`` mean "no conditions". A missing ``match`` means "all",
    so a hand-written definition with one rule needs nothing more. With
    ``new_definition`` (saving), "contains", "greater_than" and "less_than" also need
    a non-blank value; evaluating a stored workflow does not ask that.
    """
    if conditions is None:
        return []
    if not isinstance(conditions, Mapping):
        return ["conditions must be an object with 'match' and 'rules'"]
    problems: list[str] = []
    for key in sorted(set(conditions) - _CONDITION_KEYS, key=str):
        problems.append(f"unknown key '{key}' (expected 'match' and 'rules')")
    match = conditions.get("match", "all")
    if match not in MATCH_MODES:
        problems.append("match must be 'all' or 'any'")
    rules = conditions.get("rules")
    if rules is None:
        return problems
    if not isinstance(rules, list | tuple):
        problems.append("rules must be a list")
        return problems
    for number, rule in enumerate(rules, start=1):
        problems.extend(
            f"rule {number}: {problem}" for problem in _rule_problems(rule, new_definition)
        )
    return problems


def _rule_problems(rule: object, new_definition: bool) -> list[str]:
    if not isinstance(rule, Mapping):
        return ["must be an object with 'field', 'op' and 'value'"]
    problems: list[str] = []
    # Typos such as "operator" or "values" would otherwise be ignored silently
    # and the rule would do something else than the admin meant.
    for key in sorted(set(rule) - _RULE_KEYS, key=str):
        problems.append(f"unknown key '{key}'")
    field = rule.get("field")
    if not isinstance(field, str) or not field.strip():
        problems.append("field is required")
    op = rule.get("op")
    if op is None or op == "":
        problems.append("op is required")
    elif not isinstance(op, str) or op not in OPERATORS:
        problems.append(f"unknown operator '{op}' (use one of: {', '.join(OPERATORS)})")
    elif op not in _UNARY_OPERATORS:
        value = rule.get("value")
        blank = isinstance(value, str) and not value.strip()
        # Only a definition being saved is held to it: a workflow saved before keeps
        # running as it did rather than failing every run.
        if value is None or (new_definition and op in _NEEDS_TEXT and blank):
            problems.append(f"value is required for '{op}'")
        elif not isinstance(value, str | int | float | bool):
            problems.append("value must be a string, a number or true/false")
    return problems


def evaluate_conditions(
    conditions: Mapping[str, Any] | None, fields: Mapping[str, str | None]
) -> ConditionResult:
    """Evaluate ``conditions`` against a run's fields (record fields and facts).

    A field absent from ``fields`` and a field sent as nil both have the
    actual value ``None``; the reason tells them apart. Raises
    ``ConditionError`` when the definition is invalid.
    """
    problems = validate_conditions(conditions, new_definition=False)
    if problems:
        raise ConditionError("; ".join(problems))
    rules = (conditions or {}).get("rules") or []
    if not rules:
        return ConditionResult(passed=True, reason="no conditions", details=())
    match = (conditions or {}).get("match", "all")

    details: list[dict[str, Any]] = []
    failures: list[str] = []
    for rule in rules:
        name: str = rule["field"]
        op: str = rule["op"]
        expected = None if op in _UNARY_OPERATORS else _as_text(rule["value"])
        present = name in fields
        actual = fields.get(name)
        if actual is not None and not isinstance(actual, str):
            actual = _as_text(actual)
        rule_passed = _OPERATIONS[op](actual, expected)
        details.append(
            {
                "field": name,
                "op": op,
                "value": expected,
                "actual": actual,
                "passed": rule_passed,
            }
        )
        if not rule_passed:
            failures.append(_describe_failure(name, op, expected, actual, present))

    passed = not failures if match == "all" else len(failures) < len(details)
    # For "any" every rule failed, so every rule is listed; for "all" only the
    # ones that failed, which is what the admin must look at.
    reason = "conditions met" if passed else f"condition not met ({match}): " + "; ".join(failures)
    return ConditionResult(passed=passed, reason=reason, details=tuple(details))


def _describe_failure(
    name: str, op: str, expected: str | None, actual: str | None, present: bool
) -> str:
    rule_text = f"{name} {OPERATOR_PHRASES[op]}"
    if expected is not None:
        rule_text += f" {_quoted(expected)}"
    if not present:
        return f"{rule_text} — field not in the message"
    if actual is None:
        return f"{rule_text} — actual value is nil"
    return f"{rule_text} — actual value {_quoted(actual)}"


def _quoted(value: str) -> str:
    if len(value) > _REASON_VALUE_LIMIT:
        value = value[:_REASON_VALUE_LIMIT] + "…"
    return f"'{value}'"


def text_comparisons(conditions: Mapping[str, Any] | None) -> list[str]:
    """Rules that compare "greater/less than" a value that is neither a number nor a
    date: allowed (text compares alphabetically), but rarely what was meant
    ("1,000" or "ten thousand"), so the builder says so when the workflow is saved."""
    notes: list[str] = []
    rules = (conditions or {}).get("rules") if isinstance(conditions, Mapping) else None
    for number, rule in enumerate(rules if isinstance(rules, list) else [], start=1):
        if not isinstance(rule, Mapping) or rule.get("op") not in ("greater_than", "less_than"):
            continue
        value = _as_text(rule.get("value", ""))
        if value.strip() and _number(value) is None and _moment(value) is None:
            notes.append(
                f"rule {number}: {value!r} is neither a number nor a date (YYYY-MM-DD), so "
                f"{rule.get('field')} is compared with it as text, alphabetically"
            )
    return notes


def _as_text(value: object) -> str:
    # JSON definitions may say "value": true or 45000; the payload is text.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(text: str) -> Decimal | None:
    stripped = text.strip()
    if not _NUMBER.fullmatch(stripped):
        return None
    try:
        return Decimal(stripped)
    except InvalidOperation:  # pragma: no cover - the pattern already guards
        return None


def _moment(text: str) -> datetime | None:
    stripped = text.strip()
    if not _ISO_DATE_START.match(stripped):
        return None
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        return None
    # Salesforce datetimes carry "Z"; a bare date or naive datetime is read as
    # UTC so the two can be compared (a date is midnight UTC that day).
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _equals(actual: str | None, expected: str | None) -> bool:
    # A missing or nil field equals nothing, not even "": is_empty says that.
    if actual is None or expected is None:
        return False
    actual_number, expected_number = _number(actual), _number(expected)
    if actual_number is not None and expected_number is not None:
        return actual_number == expected_number
    actual_lower, expected_lower = actual.strip().lower(), expected.strip().lower()
    if actual_lower in _BOOLEANS and expected_lower in _BOOLEANS:
        return actual_lower == expected_lower
    return actual == expected


def _not_equals(actual: str | None, expected: str | None) -> bool:
    return not _equals(actual, expected)


def _contains(actual: str | None, expected: str | None) -> bool:
    # Case-insensitive: admins match words in free text ("urgent" in a subject
    # written "URGENT: ..."), where case is noise rather than meaning.
    if actual is None or expected is None:
        return False
    return expected.casefold() in actual.casefold()


def _is_empty(actual: str | None, expected: str | None) -> bool:
    return actual is None or not actual.strip()


def _is_not_empty(actual: str | None, expected: str | None) -> bool:
    return not _is_empty(actual, expected)


def _compare(actual: str | None, expected: str | None) -> int | None:
    """Return -1, 0 or 1 comparing actual to expected; None when unknowable."""
    if actual is None or expected is None:
        return None
    left: Decimal | datetime | str | None
    right: Decimal | datetime | str | None
    left, right = _number(actual), _number(expected)
    if left is None or right is None:
        left, right = _moment(actual), _moment(expected)
    if left is None or right is None:
        left, right = actual, expected
    return (left > right) - (left < right)  # type: ignore[operator]


def _greater_than(actual: str | None, expected: str | None) -> bool:
    return _compare(actual, expected) == 1


def _less_than(actual: str | None, expected: str | None) -> bool:
    return _compare(actual, expected) == -1


_OPERATIONS: dict[str, Callable[[str | None, str | None], bool]] = {
    "equals": _equals,
    "not_equals": _not_equals,
    "contains": _contains,
    "is_empty": _is_empty,
    "is_not_empty": _is_not_empty,
    "greater_than": _greater_than,
    "less_than": _less_than,
}
