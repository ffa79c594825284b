"""The workflow admin keeps the builder's rule: only the owner edits or deletes."""

import pytest
from django.contrib.auth.models import Permission

from tests.factories import make_workflow
from xmflows.models import Workflow


def _staff(django_user_model, username: str, *, superuser: bool = False):
    if superuser:
        return django_user_model.objects.create_superuser(username, f"{username}@example.com", "pw")
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="xmflows"))
    return user


def _form(workflow: Workflow, **changes) -> dict:
    data = {
        "name": workflow.name,
        "enabled": "on",
        "on_failure": workflow.on_failure,
        # The inlines are read-only, yet their management forms are posted.
        "event-TOTAL_FORMS": "1",
        "event-INITIAL_FORMS": "1",
        "event-MIN_NUM_FORMS": "0",
        "event-MAX_NUM_FORMS": "1",
        "event-0-id": str(workflow.event.pk),
        "event-0-workflow": str(workflow.pk),
        "tasks-TOTAL_FORMS": str(workflow.tasks.count()),
        "tasks-INITIAL_FORMS": str(workflow.tasks.count()),
        "tasks-MIN_NUM_FORMS": "0",
        "tasks-MAX_NUM_FORMS": "1000",
    }
    for index, task in enumerate(workflow.tasks.order_by("position")):
        data[f"tasks-{index}-id"] = str(task.pk)
        data[f"tasks-{index}-workflow"] = str(workflow.pk)
    data.update(changes)
    return data


@pytest.mark.django_db
@pytest.mark.parametrize("superuser", [False, True])
def test_someone_else_sees_a_workflow_but_cannot_change_or_delete_it(
    client, django_user_model, superuser
):
    workflow = make_workflow(name="Owned by alice")
    client.force_login(_staff(django_user_model, "bob", superuser=superuser))
    url = f"/admin/xmflows/workflow/{workflow.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Owned by alice" in html and 'name="name"' not in html  # shown, not a form
    assert client.post(url, _form(workflow, name="renamed by bob")).status_code == 403
    delete = f"/admin/xmflows/workflow/{workflow.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 403
    workflow.refresh_from_db()
    assert workflow.name == "Owned by alice"
    assert client.get("/admin/xmflows/workflow/add/").status_code == 403


@pytest.mark.django_db
def test_the_owner_renames_and_switches_off_but_does_not_reassign(client, django_user_model):
    owner = _staff(django_user_model, "alice")
    other = _staff(django_user_model, "bob")
    workflow = make_workflow(owner=owner, name="Closed cases")
    client.force_login(owner)
    url = f"/admin/xmflows/workflow/{workflow.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert f"/workflows/{workflow.pk}/edit/" in page.content.decode()  # the builder link
    form = _form(workflow, name="Closed cases (EMEA)", owner=str(other.pk))
    del form["enabled"]
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    workflow.refresh_from_db()
    assert (workflow.name, workflow.enabled, workflow.owner_id) == (
        "Closed cases (EMEA)",
        False,
        owner.pk,
    )
    assert workflow.event.object_name == "Case"


@pytest.mark.django_db(transaction=True)
def test_run_history_is_read_only_and_notifications_cannot_be_deleted(client, django_user_model):
    from tests.conftest import fixture_bytes
    from tests.factories import event_path
    from xmflows.models import Notification, Run

    root = _staff(django_user_model, "root", superuser=True)
    workflow = make_workflow(owner=root)
    body = fixture_bytes("salesforce/case_closed.xml")
    assert client.post(event_path(workflow), body, content_type="text/xml").status_code == 200
    run = Run.objects.get()
    client.force_login(root)
    page = client.get(f"/admin/xmflows/run/{run.pk}/change/").content.decode()
    assert 'name="phone"' not in page and 'name="email"' not in page  # nothing to edit
    assert 'name="task_runs-MAX_NUM_FORMS" value="0"' in page  # no task run to add
    notification = Notification.objects.get()
    refused = client.post(f"/admin/xmflows/notification/{notification.pk}/delete/", {"post": "yes"})
    assert refused.status_code == 403
    assert Notification.objects.filter(pk=notification.pk).exists()
    # So Salesforce's retry of the same message is still a duplicate: no second run.
    assert client.post(event_path(workflow), body, content_type="text/xml").status_code == 200
    assert Run.objects.count() == 1
