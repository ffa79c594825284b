"""Template filters of the report pages: stored JSON shown as JSON, task type labels."""

import json

from django import template

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    """Indented JSON, as the API returns it (not a Python repr); non-ASCII kept."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def task_label(task_type: str) -> str:
    """The task type's name as the builder shows it ("XM Directory: Distribute survey")."""
    from xmflows import task_types

    registered = task_types.get(task_type)
    return registered.label if registered else task_type
