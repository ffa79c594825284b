"""Add to XM Directory as an admin relies on it: phones of several countries and
spellings, long Salesforce values, and one contact for one person under concurrency."""

import threading

import pytest
from django.db import connections
from django.test import Client

from contacts.models import Contact, MailingList, RetainedOptOut
from contacts.services import contact_set_opt_out
from tests.factories import (
    make_contact,
    make_directory,
    make_mailing_list,
    make_workflow,
    post_soap,
)
from tests.xmflows import test_add_to_directory as base
from tests.xmflows.test_add_to_directory import MAPPING, case_message
from xmflows.models import Run, TaskRun


def directory_task(mailing_list: MailingList, **overrides) -> dict:
    """test_add_to_directory's task, saving only Priority as embedded data (so a second
    message changes nothing else)."""
    return base.directory_task(
        mailing_list, **{"embedded_data": {"Priority": "${event://Priority}"}, **overrides}
    )


@pytest.fixture
def mailing_list(db) -> MailingList:
    return make_mailing_list(name="Customers")


def send(client, workflow, **fields: str | None) -> TaskRun:
    response = post_soap(client, workflow, case_message(**fields))
    assert response.status_code == 200, response.content
    return TaskRun.objects.filter(run__workflow=workflow).latest("id")


@pytest.mark.django_db(transaction=True)
def test_a_us_test_number_saves_the_contact_and_matches_it_again(client, mailing_list):
    """CONTRACT §5 takes any 10-digit US number as written: "(555) 123-4567" was read,
    then refused when the task saved it ("'+15551234567': not a valid international
    number"), so the whole task failed on a number the admin had typed correctly."""
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    task = send(client, workflow, ContactPhone="(555) 123-4567")
    assert task.status == "succeeded", task.error
    assert Contact.objects.get().phone == "+15551234567"
    # Salesforce sending it in international form is the same number.
    task = send(client, workflow, ContactPhone="+1 555 123 4567", Priority="High")
    assert task.status == "succeeded", task.error
    assert task.output["changed_fields"] == ["embedded_data.Priority"]
    assert Contact.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("\u0664\u0661\u0665-\u0665\u0665\u0665-\u0660\u0661\u0660\u0660", "+14155550100"),
        ("\uff14\uff11\uff15 \uff15\uff15\uff15 \uff10\uff11\uff10\uff10", "+14155550100"),
    ],
)
def test_phones_typed_with_other_digits_are_stored_in_ascii_e164(
    client, mailing_list, typed, stored
):
    """Arabic-Indic or full-width digits were kept as typed after "+1": not E.164, not
    dialable, and a different number from the same phone typed in ASCII."""
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    task = send(client, workflow, ContactPhone=typed)
    assert task.status == "succeeded", task.error
    assert Contact.objects.get().phone == stored
    assert task.output["contact"]["phone"] == stored


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("country", "typed", "stored"),
    [
        ("GB", "020 7946 0958", "+442079460958"),
        ("GB", "+1 (415) 555-0100", "+14155550100"),
        ("ES", "612 34 56 78", "+34612345678"),
        ("ES", "0044 20 7946 0958", "+442079460958"),
        ("DE", "030 901820", "+4930901820"),
        ("MX", "55 1234 5678", "+525512345678"),
        ("JP", "03-1234-5678", "+81312345678"),
    ],
)
def test_national_numbers_are_read_in_the_directory_country(client, country, typed, stored):
    mailing_list = make_mailing_list(directory=make_directory(default_country=country))
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    task = send(client, workflow, ContactPhone=typed)
    assert task.status == "succeeded", task.error
    assert task.output["warnings"] == []
    assert Contact.objects.get().phone == stored


@pytest.mark.django_db(transaction=True)
def test_an_over_long_salesforce_text_is_cut_with_a_warning_not_a_failed_task(client, mailing_list):
    """A long text area (up to 131,072 characters in Salesforce) mapped as embedded data
    failed the task permanently, so the contact (and, in a distribute task, the survey)
    was lost for a description."""
    workflow = make_workflow(
        tasks=[
            directory_task(mailing_list, embedded_data={"Description": "${event://Description}"}),
            directory_task(
                mailing_list, mode="transaction", embedded_data={"Notes": "${event://Description}"}
            ),
        ]
    )
    send(client, workflow, Description="é" * 20_000)
    run = Run.objects.get()
    assert run.status == "succeeded"
    save, append = run.task_runs.order_by("position")
    assert save.output["warnings"] == [
        "${event://ContactPhone} names an unknown field",
        "embedded data field 'Description' rendered 20000 characters; only the first 10000 "
        "are kept",
    ]
    assert "only the first 10000 are kept" in append.output["warnings"][-1]
    contact = Contact.objects.get()
    assert contact.embedded_data["Description"] == "é" * 10_000
    assert contact.transactions.get().data["Notes"] == "é" * 10_000


@pytest.mark.django_db(transaction=True)
def test_concurrent_messages_about_one_new_person_make_one_contact(mailing_list):
    """Four notifications (not retries: each its own id) about the same new person,
    spelled in different cases, arrive on four connections at once."""
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    spellings = [
        "new.person@example.org",
        "NEW.PERSON@example.org",
        "New.Person@Example.ORG",
        " new.person@EXAMPLE.org ",
    ]
    bodies = [
        case_message(ContactEmail=email, ContactId="0038a00000Nw01xAAB", Priority=str(index))
        for index, email in enumerate(spellings)
    ]
    barrier = threading.Barrier(len(bodies))
    errors: list[BaseException] = []

    def post(body: bytes) -> None:
        try:
            client = Client()
            barrier.wait(timeout=30)
            assert post_soap(client, workflow, body).status_code == 200
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(Run.objects.values_list("status", flat=True)) == ["succeeded"] * 4
    contact = Contact.objects.get()
    assert list(contact.mailing_lists.all()) == [mailing_list]
    actions = sorted(task.output["action"] for task in TaskRun.objects.all())
    assert actions == ["created", "updated", "updated", "updated"]


@pytest.mark.django_db(transaction=True)
def test_a_new_email_or_phone_whose_owner_opted_out_keeps_the_opt_out(client, mailing_list):
    """An opted-out person's contact was deleted (their opt-out is kept). Salesforce
    then gives that address and number to an existing contact: before, that contact was
    not opted out, so the next survey went to the person who had asked for none."""
    directory = mailing_list.directory
    gone = make_contact(
        directory=directory,
        email="sofia@example.org",
        phone="+14155550100",
        external_data_reference="R0",
    )
    contact_set_opt_out(contact=gone, channel="email", opted_out=True, source="opt-out link")
    contact_set_opt_out(contact=gone, channel="sms", opted_out=True, source="SMS STOP")
    gone_id = gone.pk
    gone.delete()
    existing = make_contact(
        directory=directory, email="old@example.org", external_data_reference="0038a00000Zz01xAAB"
    )
    workflow = make_workflow(tasks=[directory_task(mailing_list)])

    task = send(client, workflow, ContactEmail="Sofia@example.org", ContactPhone="(415) 555-0100")
    assert task.status == "succeeded", task.error
    existing.refresh_from_db()
    assert (existing.email, existing.phone) == ("Sofia@example.org", "+14155550100")
    assert existing.email_opted_out and existing.sms_opted_out
    assert existing.email_opted_out_source == f"kept from contact {gone_id}, deleted on " + (
        f"{RetainedOptOut.objects.get(channel='email').kept_at:%Y-%m-%d}"
    )
    assert task.output["warnings"] == [
        f"email 'Sofia@example.org' was opted out ({existing.email_opted_out_source}): "
        f"contact {existing.pk} is now opted out of email",
        f"phone '+14155550100' was opted out ({existing.sms_opted_out_source}): "
        f"contact {existing.pk} is now opted out of SMS",
    ]
    # An update that changes neither keeps what the contact has and says nothing.
    task = send(client, workflow, ContactEmail="sofia@example.org", ContactPhone="")
    assert task.output["warnings"] == ["${event://ContactPhone} is empty"]


@pytest.mark.django_db(transaction=True)
def test_an_over_long_language_is_left_out_with_a_warning(client, mailing_list):
    """The language is optional, yet a picklist label longer than the field failed the
    whole task (and with it the contact and any survey)."""
    mapping = {**MAPPING, "language": "${event://Language__c}"}
    workflow = make_workflow(tasks=[directory_task(mailing_list, contact=mapping)])
    task = send(client, workflow, Language__c="English (United States)", ContactPhone="")
    assert task.status == "succeeded", task.error
    assert task.output["warnings"] == [
        "${event://ContactPhone} is empty",
        "language is too long (23 characters; at most 20); this language is left out of "
        "the contact",
    ]
    assert Contact.objects.get().language == ""
    task = send(client, workflow, Language__c="en_US", ContactPhone="")
    assert Contact.objects.get().language == "en_US"
