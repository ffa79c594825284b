"""Reading JSON that people and scripts send: every way it can be wrong is a
ValueError with a message, never another exception (a 500). No Django imports."""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    """json.loads, with nesting too deep for the parser (RecursionError) and numbers
    too large to be finite (1e999, NaN, Infinity) reported as ValueError."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as error:
        raise ValueError("the JSON is nested too deeply") from error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large a number")
    return value
