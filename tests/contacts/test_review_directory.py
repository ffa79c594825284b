"""The contact directory as an admin and an integrator use it: finding a contact by
the phone number as people write it, and reading its data in the order it came."""

import json

import pytest
from django.forms import CheckboxInput

from contacts.normalize import normalize_phone
from contacts.services import contact_set_opt_out, contact_upsert, transaction_append
from tests.factories import make_contact, make_directory


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        ("(555) 123-4567", "US"),
        ("+1 555 123 4567", "GB"),
        ("020 7946 0958", "GB"),
        ("+81 3-1234-5678", "US"),
        ("\u0664\u0661\u0665 \u0665\u0665\u0665 \u0660\u0661\u0660\u0660", "US"),
    ],
)
def test_a_normalised_phone_normalises_to_itself(raw, country):
    """Workflows normalise a number when rendering it and again when saving it: a
    number read once must be read the same way again, in ASCII E.164."""
    once = normalize_phone(raw, country)
    assert once.isascii() and once.startswith("+")
    assert normalize_phone(once, country) == once
    assert normalize_phone(once, "JP") == once


@pytest.mark.django_db
def test_upsert_takes_a_us_test_number_in_either_form():
    directory = make_directory()
    values = {"first_name": "Ann", "last_name": "Lee", "email": "ann@example.org"}
    first = contact_upsert(
        directory=directory, values={**values, "phone": "555-123-4567"}, embedded_data={}
    )
    again = contact_upsert(
        directory=directory, values={**values, "phone": "+15551234567"}, embedded_data={}
    )
    assert again.contact.pk == first.contact.pk
    assert again.contact.phone == "+15551234567" and again.changed_fields == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "phone=+14155550100",  # the "+" unencoded: the query string makes it a space
        "phone=%2B14155550100",
        "phone=%2B1%20(415)%20555-0100",
        "phone=(415)%20555-0100&directory={directory}",
    ],
)
def test_contacts_api_finds_a_phone_as_integrators_write_it(api_client, query):
    directory = make_directory()
    contact = make_contact(directory=directory, phone="+14155550100")
    make_contact(directory=directory, phone="+14155550199")
    response = api_client.get("/api/v1/contacts/?" + query.format(directory=directory.pk))
    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["results"]] == [contact.pk]


@pytest.mark.django_db
def test_contacts_api_explains_an_unreadable_phone_filter(api_client):
    response = api_client.get("/api/v1/contacts/?phone=%2B12")
    assert response.status_code == 400
    assert response.json() == {
        "phone": [
            "cannot read phone number '+12': not a valid international number; "
            "give it in E.164, e.g. +14155550100"
        ]
    }


@pytest.mark.django_db
@pytest.mark.parametrize("search", ["(415) 555-0100", "415-555-0100", "020 7946 0958"])
def test_admin_search_finds_a_contact_by_the_phone_as_written(admin_client_logged_in, search):
    directory = make_directory()
    make_contact(directory=directory, email="ann@example.org", phone="+14155550100")
    make_contact(directory=directory, email="ben@example.org", phone="+442079460958")
    make_contact(directory=directory, email="cy@example.org", phone="+14155550199")
    page = admin_client_logged_in.get("/admin/contacts/contact/", {"q": search})
    html = page.content.decode()
    expected = "ben@example.org" if search.startswith("020") else "ann@example.org"
    found = [e for e in ("ann@example.org", "ben@example.org", "cy@example.org") if e in html]
    assert found == [expected]


@pytest.mark.django_db
def test_admin_search_by_name_or_email_is_unchanged(admin_client_logged_in):
    make_contact(email="ann@example.org", first_name="Ann", phone="+14155550100")
    make_contact(email="ben2024@example.org", first_name="Ben", phone="+14155550199")
    html = admin_client_logged_in.get("/admin/contacts/contact/", {"q": "ANN"}).content.decode()
    assert "ann@example.org" in html and "ben2024@example.org" not in html


@pytest.mark.django_db
def test_contact_page_shows_embedded_data_and_transactions_in_their_order(
    admin_client_logged_in,
):
    """The mapping's order (kept by the API and the run output) is the order the
    contact page shows, not alphabetical."""
    contact = make_contact(embedded_data={"Zeta": "1", "Case Number": "2", "Alpha": "3"})
    transaction_append(contact=contact, data={"Stage": "Won", "Amount": "10"}, run_id=1)
    html = admin_client_logged_in.get(f"/admin/contacts/contact/{contact.pk}/change/")
    html = html.content.decode()
    assert html.index("&quot;Zeta&quot;") < html.index("&quot;Case Number&quot;")
    assert html.index("&quot;Case Number&quot;") < html.index("&quot;Alpha&quot;")
    assert html.index("&quot;Stage&quot;") < html.index("&quot;Amount&quot;")


def _change_form(admin_client, contact, **changes) -> dict:
    """The contact's change form as the page rendered it, with `changes` typed in."""
    page = admin_client.get(f"/admin/contacts/contact/{contact.pk}/change/")
    form = page.context["adminform"].form
    html = page.content.decode()
    # The page carries the opt-outs it showed, for the save to compare with.
    assert 'type="hidden" name="sms_opted_out_shown"' in html
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field.widget, CheckboxInput):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    data["embedded_data"] = json.dumps(contact.embedded_data)
    data.update(
        {
            "MailingList_contacts-TOTAL_FORMS": "0",
            "MailingList_contacts-INITIAL_FORMS": "0",
            "transactions-TOTAL_FORMS": "0",
            "transactions-INITIAL_FORMS": "0",
        }
    )
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = value
    return data


@pytest.mark.django_db
def test_an_opt_out_that_came_while_the_admin_page_was_open_is_kept(admin_client_logged_in):
    """The person texted STOP while an admin had their page open to fix a typo: saving
    the page cleared the opt-out ("admin (root)") and the next survey went out."""
    contact = make_contact(first_name="Jonsa", phone="+14155550100")
    data = _change_form(admin_client_logged_in, contact, first_name="Jonas")
    contact_set_opt_out(contact=contact, channel="sms", opted_out=True, source="SMS STOP")

    response = admin_client_logged_in.post(f"/admin/contacts/contact/{contact.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    contact.refresh_from_db()
    assert contact.first_name == "Jonas"
    assert contact.sms_opted_out and contact.sms_opted_out_source == "SMS STOP"


@pytest.mark.django_db
def test_an_admin_still_clears_an_opt_out_on_purpose(admin_client_logged_in):
    contact = make_contact(phone="+14155550100")
    contact_set_opt_out(contact=contact, channel="sms", opted_out=True, source="SMS STOP")
    data = _change_form(admin_client_logged_in, contact, sms_opted_out=False)
    response = admin_client_logged_in.post(f"/admin/contacts/contact/{contact.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    contact.refresh_from_db()
    assert not contact.sms_opted_out and contact.sms_opted_out_source == "admin (root)"


@pytest.mark.django_db
def test_an_address_or_number_changed_by_hand_keeps_its_owners_opt_out(
    admin_client_logged_in, api_client
):
    """The person opted out and their contact was deleted; an admin or an integrator
    then gives their address or number to another contact: it stays opted out."""
    directory = make_directory()
    gone = make_contact(directory=directory, email="ada@example.org", phone="+14155550100")
    contact_set_opt_out(contact=gone, channel="email", opted_out=True, source="opt-out link")
    contact_set_opt_out(contact=gone, channel="sms", opted_out=True, source="SMS STOP")
    gone_pk = gone.pk
    gone.delete()

    by_api = make_contact(directory=directory, email="bob@example.org")
    patched = api_client.patch(
        f"/api/v1/contacts/{by_api.pk}/", {"email": "Ada@Example.org"}, format="json"
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["opted_out"] == {"email": True, "sms": False}

    by_admin = make_contact(directory=directory, email="cy@example.org", phone="+14155550199")
    data = _change_form(admin_client_logged_in, by_admin, phone="+14155550100")
    response = admin_client_logged_in.post(f"/admin/contacts/contact/{by_admin.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    by_admin.refresh_from_db()
    assert by_admin.sms_opted_out and not by_admin.email_opted_out
    assert by_admin.sms_opted_out_source.startswith(f"kept from contact {gone_pk}")
