"""Contact services: deduplicating upsert (also under concurrency), transactions, opt-outs."""

import contextlib
import threading

import pytest
from django.db import IntegrityError, connection, transaction

from contacts import services
from contacts.exceptions import ContactError, DuplicateContactError
from contacts.models import Contact, Transaction
from contacts.services import (
    contact_create,
    contact_find,
    contact_set_opt_out,
    contact_update,
    contact_upsert,
    transaction_append,
)
from tests.conftest import using_postgres
from tests.factories import make_contact, make_directory, make_mailing_list

PERSON = {
    "first_name": "Sofía",
    "last_name": "Núñez",
    "email": "Sofia.Nunez@Example.org",
    "phone": "(415) 555-0100",
    "external_data_reference": "0038a00000Pq02xAAB",
}


@pytest.mark.django_db
def test_upsert_creates_a_normalised_contact_with_exact_embedded_names():
    directory = make_directory()
    mailing_list = make_mailing_list(directory=directory)
    result = contact_upsert(
        directory=directory,
        values=PERSON,
        embedded_data={"CaseNumber": "00002102", "caseNumber": "x", "Store Region": "Norte"},
        mailing_list=mailing_list,
    )
    assert result.created is True
    contact = Contact.objects.get()
    assert contact == result.contact
    assert (contact.first_name, contact.last_name) == ("Sofía", "Núñez")
    assert contact.email == "Sofia.Nunez@example.org"
    assert contact.phone == "+14155550100"
    assert contact.embedded_data == {
        "CaseNumber": "00002102",
        "caseNumber": "x",
        "Store Region": "Norte",
    }
    assert list(contact.mailing_lists.all()) == [mailing_list]
    assert (
        "email" in result.changed_fields and "embedded_data.Store Region" in result.changed_fields
    )


@pytest.mark.django_db
def test_upsert_matches_email_case_insensitively_and_merges_embedded_data():
    directory = make_directory()
    first = contact_upsert(
        directory=directory, values=PERSON, embedded_data={"CaseNumber": "1", "Priority": "High"}
    )
    second = contact_upsert(
        directory=directory,
        values={**PERSON, "email": "SOFIA.NUNEZ@EXAMPLE.ORG", "last_name": "Núñez García"},
        embedded_data={"CaseNumber": "2", "Region": "EMEA"},
    )
    assert second.created is False
    assert second.contact.pk == first.contact.pk
    assert Contact.objects.count() == 1
    contact = Contact.objects.get()
    # A case-only difference is the same address: the stored spelling is kept.
    assert contact.email == "Sofia.Nunez@example.org"
    assert contact.last_name == "Núñez García"
    assert contact.embedded_data == {"CaseNumber": "2", "Priority": "High", "Region": "EMEA"}
    assert sorted(second.changed_fields) == [
        "embedded_data.CaseNumber",
        "embedded_data.Region",
        "last_name",
    ]


@pytest.mark.django_db
def test_empty_values_never_erase_existing_ones():
    directory = make_directory()
    contact_upsert(directory=directory, values=PERSON, embedded_data={"Priority": "High"})
    result = contact_upsert(
        directory=directory,
        values={**PERSON, "phone": "", "language": ""},
        embedded_data={"Priority": "", "Region": ""},
    )
    contact = Contact.objects.get()
    assert contact.phone == "+14155550100"
    assert contact.embedded_data == {"Priority": "High", "Region": ""}
    assert result.changed_fields == ["embedded_data.Region"]


@pytest.mark.django_db
def test_unchanged_contact_is_not_rewritten():
    directory = make_directory()
    first = contact_upsert(directory=directory, values=PERSON, embedded_data={"A": "1"})
    again = contact_upsert(directory=directory, values=PERSON, embedded_data={"A": "1"})
    assert again.changed_fields == []
    assert Contact.objects.get().updated_at == first.contact.updated_at


@pytest.mark.django_db
def test_external_data_reference_matches_when_the_email_changed():
    directory = make_directory()
    contact_upsert(directory=directory, values=PERSON, embedded_data={})
    result = contact_upsert(
        directory=directory,
        values={
            **PERSON,
            "email": "sofia@new-example.org",
            "external_data_reference": "0038A00000PQ02XAAB",
        },
        embedded_data={},
    )
    assert result.created is False
    assert Contact.objects.get().email == "sofia@new-example.org"


@pytest.mark.django_db
def test_rules_order_decides_between_two_candidates():
    directory = make_directory(match_rules=["external_data_reference", "email"])
    by_email = make_contact(directory=directory, email="a@example.org", external_data_reference="")
    by_reference = make_contact(directory=directory, email="", external_data_reference="REF-1")
    result = contact_upsert(
        directory=directory,
        values={
            "first_name": "A",
            "last_name": "B",
            "email": "a@example.org",
            "external_data_reference": "ref-1",
        },
        embedded_data={},
    )
    assert result.contact.pk == by_reference.pk
    # The email belongs to the other contact: kept there, said plainly, no crash.
    assert result.warnings == [
        f"email 'a@example.org' already belongs to contact {by_email.pk}; "
        f"contact {by_reference.pk} keeps ''"
    ]
    assert Contact.objects.count() == 2


@pytest.mark.django_db
def test_directories_are_separate():
    one, two = make_directory(), make_directory()
    contact_upsert(directory=one, values=PERSON, embedded_data={})
    result = contact_upsert(directory=two, values=PERSON, embedded_data={})
    assert result.created is True
    assert Contact.objects.count() == 2


@pytest.mark.django_db
def test_phone_only_contacts_are_matched_by_phone():
    directory = make_directory()
    values = {"first_name": "Mei", "last_name": "Tanaka", "phone": "+44 20 7946 0004"}
    first = contact_upsert(directory=directory, values=values, embedded_data={})
    second = contact_upsert(directory=directory, values=values, embedded_data={"X": "1"})
    assert second.contact.pk == first.contact.pk and second.created is False


@pytest.mark.django_db
def test_a_contact_needs_something_to_be_recognised_by():
    with pytest.raises(
        ContactError, match="email, phone and external data reference are all empty"
    ):
        contact_upsert(
            directory=make_directory(),
            values={"first_name": "A", "last_name": "B"},
            embedded_data={},
        )


@pytest.mark.django_db
def test_upsert_refuses_invalid_values_naming_the_field():
    with pytest.raises(ContactError) as error:
        contact_upsert(
            directory=make_directory(), values={**PERSON, "phone": "(415) 55"}, embedded_data={}
        )
    assert error.value.field == "phone"
    assert error.value.message == "cannot read phone number '(415) 55' for country US"


@pytest.mark.django_db
def test_a_contact_can_be_on_several_lists():
    directory = make_directory()
    one = make_mailing_list(directory=directory)
    two = make_mailing_list(directory=directory)
    contact_upsert(directory=directory, values=PERSON, embedded_data={}, mailing_list=one)
    contact_upsert(directory=directory, values=PERSON, embedded_data={}, mailing_list=two)
    assert set(Contact.objects.get().mailing_lists.all()) == {one, two}


@pytest.mark.django_db
def test_mailing_list_of_another_directory_is_refused():
    with pytest.raises(ContactError, match="belongs to another directory"):
        contact_upsert(
            directory=make_directory(),
            values=PERSON,
            embedded_data={},
            mailing_list=make_mailing_list(),
        )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("field", ["email", "external_data_reference"])
def test_database_refuses_a_duplicate_key_in_any_case(field):
    directory = make_directory()
    make_contact(directory=directory, **{field: "Key@Example.org"})
    with pytest.raises(IntegrityError), transaction.atomic():
        make_contact(directory=directory, **{field: "key@example.ORG"})
    # Blank keys are not identities: many contacts may have none.
    make_contact(directory=directory, **{field: ""})
    make_contact(directory=directory, **{field: ""})


@pytest.mark.django_db(transaction=True)
def test_upsert_recovers_when_a_concurrent_creator_won(monkeypatch):
    """The look-up misses a contact created meanwhile: the insert fails on the unique
    constraint, and the retry updates that contact instead of failing or duplicating."""
    directory = make_directory()
    winner = make_contact(directory=directory, email="sofia.nunez@example.org")
    real_match = services.contact_match
    calls = []

    def stale_first_lookup(**kwargs):
        calls.append(1)
        return None if len(calls) == 1 else real_match(**kwargs)

    monkeypatch.setattr(services, "contact_match", stale_first_lookup)
    result = contact_upsert(directory=directory, values=PERSON, embedded_data={"Priority": "Low"})
    assert len(calls) == 2
    assert result.created is False and result.contact.pk == winner.pk
    assert Contact.objects.count() == 1
    assert Contact.objects.get().embedded_data == {"Priority": "Low"}


def _run_in_threads(count: int, target) -> list:
    results: list = [None] * count
    errors: list = []

    def worker(index: int) -> None:
        try:
            results[index] = target(index)
        except Exception as error:
            errors.append(error)
        finally:
            # Each thread has its own connection; close it so the test database can go.
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_upserts_of_one_new_person_make_one_contact():
    directory = make_directory()
    mailing_list = make_mailing_list(directory=directory)
    for round_number in range(3):
        email = f"new.person{round_number}@example.org"
        start = threading.Barrier(4)

        def upsert(index: int, email=email, start=start):
            start.wait(timeout=10)
            return contact_upsert(
                directory=directory,
                values={
                    **PERSON,
                    "email": email.upper() if index % 2 else email,
                    "external_data_reference": "",
                },
                embedded_data={f"Run{index}": str(index)},
                mailing_list=mailing_list,
            )

        results = _run_in_threads(4, upsert)
        contacts = Contact.objects.filter(email__iexact=email)
        assert contacts.count() == 1
        assert sum(result.created for result in results) == 1
        # Every run's embedded data survived: updates were serialised, not lost.
        assert contacts.get().embedded_data == {f"Run{i}": str(i) for i in range(4)}
    assert mailing_list.contacts.count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@pytest.mark.skipif(not using_postgres(), reason="needs PostgreSQL (DATABASE_URL) for a real race")
def test_both_lookups_miss_then_one_insert_loses_on_postgres(monkeypatch):
    """Forces the worst interleaving: both runs look up before either inserts. (On SQLite
    the IMMEDIATE transaction makes this interleaving impossible.)"""
    directory = make_directory()
    real_match = services.contact_match
    both_looked = threading.Barrier(2)
    local = threading.local()

    def lookup_then_wait(**kwargs):
        found = real_match(**kwargs)
        if not getattr(local, "waited", False):
            local.waited = True
            both_looked.wait(timeout=10)
        return found

    monkeypatch.setattr(services, "contact_match", lookup_then_wait)
    results = _run_in_threads(
        2,
        lambda index: contact_upsert(
            directory=directory, values=PERSON, embedded_data={f"Run{index}": "x"}
        ),
    )
    assert Contact.objects.count() == 1
    assert sorted(result.created for result in results) == [False, True]
    assert Contact.objects.get().embedded_data == {"Run0": "x", "Run1": "x"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@pytest.mark.skipif(not using_postgres(), reason="needs PostgreSQL (DATABASE_URL) for a real race")
def test_two_runs_for_one_new_phone_only_contact_make_one_on_postgres(monkeypatch):
    """Phones are not unique, so no insert fails: the look-ups must take turns. Each
    run waits (at most 2 s) at its save for the other; when the look-ups take turns
    the other never comes, and the second run finds the first's contact."""
    directory = make_directory()
    both_saving = threading.Barrier(2)
    real_save = Contact.save

    def save_when_both_do(self, *args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            both_saving.wait(timeout=2)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Contact, "save", save_when_both_do)
    results = _run_in_threads(
        2,
        lambda index: contact_upsert(
            directory=directory,
            values={"phone": "+14155550123"},
            embedded_data={f"Run{index}": "x"},
        ),
    )
    assert Contact.objects.count() == 1
    assert sorted(result.created for result in results) == [False, True]
    assert Contact.objects.get().embedded_data == {"Run0": "x", "Run1": "x"}


@pytest.mark.django_db
def test_contact_find_uses_the_rules():
    directory = make_directory()
    contact = make_contact(
        directory=directory, email="Ann@Example.org", external_data_reference="R1"
    )
    assert (
        contact_find(directory=directory, email="ann@example.ORG", external_data_reference="")
        == contact
    )
    assert contact_find(directory=directory, email="", external_data_reference="r1") == contact
    assert (
        contact_find(directory=directory, email="nobody@example.org", external_data_reference="")
        is None
    )
    assert contact_find(directory=make_directory(), email="ann@example.org") is None


@pytest.mark.django_db
def test_transactions_append_to_the_timeline():
    contact = make_contact()
    first, _ = transaction_append(
        contact=contact, data={"Amount": "10", "Store": "Madrid"}, run_id=7
    )
    second, _ = transaction_append(contact=contact, data={"Amount": "12"}, run_id=None)
    assert list(contact.transactions.all()) == [second, first]
    assert Transaction.objects.get(pk=first.pk).data == {"Amount": "10", "Store": "Madrid"}
    assert Transaction.objects.filter(run_id=7).get() == first


@pytest.mark.django_db
def test_opt_out_is_set_and_cleared_with_its_source():
    contact = make_contact()
    assert contact_set_opt_out(contact=contact, channel="sms", opted_out=True, source="SMS STOP")
    assert not contact_set_opt_out(contact=contact, channel="sms", opted_out=True, source="again")
    contact.refresh_from_db()
    assert contact.sms_opted_out and not contact.email_opted_out
    assert contact.sms_opted_out_source == "SMS STOP" and contact.sms_opted_out_at is not None
    assert contact_set_opt_out(contact=contact, channel="sms", opted_out=False, source="SMS START")
    contact.refresh_from_db()
    assert not contact.sms_opted_out and contact.sms_opted_out_source == "SMS START"
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        contact_set_opt_out(contact=contact, channel="fax", opted_out=True, source="x")


@pytest.mark.django_db
def test_manual_create_and_update_refuse_duplicates():
    directory = make_directory()
    make_contact(directory=directory, email="taken@example.org", external_data_reference="T1")
    with pytest.raises(DuplicateContactError) as error:
        contact_create(directory=directory, values={"email": "TAKEN@example.org"})
    assert error.value.field == "email"
    assert error.value.message == "a contact with this email already exists in this directory"
    other = contact_create(directory=directory, values={"email": "free@example.org"})
    with pytest.raises(DuplicateContactError, match="external data reference already exists"):
        contact_update(contact=other, values={"external_data_reference": "t1"})
    # Manual edits do clear a field set to "" (unlike workflow upserts).
    contact_update(contact=other, values={"phone": "+44 20 7946 0001"})
    contact_update(contact=other, values={"phone": ""})
    other.refresh_from_db()
    assert other.phone == ""


@pytest.mark.django_db
def test_the_first_rule_wins_even_over_an_older_contact():
    directory = make_directory(match_rules=["email", "external_data_reference"])
    older = make_contact(directory=directory, email="", external_data_reference="REF-9")
    newer = make_contact(directory=directory, email="b@example.org", external_data_reference="")
    found = contact_find(
        directory=directory, email="B@example.org", external_data_reference="ref-9"
    )
    assert found.pk == newer.pk != older.pk


@pytest.mark.django_db
@pytest.mark.skipif(using_postgres(), reason="reads SQLite's query plan")
def test_the_contact_look_up_searches_the_unique_indexes():
    # Every run that saves a contact makes this look-up: a scan of the directory would
    # make intake-to-survey time grow with the directory.
    directory = make_directory()
    make_contact(directory=directory, email="c@example.org", external_data_reference="REF-3")
    with connection.execute_wrapper(_capture := _Capture()):
        contact_find(directory=directory, email="c@example.org", external_data_reference="x")
    ((sql, params),) = _capture.queries
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "contact_email_unique_in_directory" in plan, plan
    assert "contact_extref_unique_in_directory" in plan, plan
    assert "SCAN" not in plan, plan


class _Capture:
    def __init__(self) -> None:
        self.queries: list[tuple[str, tuple]] = []

    def __call__(self, execute, sql, params, many, context):
        self.queries.append((sql, params))
        return execute(sql, params, many, context)
