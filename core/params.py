"""Reading ids from query strings, for pages and the API alike."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework.exceptions import ValidationError

# The largest value of a BigAutoField (a signed 64-bit integer): SQLite cannot even be
# asked about a larger number (OverflowError), so it is no id of anything.
MAX_ID = 2**63 - 1


def parse_id(raw: str | None) -> int | None:
    """The id in `raw`; None when it is blank. ValueError when it is not a whole number
    from 1 to MAX_ID."""
    text = (raw or "").strip()
    if not text:
        return None
    value = int(text)  # ValueError for "abc", "1.5"
    if not 1 <= value <= MAX_ID:
        raise ValueError(f"{value} is not an id")
    return value


def id_or_none(raw: str | None) -> int | None:
    """The id in `raw`, or None when it is blank or not an id (pages that ignore or
    report a bad filter themselves)."""
    try:
        return parse_id(raw)
    except ValueError:
        return None


def api_id_param(params: Mapping[str, str], name: str, what: str | None = None) -> int | None:
    """A query parameter holding an id, for the API: a 400 that names the parameter
    when it is not one ("workflow: must be a workflow id")."""
    try:
        return parse_id(params.get(name))
    except ValueError as error:
        label = what or name.replace("_", " ")
        raise ValidationError(
            {name: [f"must be a {label} id, not {params.get(name)!r}"]}
        ) from error
