"""Template filters of the report pages: stored JSON shown as JSON, task type and
operator labels."""

import json

from django import template

from xmflows.conditions import OPERATOR_PHRASES
from xmflows.selectors import task_label

register = template.Library()
register.filter("task_label", task_label)


@register.filter
def operator_phrase(op: str) -> str:
    """ "is greater than" for greater_than: how people read a rule."""
    return OPERATOR_PHRASES.get(op, op)


@register.filter
def pretty_json(value) -> str:
    """Indented JSON, as the API returns it (not a Python repr); non-ASCII kept."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
