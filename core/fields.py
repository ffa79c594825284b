"""A JSON model field that gives objects back with their keys in the order they were saved.

Django's JSONField is `jsonb` on PostgreSQL, which stores an object with its keys
sorted (shorter first, then bytewise) and keeps one of duplicated keys. Mappings a
person ordered came back shuffled: a task's embedded data {"Zeta": …, "A": …} was
exported as {"A": …, "Zeta": …}, a Salesforce message's fields lost the order
Salesforce sent them in. On SQLite JSON is stored as text and the order was kept.

`OrderedJSONField` is `json` on PostgreSQL (the text as written, checked for
validity) and Django's JSONField unchanged elsewhere. What `json` cannot do on
PostgreSQL: compare (no equality operator, so no DISTINCT, GROUP BY or UNION over
such a column; the `exact` lookup below compares as jsonb), containment
(`__contains`, `@>`), key tests (`__has_key`, `?`) and comparisons of a key's value
(`payload__fields__X=…`). Reading a key (`->`, `->>`) works. Lists keep their order
in jsonb too: columns holding only lists stay plain JSONField.
"""

import json
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models.fields.json import JSONExact
from django.dispatch import receiver


class OrderedJSONField(models.JSONField):
    description = "A JSON object whose keys keep their order"

    def db_type(self, connection):
        if connection.vendor == "postgresql":
            return "json"
        return super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "postgresql":
            return super().get_db_prep_value(value, connection, prepared)
        if not prepared:
            value = self.get_prep_value(value)
        return json_parameter(value, connection, encoder=self.encoder)


def json_parameter(
    value: Any, connection: BaseDatabaseWrapper, *, encoder: type[json.JSONEncoder] | None = None
) -> Any:
    """`value` as a query parameter for a `json` column (raw SQL writes use it too).

    Django's own adapter sends jsonb: stored into a `json` column it is cast, and the
    cast has already sorted the keys.
    """
    if connection.vendor != "postgresql":
        return connection.ops.adapt_json_value(value, encoder)
    # Imported here: only PostgreSQL needs the driver.
    from django.db.backends.postgresql.operations import get_json_dumps
    from psycopg.types.json import Json

    return Json(value, dumps=get_json_dumps(encoder))


@OrderedJSONField.register_lookup
class OrderedJSONExact(JSONExact):
    """`field=value` compares as jsonb on PostgreSQL, as it did before (`json` has no
    `=` operator)."""

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"({lhs})::jsonb = ({rhs})::jsonb", (*lhs_params, *rhs_params)


@receiver(connection_created)
def _read_json_as_text(sender, connection, **kwargs) -> None:
    """psycopg decodes `json` columns itself; Django asks it for text for jsonb only and
    decodes in JSONField.from_db_value, which cannot take a decoded value. Text for
    `json` too, so both column types reach the field the same way."""
    if connection.vendor == "postgresql":
        from psycopg.types.string import TextLoader

        connection.connection.adapters.register_loader("json", TextLoader)
