"""A DRF serializer that refuses keys it does not know, instead of dropping them.

DRF ignores unknown input keys. For a workflow definition that is dangerous: a
misspelled option ("send_delay_minute") would be dropped silently and the workflow
would do something else than its author wrote (a definition is often edited by hand
or imported from version control). Read-only fields count as known, so what a GET
returns can be sent back as is.
"""

from typing import Any

from rest_framework import serializers

# What the browsable API's HTML forms post besides the fields: not the client's data.
FORM_KEYS = frozenset({"csrfmiddlewaretoken", "_content", "_content_type", "_method"})


class StrictKeysMixin:
    """Put before a Serializer or ModelSerializer class: unknown input keys are 400s."""

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, dict):
            known = ", ".join(sorted(self.fields))
            unknown = {
                str(key): [f"unknown key; expected one of: {known}"]
                for key in sorted(data, key=str)
                if key not in self.fields and key not in FORM_KEYS
            }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            # Reported together with the fields' own errors, not one after the other.
            if unknown and isinstance(error.detail, dict):
                raise serializers.ValidationError({**error.detail, **unknown}) from error
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StrictSerializer(StrictKeysMixin, serializers.Serializer):
    pass
