"""An opt-out outlives its contact (contacts.models.RetainedOptOut): deleting an
opted-out contact must not let the next Salesforce message create the person anew
and send to them (SPEC: opted-out contacts are never sent to)."""

import pytest
from django.test import Client

from contacts.models import Contact, RetainedOptOut
from contacts.services import contact_set_opt_out
from distributions.models import OutboxMessage, Recipient
from tests.distributions.builders import make_distribution_workflow, send_case
from tests.factories import make_contact, make_directory, make_user


@pytest.fixture(autouse=True)
def outbox_backend(settings):
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"


@pytest.mark.django_db(transaction=True)
def test_an_unsubscribed_person_deleted_in_the_admin_is_not_emailed_again():
    admin = make_user(username="root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    workflow = make_distribution_workflow(owner=admin)
    send_case(browser, workflow)  # the first invitation
    contact = Contact.objects.get()
    contact_set_opt_out(contact=contact, channel="email", opted_out=True, source="opt-out link")
    deleted = browser.post(
        f"/admin/contacts/contact/{contact.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert deleted.status_code == 200
    assert not Contact.objects.filter(pk=contact.pk).exists()
    kept = RetainedOptOut.objects.get()
    assert (kept.channel, kept.value, kept.source) == ("email", contact.email, "opt-out link")

    # Salesforce sends the person again (the address in other letter case): a new
    # contact, opted out from the start, and no second email.
    run = send_case(browser, workflow, ContactEmail=contact.email.upper())
    again = Contact.objects.get()
    assert again.pk != contact.pk
    assert again.email_opted_out
    assert again.email_opted_out_source.startswith(f"kept from contact {contact.pk}, deleted on ")
    line = Recipient.objects.get(workflow_run_id=run.pk)
    assert line.status == "opted_out"
    assert "contact opted out of email" in line.error
    assert OutboxMessage.objects.count() == 1
    # The admin lists what was kept.
    listing = browser.get("/admin/contacts/retainedoptout/").content.decode()
    assert contact.email in listing


@pytest.mark.django_db
def test_a_number_that_sent_stop_stays_opted_out_after_its_contact_is_deleted():
    directory = make_directory()
    texted = make_contact(directory=directory, phone="+14155550100", email="")
    contact_set_opt_out(contact=texted, channel="sms", opted_out=True, source="SMS STOP")
    texted.delete()
    again = make_contact(directory=make_directory(name="Other"), phone="+14155550100", email="")
    assert again.sms_opted_out and not again.email_opted_out


@pytest.mark.django_db
def test_only_clearing_the_opt_out_forgets_it(api_client):
    directory = make_directory()
    gone = make_contact(directory=directory, email="ada@example.org")
    contact_set_opt_out(contact=gone, channel="email", opted_out=True, source="opt-out link")
    gone.delete()
    # A client creating the contact with opted_out false (often just its default) does
    # not undo the person's choice …
    created = api_client.post(
        "/api/v1/contacts/",
        {
            "directory": directory.pk,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.org",
            "opted_out": {"email": False, "sms": False},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["opted_out"] == {"email": True, "sms": False}
    # … clearing it on the contact does, and the record goes.
    cleared = api_client.patch(
        f"/api/v1/contacts/{created.json()['id']}/",
        {"opted_out": {"email": False}},
        format="json",
    )
    assert cleared.json()["opted_out"]["email"] is False
    assert not RetainedOptOut.objects.exists()


@pytest.mark.django_db
def test_contacts_that_never_opted_out_leave_nothing_behind():
    contact = make_contact(email="bob@example.org", phone="+14155550101")
    contact.delete()
    assert not RetainedOptOut.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_unsubscribing_after_the_contact_was_deleted_is_kept_too():
    admin = make_user(username="root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    workflow = make_distribution_workflow(owner=admin)
    send_case(browser, workflow)
    line = Recipient.objects.get()
    Contact.objects.all().delete()  # never opted out: nothing kept yet
    assert not RetainedOptOut.objects.exists()
    page = Client().post(f"/o/{line.link.token}/")
    assert page.status_code == 200
    kept = RetainedOptOut.objects.get()
    assert (kept.channel, kept.value) == ("email", line.email.lower())
    send_case(browser, workflow)  # the person again: created opted out, not emailed
    assert Contact.objects.get().email_opted_out
    assert OutboxMessage.objects.count() == 1
