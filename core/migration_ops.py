"""Migration operations of our own."""

from django.db import migrations


class AlterFieldOnPostgreSQL(migrations.AlterField):
    """AlterField whose database change is made on PostgreSQL only.

    For a change that alters the column type on PostgreSQL and nothing elsewhere
    (core.fields.OrderedJSONField: `jsonb` -> `json`): SQLite would rebuild the whole
    table (copy every row) for a column that stays exactly what it was. The migration
    state changes everywhere, as with AlterField.
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return super().describe() + " (PostgreSQL only)"
