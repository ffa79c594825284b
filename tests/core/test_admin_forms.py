"""What staff type into the admin's JSON and address fields is checked on the form, with
a message beside the field, instead of being stored and failing later (a respondent's
500, a run's "internal error")."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from contacts.models import Contact
from distributions.models import EmailSuppression, VerifiedSender
from surveys.models import Survey
from tests.factories import make_directory, make_user


def _form(model, data: dict):
    request = RequestFactory().get("/admin/")
    request.user = get_user_model().objects.filter(username="root").first() or make_user(
        username="root", is_staff=True, is_superuser=True
    )
    form_class = admin.site._registry[model].get_form(request)
    return form_class(data=data)


def _errors(model, data: dict, field: str) -> list[str]:
    form = _form(model, data)
    assert not form.is_valid()
    return form.errors.get(field, [])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('[1, {"a": 2}]', "a JSON list of field names"),
        ('{"CaseNumber": 1}', "one item per line (or a JSON list), not a JSON object"),
        ('["CaseNumber", " "]', "field names must not be empty"),
        ('["dup", "CaseNumber", "dup"]', "field names appear more than once: dup"),
    ],
)
def test_survey_embedded_data_fields_must_be_distinct_names(value, message):
    owner = make_user(username="owner")
    data = {"name": "S", "owner": owner.pk, "embedded_data_fields": value, "thank_you_text": "T"}
    assert any(message in error for error in _errors(Survey, data, "embedded_data_fields"))
    data["embedded_data_fields"] = '["CaseNumber", "Priority"]'
    assert "embedded_data_fields" not in _form(Survey, data).errors


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[1, 2]", "must be a JSON object of field names and values"),
        ('{"Region": {"a": 1}}', "holds a list or an object"),
        ('{" ": "x"}', "field names must be 1 to 200 characters"),
    ],
)
def test_contact_embedded_data_must_be_an_object_of_values(value, message):
    data = {
        "directory": make_directory().pk,
        "email": "x1@example.org",
        "embedded_data": value,
        "language": "",
        "time_zone": "",
    }
    assert any(message in error for error in _errors(Contact, data, "embedded_data"))
    data["embedded_data"] = '{"Region": "Norte", "Visits": 3}'
    assert "embedded_data" not in _form(Contact, data).errors


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["not a domain!!", "a@b@c", "@", "x@"])
def test_verified_sender_must_be_an_address_or_a_domain(address):
    errors = _errors(VerifiedSender, {"address": address, "verified": "on"}, "address")
    assert any("neither an email address nor a domain" in error for error in errors)
    for good in ("support@example.com", "@example.com", "example.org"):
        assert _form(VerifiedSender, {"address": good, "verified": "on"}).is_valid(), good


@pytest.mark.django_db
def test_suppression_must_be_an_address():
    errors = _errors(EmailSuppression, {"address": "zzz", "reason": "hard_bounce"}, "address")
    assert errors == ["Enter a valid email address."]
