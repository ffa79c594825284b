"""Tests for core.fields: JSON objects read back with their keys in the order saved, on
PostgreSQL (a `json` column there) as on SQLite, and still compared by value."""

import pytest
from django.apps import apps
from django.db import models

from contacts.models import Contact
from contacts.selectors import contact_find, embedded_data_names
from core.fields import OrderedJSONField
from tests.factories import make_contact, make_directory

# Neither alphabetical nor PostgreSQL jsonb's order (shorter keys first).
ORDER = ["Zeta", "Case Number", "A"]

# JSON columns left as Django's JSONField (jsonb on PostgreSQL): lists, whose order jsonb
# keeps, and one object that only code reads, by key. A new JSON column must be put here
# or be an OrderedJSONField.
LIST_OR_CODE_ONLY_COLUMNS = {
    "contacts.Directory.match_rules",  # list of keys, in order
    "contacts.Directory.working_days",  # list of numbers
    "surveys.Survey.embedded_data_fields",  # list of names; DISTINCT over surveys needs =
    "surveys.Question.choices",  # list of texts
    "xmflows.Event.fields",  # list of names
    "distributions.OutboxMessage.headers",  # our own headers, read by name
}


@pytest.mark.django_db
def test_an_object_reads_back_in_the_order_it_was_saved_however_it_is_read():
    directory = make_directory()
    contact = make_contact(
        directory=directory, email="ada@example.com", embedded_data=dict.fromkeys(ORDER, "x")
    )
    assert list(Contact.objects.get(pk=contact.pk).embedded_data) == ORDER
    values = Contact.objects.filter(pk=contact.pk).values_list("embedded_data", flat=True)
    assert list(values.get()) == ORDER
    # contact_find reads with plain SQL (SELECT *), not through the ORM's columns.
    assert list(contact_find(directory=directory, email="ADA@example.com").embedded_data) == ORDER

    Contact.objects.filter(pk=contact.pk).update(embedded_data=dict.fromkeys(ORDER[::-1], "y"))
    assert list(Contact.objects.get(pk=contact.pk).embedded_data) == ORDER[::-1]


@pytest.mark.django_db
def test_objects_are_still_compared_by_value():
    make_contact(embedded_data={})
    make_contact(embedded_data={"Zeta": "1", "A": "2"})
    assert Contact.objects.filter(embedded_data={"Zeta": "1", "A": "2"}).count() == 1
    assert Contact.objects.exclude(embedded_data={}).count() == 1
    # The builder's {a} menu: names of the contacts that have embedded data.
    assert embedded_data_names() == ["A", "Zeta"]


def test_every_json_column_holding_user_ordered_objects_keeps_their_order():
    plain = {
        f"{model._meta.label}.{field.name}"
        for app in ("contacts", "surveys", "distributions", "xmflows")
        for model in apps.get_app_config(app).get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.JSONField) and not isinstance(field, OrderedJSONField)
    }
    assert plain == LIST_OR_CODE_ONLY_COLUMNS
