"""Admin pages of the contact directory render and normalise what staff type."""

import html
import re

import pytest

from contacts.models import Contact
from contacts.services import transaction_append
from tests.factories import make_contact, make_directory, make_mailing_list


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_contact_page_shows_embedded_data_and_timeline_newest_first(admin_client_logged_in):
    directory = make_directory()
    contact = make_contact(
        directory=directory,
        mailing_lists=[make_mailing_list(directory=directory, name="Customers")],
        last_name="Núñez",
        embedded_data={"Store Region": "Norte"},
    )
    transaction_append(contact=contact, data={"Step": "first-touchpoint"}, run_id=1)
    transaction_append(contact=contact, data={"Step": "second-touchpoint"}, run_id=2)
    page = admin_client_logged_in.get(f"/admin/contacts/contact/{contact.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "&quot;Store Region&quot;: &quot;Norte&quot;" in html
    assert html.index("second-touchpoint") < html.index("first-touchpoint")
    # Its mailing lists are named, not "MailingList_contacts object (1)".
    assert "MailingList_contacts object" not in html
    # Opt-out times and sources are the last change (an opt-in too), and say so.
    assert "SMS opt-out last changed by" in html and "Sms opted out at" not in html
    assert re.search(r'<td class="original">\s*<p>\s*Customers\s', html)
    for url in [
        "/admin/contacts/contact/",
        "/admin/contacts/contact/?opted_out=sms",
        "/admin/contacts/mailinglist/",
        "/admin/contacts/directory/",
        f"/admin/contacts/directory/{directory.pk}/change/",
    ]:
        assert admin_client_logged_in.get(url).status_code == 200, url


@pytest.mark.django_db
def test_contact_form_normalises_and_records_opt_out(admin_client_logged_in):
    directory = make_directory()
    response = admin_client_logged_in.post(
        "/admin/contacts/contact/add/",
        {
            "directory": directory.pk,
            "first_name": "Tom",
            "last_name": "O'Brien",
            "email": "Tom@EXAMPLE.org",
            "phone": "(415) 555-0100",
            "embedded_data": "{}",
            "sms_opted_out": "on",
            "MailingList_contacts-TOTAL_FORMS": "0",
            "MailingList_contacts-INITIAL_FORMS": "0",
            "transactions-TOTAL_FORMS": "0",
            "transactions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, [
        response.context["adminform"].form.errors,
        [formset.formset.errors for formset in response.context["inline_admin_formsets"]],
        [
            formset.formset.non_form_errors()
            for formset in response.context["inline_admin_formsets"]
        ],
    ]
    contact = Contact.objects.get()
    assert (contact.email, contact.phone) == ("Tom@example.org", "+14155550100")
    assert contact.sms_opted_out and contact.sms_opted_out_source == "admin (root)"


@pytest.mark.django_db
def test_a_mailing_list_a_workflow_uses_is_not_deleted(admin_client_logged_in, api_client):
    from contacts.models import MailingList
    from tests.factories import make_workflow

    mailing_list = make_mailing_list(name="Temp list")
    unused = make_mailing_list(directory=mailing_list.directory, name="Unused")
    task = {
        "type": "add_to_directory",
        "mode": "embedded_data",
        "mailing_list": mailing_list.pk,
        "contact": {"first_name": "a", "last_name": "b", "email": "${event://ContactEmail}"},
        "embedded_data": {},
    }
    workflow = make_workflow(name="Closed cases", tasks=[task])
    reason = (
        f"workflow 'Closed cases' (id {workflow.pk}), task 1, uses mailing list {mailing_list.pk}"
    )
    url = f"/admin/contacts/mailinglist/{mailing_list.pk}/delete/"
    page = html.unescape(admin_client_logged_in.get(url).content.decode())
    assert "Cannot delete mailing list" in page and reason in page
    admin_client_logged_in.post(url, {"post": "yes"})
    answer = api_client.delete(f"/api/v1/mailing-lists/{mailing_list.pk}/")
    assert answer.status_code == 409
    assert answer.json() == {"detail": f"cannot delete: {reason}"}
    assert MailingList.objects.filter(pk=mailing_list.pk).exists()
    # A list no workflow names goes.
    assert api_client.delete(f"/api/v1/mailing-lists/{unused.pk}/").status_code == 204


@pytest.mark.django_db
def test_directory_lists_are_typed_one_per_line(admin_client_logged_in):
    from contacts.models import Directory

    data = {
        "name": "Lines",
        "default_country": "US",
        "match_rules": "external_data_reference\r\nemail",
        "default_time_zone": "UTC",
        "working_hours_start": "09:00",
        "working_hours_end": "17:00",
        "working_days": "1\r\n2\r\nMon",
    }
    page = admin_client_logged_in.post("/admin/contacts/directory/add/", data)
    assert "line 3: &#x27;Mon&#x27; is not valid" in page.content.decode()
    data["working_days"] = "1\r\n2\r\n3"
    assert admin_client_logged_in.post("/admin/contacts/directory/add/", data).status_code == 302
    directory = Directory.objects.get(name="Lines")
    assert directory.match_rules == ["external_data_reference", "email"]
    assert directory.working_days == [1, 2, 3]


@pytest.mark.django_db
def test_a_new_directory_form_shows_the_defaults_and_saves_with_a_name(admin_client_logged_in):
    from contacts.models import Directory

    form = admin_client_logged_in.get("/admin/contacts/directory/add/").content.decode()
    assert 'id="id_match_rules">\nemail\nexternal_data_reference</textarea>' in form
    assert 'id="id_working_days">\n1\n2\n3\n4\n5</textarea>' in form
    data = {
        "name": "Named only",
        "default_country": "US",
        "match_rules": "email\r\nexternal_data_reference",
        "default_time_zone": "UTC",
        "working_hours_start": "09:00",
        "working_hours_end": "17:00",
        "working_days": "",  # cleared: it means Monday to Friday, and says so
    }
    assert admin_client_logged_in.post("/admin/contacts/directory/add/", data).status_code == 302
    assert Directory.objects.get(name="Named only").working_days == [1, 2, 3, 4, 5]


@pytest.mark.django_db
def test_lists_and_their_contacts_stay_in_one_directory(admin_client_logged_in):
    home = make_directory(name="Home")
    away = make_directory(name="Away")
    customers = make_mailing_list(directory=home, name="Customers")
    elsewhere = make_mailing_list(directory=away, name="Elsewhere")
    contact = make_contact(directory=home, mailing_lists=[customers])
    # A list with contacts does not move to another directory …
    moved = admin_client_logged_in.post(
        f"/admin/contacts/mailinglist/{customers.pk}/change/",
        {"name": "Customers", "directory": str(away.pk)},
    )
    assert moved.status_code == 200
    assert "this list has 1 contact of its directory" in html.unescape(moved.content.decode())
    customers.refresh_from_db()
    assert customers.directory_id == home.pk
    # … an empty one does.
    empty = make_mailing_list(directory=home, name="Empty")
    assert (
        admin_client_logged_in.post(
            f"/admin/contacts/mailinglist/{empty.pk}/change/",
            {"name": "Empty", "directory": str(away.pk)},
        ).status_code
        == 302
    )
    # A contact does not join another directory's list.
    through = contact.mailing_lists.through
    membership = through.objects.get(contact=contact)
    page = admin_client_logged_in.post(
        f"/admin/contacts/contact/{contact.pk}/change/",
        {
            "directory": str(home.pk),
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "email": contact.email,
            "phone": "",
            "external_data_reference": "",
            "language": "",
            "time_zone": "",
            "embedded_data": "{}",
            "MailingList_contacts-TOTAL_FORMS": "2",
            "MailingList_contacts-INITIAL_FORMS": "1",
            "MailingList_contacts-MIN_NUM_FORMS": "0",
            "MailingList_contacts-MAX_NUM_FORMS": "1000",
            "MailingList_contacts-0-id": str(membership.pk),
            "MailingList_contacts-0-contact": str(contact.pk),
            "MailingList_contacts-0-mailinglist": str(customers.pk),
            "MailingList_contacts-1-id": "",
            "MailingList_contacts-1-contact": str(contact.pk),
            "MailingList_contacts-1-mailinglist": str(elsewhere.pk),
            "transactions-TOTAL_FORMS": "0",
            "transactions-INITIAL_FORMS": "0",
            "transactions-MIN_NUM_FORMS": "0",
            "transactions-MAX_NUM_FORMS": "0",
        },
    )
    assert page.status_code == 200, page.status_code
    assert "is a list of another directory (Away)" in html.unescape(page.content.decode())
    assert list(contact.mailing_lists.all()) == [customers]
