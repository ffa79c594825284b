"""Task "XM Directory: Add to directory", end to end from a real outbound message POST."""

import itertools

import pytest

from contacts.models import Contact, Directory, MailingList, Transaction
from tests.conftest import fixture_bytes, shared_samples
from tests.factories import event_path, make_contact, make_mailing_list, make_user, make_workflow
from tests.soap_builders import build_outbound_message
from xmflows import task_types
from xmflows.demo import DEMO_DIRECTORY_NAME, DEMO_MAILING_LIST_NAME, demo_seed
from xmflows.engine import context_for
from xmflows.models import Run, TaskRun

MAPPING = {
    "first_name": "${event://First_Name__c}",
    "last_name": "${event://Last_Name__c}",
    "email": "${event://ContactEmail}",
    "phone": "${event://ContactPhone}",
    "external_data_reference": "${event://ContactId}",
    "language": "",
}
EMBEDDED = {"CaseNumber": "${event://CaseNumber}", "Priority": "${event://Priority}"}
_notification_numbers = itertools.count(1)


def directory_task(mailing_list: MailingList, **overrides) -> dict:
    task = {
        "type": "add_to_directory",
        "mode": "embedded_data",
        "mailing_list": mailing_list.pk,
        "contact": dict(MAPPING),
        "embedded_data": dict(EMBEDDED),
    }
    task.update(overrides)
    return task


def post(client, workflow, body: bytes) -> None:
    response = client.post(
        event_path(workflow),
        body,
        content_type="text/xml; charset=utf-8",
        HTTP_SOAPACTION='""',
    )
    assert response.status_code == 200, response.content


def case_message(**fields: str | None) -> bytes:
    """One Case notification with a fresh notification id (a new event, not a retry)."""
    number = next(_notification_numbers)
    values = {
        "Id": f"5008a00002Zz{number:04d}AAB",
        "CaseNumber": f"0000{number:04d}",
        "ContactEmail": "jonas.berg@example.org",
        "ContactId": "0038a00000Zz01xAAB",
        "First_Name__c": "Jonas",
        "Last_Name__c": "Berg",
        "Priority": "Low",
    }
    values.update(fields)
    return build_outbound_message(
        [{"id": f"04l8a00000Zz{number:04d}AAR", "fields": values}], object_type="Case"
    )


def only_task_run(run: Run | None = None) -> TaskRun:
    run = run or Run.objects.get()
    return TaskRun.objects.get(run=run)


@pytest.fixture
def mailing_list(db) -> MailingList:
    return make_mailing_list(name="Customers")


@pytest.mark.django_db(transaction=True)
def test_case_closed_creates_the_contact(client, api_client, mailing_list):
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    post(client, workflow, fixture_bytes("salesforce/case_closed.xml"))

    contact = Contact.objects.get()
    assert (contact.first_name, contact.last_name) == ("Jonas", "Berg")
    assert contact.email == "jonas.berg@example.org"
    assert contact.phone == "+46855501001"
    assert contact.external_data_reference == "0038a00000Zz01xAAB"
    assert contact.embedded_data == {"CaseNumber": "00003101", "Priority": "High"}
    assert list(contact.mailing_lists.all()) == [mailing_list]

    run = Run.objects.get()
    assert run.status == "succeeded"
    assert run.email == "jonas.berg@example.org"
    assert run.state["contact_id"] == contact.pk
    output = only_task_run(run).output
    assert output["action"] == "created"
    assert output["contact_id"] == contact.pk
    assert output["mailing_list_id"] == mailing_list.pk
    assert output["contact"]["phone"] == "+46855501001"
    assert output["embedded_data"] == {"CaseNumber": "00003101", "Priority": "High"}
    assert "embedded_data.CaseNumber" in output["changed_fields"]
    assert output["warnings"] == []
    # A run is found by the contact's email in the reports API.
    runs = api_client.get("/api/v1/runs/?email=JONAS.BERG@example.org").json()["results"]
    assert [r["id"] for r in runs] == [run.pk]
    assert runs[0]["tasks"][0]["output"]["contact_id"] == contact.pk


@pytest.mark.django_db(transaction=True)
def test_case_batch_creates_three_contacts_and_warns_about_missing_fields(client, mailing_list):
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    post(client, workflow, fixture_bytes("salesforce/case_batch_3.xml"))

    names = sorted(Contact.objects.values_list("first_name", "last_name", "email"))
    assert names == [
        ("Lukas", "Müller & Söhne", "lukas.muller@example.org"),
        ("Siobhán", "O'Donnell", "siobhan.odonnell@example.org"),
        ("Zoé", "Lefèvre", "zoe.lefevre@example.org"),
    ]
    assert mailing_list.contacts.count() == 3
    assert sorted(Run.objects.values_list("status", flat=True)) == ["succeeded"] * 3
    # These notifications carry no phone, contact id nor priority: each run says so.
    for task_run in TaskRun.objects.all():
        assert task_run.output["warnings"] == [
            "${event://ContactPhone} names an unknown field",
            "${event://ContactId} names an unknown field",
            "${event://Priority} names an unknown field",
        ]
    zoe = Contact.objects.get(email="zoe.lefevre@example.org")
    assert zoe.phone == "" and zoe.external_data_reference == ""
    assert zoe.embedded_data == {"CaseNumber": "00003111", "Priority": ""}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not shared_samples(), reason="../shared/samples is not present")
def test_shared_case_samples_become_contacts(client, mailing_list):
    case_samples = [p for p in shared_samples() if b'xsi:type="sf:Case"' in p.read_bytes()]
    assert case_samples
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    for sample in case_samples:
        post(client, workflow, sample.read_bytes())
    runs = list(Run.objects.select_related("notification"))
    assert runs and all(run.status == "succeeded" for run in runs), [
        (run.reason, [t.error for t in run.task_runs.all()]) for run in runs
    ]
    for run in runs:
        fields = run.notification.payload["fields"]
        contact = Contact.objects.get(email__iexact=fields["ContactEmail"])
        assert contact.first_name == fields["First_Name__c"]
        assert contact.last_name == fields["Last_Name__c"]
        assert contact.mailing_lists.filter(pk=mailing_list.pk).exists()
        if fields.get("ContactPhone"):
            assert contact.phone.startswith("+") and " " not in contact.phone
    by_name = {(c.first_name, c.last_name): c for c in Contact.objects.all()}
    if any(p.name == "case_batch_3.xml" for p in case_samples):
        sofia = by_name[("Sofía", "Núñez")]
        assert sofia.phone == "+442079460002"
        assert sofia.embedded_data == {"CaseNumber": "00002102", "Priority": "Medium"}
        assert by_name[("Tom", "O'Brien")].email == "tom.obrien@example.org"


@pytest.mark.django_db(transaction=True)
def test_the_same_person_again_is_updated_not_duplicated(client, mailing_list):
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    post(client, workflow, case_message(CaseNumber="00000001", Priority="Low"))
    post(
        client,
        workflow,
        case_message(ContactEmail="Jonas.BERG@Example.org", CaseNumber="00000002", Priority=None),
    )
    contact = Contact.objects.get()
    assert contact.email == "jonas.berg@example.org"
    # The new case number replaces the old one; the nil Priority does not erase "Low".
    assert contact.embedded_data == {"CaseNumber": "00000002", "Priority": "Low"}
    first, second = TaskRun.objects.order_by("run_id")
    assert first.output["action"] == "created"
    assert second.output["action"] == "updated"
    assert second.output["contact_id"] == contact.pk
    assert second.output["changed_fields"] == ["embedded_data.CaseNumber"]


@pytest.mark.django_db(transaction=True)
def test_transaction_mode_appends_to_the_timeline(client, mailing_list):
    transaction_task = directory_task(
        mailing_list,
        mode="transaction",
        embedded_data={"CaseNumber": "${event://CaseNumber}", "Closed by": "${event://Priority}"},
    )
    workflow = make_workflow(tasks=[directory_task(mailing_list), transaction_task])
    post(client, workflow, case_message(CaseNumber="00000010", Priority="High"))
    post(client, workflow, case_message(CaseNumber="00000011", Priority="Low"))

    contact = Contact.objects.get()
    transactions = list(contact.transactions.all())
    assert [t.data for t in transactions] == [
        {"CaseNumber": "00000011", "Closed by": "Low"},
        {"CaseNumber": "00000010", "Closed by": "High"},
    ]
    runs = list(Run.objects.order_by("id"))
    assert [t.run_id for t in reversed(transactions)] == [run.pk for run in runs]
    last_run = runs[-1]
    assert last_run.status == "succeeded"
    assert last_run.state["transaction_id"] == transactions[0].pk
    assert last_run.state["transaction_data"] == {"CaseNumber": "00000011", "Closed by": "Low"}
    output = TaskRun.objects.get(run=last_run, position=1).output
    assert output["transaction_id"] == transactions[0].pk
    assert output["contact_id"] == contact.pk


@pytest.mark.django_db(transaction=True)
def test_transaction_mode_makes_the_contact_a_member_of_its_mailing_list(client, mailing_list):
    """The task names a mailing list: a contact of the directory that was not on it is
    added, so a later distribution to the list reaches them; the output says so."""
    other_list = make_mailing_list(name="Orders", directory=mailing_list.directory)
    contact = make_contact(mailing_lists=[mailing_list], email="jonas.berg@example.org")
    workflow = make_workflow(tasks=[directory_task(other_list, mode="transaction")])
    post(client, workflow, case_message())
    post(client, workflow, case_message())
    first, second = TaskRun.objects.order_by("run_id")
    assert first.status == "succeeded", first.error
    assert (first.output["mailing_list_id"], first.output["added_to_mailing_list"]) == (
        other_list.pk,
        True,
    )
    assert second.output["added_to_mailing_list"] is False
    assert set(contact.mailing_lists.values_list("pk", flat=True)) == {
        mailing_list.pk,
        other_list.pk,
    }
    assert contact.transactions.count() == 2


@pytest.mark.django_db(transaction=True)
def test_embedded_data_keeps_the_order_of_the_mapping(client, api_client, mailing_list):
    # Neither alphabetical nor PostgreSQL jsonb's order (shorter keys first).
    order = ["Zeta", "Case Number", "A"]
    mapping = {name: "${event://CaseNumber}" for name in order}
    workflow = make_workflow(
        tasks=[
            directory_task(mailing_list, embedded_data=mapping),
            directory_task(mailing_list, mode="transaction", embedded_data=mapping),
        ]
    )
    post(client, workflow, case_message())

    (contact,) = api_client.get("/api/v1/contacts/").json()["results"]
    assert list(contact["embedded_data"]) == order
    assert list(contact["transactions"][0]["data"]) == order
    (run,) = api_client.get(f"/api/v1/runs/?workflow={workflow.pk}").json()["results"]
    assert list(run["tasks"][0]["output"]["embedded_data"]) == order


@pytest.mark.django_db(transaction=True)
def test_transaction_for_an_unknown_contact_fails_the_run(client, api_client, mailing_list):
    workflow = make_workflow(
        tasks=[directory_task(mailing_list, mode="transaction", embedded_data={"A": "1"})]
    )
    post(client, workflow, case_message(ContactEmail="Nobody@Example.org", ContactId=None))
    assert not Transaction.objects.exists()
    assert not Contact.objects.exists()
    run = api_client.get(f"/api/v1/runs/?workflow={workflow.pk}").json()["results"][0]
    assert run["status"] == "failed"
    assert run["tasks"][0]["status"] == "failed"
    # The address as the message gave it, not its normalized form.
    assert run["tasks"][0]["error"] == "contact not found: Nobody@Example.org"
    assert "contact not found: Nobody@Example.org" in run["reason"]


@pytest.mark.django_db(transaction=True)
def test_a_required_field_mapped_to_a_missing_field_fails_naming_both(
    client, api_client, mailing_list
):
    contact_map = {**MAPPING, "email": "${event://Email__c}"}
    workflow = make_workflow(tasks=[directory_task(mailing_list, contact=contact_map)])
    post(client, workflow, case_message())
    assert not Contact.objects.exists()
    run = api_client.get("/api/v1/runs/?status=failed").json()["results"][0]
    error = "email is required but rendered empty from '${event://Email__c}'"
    assert run["tasks"][0]["error"] == error
    assert "${event://Email__c} names an unknown field" in run["tasks"][0]["output"]["warnings"]


@pytest.mark.django_db(transaction=True)
def test_an_empty_first_name_fails_the_task(client, mailing_list):
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    post(client, workflow, case_message(First_Name__c="  "))
    assert only_task_run().error == (
        "first name is required but rendered empty from '${event://First_Name__c}'"
    )
    assert Run.objects.get().status == "failed"


@pytest.mark.django_db(transaction=True)
def test_an_unreadable_optional_phone_is_left_out_with_a_warning(client, mailing_list):
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    post(client, workflow, case_message(ContactPhone="(415) 55"))
    task = only_task_run()
    assert task.status == "succeeded", task.error
    assert task.output["warnings"] == [
        "cannot read phone number '(415) 55' for country US; this phone is left out of the contact"
    ]
    contact = Contact.objects.get()
    assert (contact.email, contact.phone) == ("jonas.berg@example.org", "")
    # A later message with a readable phone fills it in; a bad one does not erase it.
    post(client, workflow, case_message(ContactPhone="(415) 555-0100"))
    post(client, workflow, case_message(ContactPhone="(415) 55"))
    contact.refresh_from_db()
    assert contact.phone == "+14155550100"


@pytest.mark.django_db(transaction=True)
def test_an_unreadable_required_email_still_fails_the_task(client, mailing_list):
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    post(client, workflow, case_message(ContactEmail="jonas.berg@", ContactPhone="(415) 55"))
    assert only_task_run().error == (
        "not a valid email address: 'jonas.berg@'; "
        "cannot read phone number '(415) 55' for country US"
    )
    assert not Contact.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_unknown_placeholders_are_warnings_in_the_output(client, mailing_list):
    embedded = {
        "Region": "${event://Region__c}",
        "Fallback": "${event://Region__c?default=Unknown}",
        "Odd": "${x://y}",
        "Greeting": "Hello ${event://First_Name__c}",
    }
    workflow = make_workflow(tasks=[directory_task(mailing_list, embedded_data=embedded)])
    post(client, workflow, case_message())
    task_run = only_task_run()
    assert task_run.status == "succeeded"
    # A set: PostgreSQL's jsonb does not keep the mapping's key order.
    assert set(task_run.output["warnings"]) == {
        "${event://ContactPhone} names an unknown field",
        "${event://Region__c} names an unknown field",
        "${event://Region__c?default=Unknown} names an unknown field; used the fallback 'Unknown'",
        "${x://y} has an unknown kind 'x'",
    }
    assert len(task_run.output["warnings"]) == 4
    assert Contact.objects.get().embedded_data == {
        "Region": "",
        "Fallback": "Unknown",
        "Odd": "",
        "Greeting": "Hello Jonas",
    }


@pytest.mark.django_db(transaction=True)
def test_a_deleted_mailing_list_fails_the_task(client, mailing_list):
    workflow = make_workflow(tasks=[directory_task(mailing_list)])
    list_id = mailing_list.pk
    mailing_list.delete()
    post(client, workflow, case_message())
    assert only_task_run().error == f"mailing list {list_id} does not exist"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["embedded_data", "transaction"])
def test_a_workflow_of_a_non_staff_owner_may_not_change_the_directory(client, mailing_list, mode):
    # The API lets only staff change contacts (contacts/permissions.py); a workflow
    # writes on its owner's behalf, so the same rule holds there, with the reason.
    contact = make_contact(
        mailing_lists=[mailing_list], first_name="Jonas", email="jonas.berg@example.org"
    )
    owner = make_user(username="bob", is_staff=False)
    workflow = make_workflow(owner=owner, tasks=[directory_task(mailing_list, mode=mode)])
    post(client, workflow, case_message(First_Name__c="Mallory"))
    task = only_task_run()
    assert task.status == "failed"
    assert task.error == (
        "the workflow's owner bob may not change the contact directory: only staff "
        "members can (a staff member can copy the workflow and own the copy)"
    )
    contact.refresh_from_db()
    assert contact.first_name == "Jonas" and not Transaction.objects.exists()
    # The dry run says the same before anything is sent.
    client.force_login(make_user(username="staffer"))
    page = client.get(f"/reports/workflows/runs/{task.run_id}/dry-run/").content.decode()
    assert "may not change the contact directory" in page


@pytest.mark.django_db
def test_valid_config_is_saved_through_the_api(api_client, mailing_list):
    definition = {
        "name": "Save contacts",
        "event": {"type": "salesforce_outbound_message", "object": "Case"},
        "tasks": [
            {
                "type": "add_to_directory",
                "mailing_list": mailing_list.pk,
                "contact": {
                    "first_name": "${event://First_Name__c}",
                    "last_name": "${event://Last_Name__c}",
                    "email": "${event://ContactEmail}",
                },
                "embedded_data": {"Store Region ": "${event://Region__c}"},
            }
        ],
    }
    response = api_client.post("/api/v1/workflows/", definition, format="json")
    assert response.status_code == 201, response.content
    task = response.json()["tasks"][0]
    assert task["mode"] == "embedded_data"
    assert task["contact"]["phone"] == ""
    # Names are kept exactly as typed, trailing space included.
    assert task["embedded_data"] == {"Store Region ": "${event://Region__c}"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"mailing_list": 999999}, {"mailing_list": ["mailing list 999999 does not exist"]}),
        ({"mode": "bogus"}, {"mode": ['"bogus" is not a valid choice.']}),
        (
            {"contact": {**MAPPING, "email": ""}},
            {"contact": {"email": ["this field is required: map it to an event field"]}},
        ),
        (
            {"embedded_data": {"": "x"}},
            {"embedded_data": {"": ["embedded data field names must not be empty"]}},
        ),
        (
            {"embedded_data": ["CaseNumber"]},
            {"embedded_data": ['Expected a dictionary of items but got type "list".']},
        ),
    ],
)
def test_invalid_config_is_refused_per_field(api_client, mailing_list, change, errors):
    task = {**directory_task(mailing_list), **change}
    response = api_client.post(
        "/api/v1/workflows/",
        {"name": "W", "event": {"object": "Case"}, "tasks": [task]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"tasks": [errors]}


@pytest.mark.django_db
def test_config_without_mailing_list_is_refused(api_client, mailing_list):
    task = directory_task(mailing_list)
    del task["mailing_list"]
    response = api_client.post(
        "/api/v1/workflows/",
        {"name": "W", "event": {"object": "Case"}, "tasks": [task]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"tasks": [{"mailing_list": ["This field is required."]}]}


@pytest.mark.django_db(transaction=True)
def test_preview_renders_without_writing(client, mailing_list):
    workflow = make_workflow(tasks=[directory_task(mailing_list)], enabled=True)
    post(client, workflow, case_message(ContactPhone="(415) 555-0100"))
    run = Run.objects.select_related("workflow", "notification").get()
    Contact.objects.all().delete()
    task = workflow.tasks.get()
    preview = task_types.get("add_to_directory")(task.config).preview(
        context_for(run, dry_run=True)
    )
    assert preview["action"] == "would create"
    assert preview["contact"]["phone"] == "+14155550100"
    assert preview["contact"]["email"] == "jonas.berg@example.org"
    assert preview["embedded_data"]["Priority"] == "Low"
    assert not Contact.objects.exists()
    broken = dict(task.config, contact={**MAPPING, "email": "${event://Nope}"})
    failed = task_types.get("add_to_directory")(broken).preview(context_for(run, dry_run=True))
    assert failed["error"] == "email is required but rendered empty from '${event://Nope}'"


@pytest.mark.django_db(transaction=True)
def test_demo_workflow_saves_the_contact(client, django_user_model):
    owner = django_user_model.objects.create_user(username="demo-admin", is_staff=True)
    seeded = demo_seed(owner=owner)
    again = demo_seed(owner=owner)
    assert again["mailing_list_id"] == seeded["mailing_list_id"]
    assert Directory.objects.filter(name=DEMO_DIRECTORY_NAME).count() == 1
    mailing_list = MailingList.objects.get(pk=seeded["mailing_list_id"])
    assert mailing_list.name == DEMO_MAILING_LIST_NAME
    workflow = owner.workflows.get(pk=seeded["workflow_id"])
    first_task = workflow.tasks.order_by("position").first()
    assert first_task.type == "add_to_directory"
    assert first_task.config["mode"] == "embedded_data"
    post(client, workflow, fixture_bytes("salesforce/case_closed.xml"))
    contact = Contact.objects.get()
    assert contact.mailing_lists.get() == mailing_list
    assert contact.external_data_reference == "0038a00000Zz01xAAB"
    assert contact.embedded_data == {"CaseNumber": "00003101", "Priority": "High"}


@pytest.mark.django_db(transaction=True)
def test_transaction_mode_keeps_an_unreadable_email_as_its_error(client, mailing_list):
    """The email is how transaction mode finds the contact: it is never left out."""
    workflow = make_workflow(tasks=[directory_task(mailing_list, mode="transaction")])
    post(client, workflow, case_message(ContactEmail="jonas.berg@"))
    task = only_task_run()
    assert (task.status, task.error) == ("failed", "not a valid email address: 'jonas.berg@'")
    assert not any("left out" in warning for warning in task.output.get("warnings", []))
