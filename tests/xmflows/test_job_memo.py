"""core.job_memo: settings rows read once per run job, people's rows always fresh.

A run job (xmflows.jobs.execute_runs) executes up to 20 runs; the demo workflow saves
the contact in "add to directory" and again in "distribute survey". Inside one job
the second save is skipped when the first committed exactly the same values, and the
contact is read back fresh; outside a job (requests, previews) nothing is remembered.
"""

import pytest
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact
from core.job_memo import job_memo, memoized, recall, remember
from tests.factories import make_mailing_list
from xmflows.contact_mapping import save_contact_from_mapping
from xmflows.task_types import TaskContext

MAPPING = {
    "first_name": "${event://First_Name__c}",
    "last_name": "${event://Last_Name__c}",
    "email": "${event://ContactEmail}",
}


def test_memoized_loads_once_per_job_and_always_outside_one():
    calls = []

    def load():
        calls.append(1)
        return len(calls)

    assert memoized("k", load) == 1
    assert memoized("k", load) == 2  # no job: no memory
    with job_memo():
        assert memoized("k", load) == 3
        with job_memo():  # a nested block shares the job's memory
            assert memoized("k", load) == 3
        remember("other", "x")
        assert recall("other") == "x"
    assert recall("other") is None
    remember("other", "y")  # outside a job: dropped
    assert recall("other") is None


def context(run_id: int = 1) -> TaskContext:
    return TaskContext(
        run_id=run_id,
        workflow_id=1,
        owner_id=1,
        object_type="Case",
        notification_id="04l000000000001AAA",
        record_id="500000000000001AAA",
        organization_id="00D000000000001AAA",
        fields={"First_Name__c": "Ada", "Last_Name__c": "Lovelace", "ContactEmail": "ada@ex.org"},
    )


def save(ctx: TaskContext, mailing_list, **overrides):
    with transaction.atomic():
        return save_contact_from_mapping(
            ctx=ctx,
            mailing_list_id=mailing_list.pk,
            contact_map={**MAPPING, **overrides},
            embedded_data_map={"Case": "1"},
        )


@pytest.mark.django_db(transaction=True)
def test_a_second_identical_save_in_the_same_run_and_job_only_reads_the_contact():
    mailing_list = make_mailing_list()
    ctx = context()
    with job_memo():
        first = save(ctx, mailing_list)
        assert first.created
        # Changed meanwhile by someone else: the read-back sees it.
        Contact.objects.filter(pk=first.contact.pk).update(email_opted_out=True)
        with CaptureQueriesContext(transaction.get_connection()) as queries:
            second = save(ctx, mailing_list)
    writes = [q["sql"] for q in queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    assert writes == []
    assert second.contact.pk == first.contact.pk
    assert second.contact.email_opted_out is True
    assert (second.created, second.changed_fields) == (False, [])
    assert ctx.state["contact_id"] == first.contact.pk


@pytest.mark.django_db(transaction=True)
def test_other_values_another_run_or_a_rolled_back_save_upsert_again():
    mailing_list = make_mailing_list()
    with job_memo():
        ctx = context(run_id=7)
        # The first save rolls back (its task failed after it): nothing remembered.
        with pytest.raises(RuntimeError), transaction.atomic():
            save_contact_from_mapping(
                ctx=ctx, mailing_list_id=mailing_list.pk, contact_map=MAPPING,
                embedded_data_map={"Case": "1"},
            )  # fmt: skip
            raise RuntimeError("the task failed after saving")
        assert not Contact.objects.exists()
        again = save(ctx, mailing_list)
        assert again.created and Contact.objects.count() == 1
        # Different values: a real upsert, which updates.
        changed = save(ctx, mailing_list, first_name="Augusta")
        assert changed.changed_fields == ["first_name"]
        # Another run of the same job: its own upsert.
        other = save(context(run_id=8), mailing_list, first_name="Augusta")
        assert (other.created, other.changed_fields) == (False, [])
    assert Contact.objects.get().first_name == "Augusta"


@pytest.mark.django_db(transaction=True)
def test_the_demo_workflow_saves_its_contact_once_per_run(client, admin_user):
    """Through the endpoint and the run job: one INSERT of the contact, both tasks
    report it, the invitation goes."""
    from distributions.models import Recipient, RecipientStatus
    from tests.distributions import builders
    from tests.factories import make_workflow

    survey = builders.make_survey(owner=admin_user)
    mailing_list = make_mailing_list()
    builders.make_sender()
    distribute = builders.distribute_task(survey=survey, mailing_list=mailing_list)
    add = {
        "type": "add_to_directory",
        "mode": "embedded_data",
        "mailing_list": mailing_list.pk,
        "contact": distribute["contact"],
        "embedded_data": distribute["embedded_data"],
    }
    workflow = make_workflow(owner=admin_user, tasks=[add, distribute])
    with CaptureQueriesContext(transaction.get_connection()) as queries:
        run = builders.send_case(client, workflow, ContactEmail="memo@example.org")
    # The upsert's traces: the contact inserted once, added to the list once.
    contact_writes = [q for q in queries if q["sql"].startswith('INSERT INTO "contacts_contact"')]
    list_adds = [q for q in queries if "contacts_mailinglist_contacts" in q["sql"]]
    assert (len(contact_writes), len(list_adds)) == (1, 1)
    run.refresh_from_db()
    assert run.status == "succeeded"
    outputs = [task_run.output for task_run in run.task_runs.order_by("position")]
    assert outputs[0]["contact_id"] == outputs[-1]["contact_id"]
    line = Recipient.objects.get()
    assert (line.to_address, line.status) == ("memo@example.org", RecipientStatus.SENT)
