"""Form fields shared by the admin pages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms


class LinesField(forms.CharField):
    """A list edited as one item per line (a JSON list is read too, so a value pasted
    from the API or an export still works). Blank lines are dropped; each item goes
    through `item` (str by default; int for numbers), whose ValueError is reported
    with the line."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 40})

    def __init__(self, *, item: Callable[[str], Any] = str, **kwargs: Any) -> None:
        self.item = item
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value  # what was typed, shown again with its error
        if isinstance(value, list | tuple):
            return "\n".join(str(item) for item in value)
        return "" if value is None else str(value)

    def to_python(self, value: Any) -> list[Any]:
        text = super().to_python(value) or ""
        stripped = text.strip()
        if stripped.startswith("{"):
            raise forms.ValidationError("one item per line (or a JSON list), not a JSON object")
        if stripped.startswith("["):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return parsed
        items = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            try:
                items.append(self.item(line))
            except ValueError as error:
                raise forms.ValidationError(f"line {number}: {line!r} is not valid") from error
        return items
