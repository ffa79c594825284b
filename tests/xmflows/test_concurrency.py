"""The same notifications arriving on several connections at once still make one run each."""

import threading

import pytest
from django.db import connections
from django.test import Client

from tests.conftest import fixture_bytes
from tests.factories import case_notification, event_path, make_workflow, post_soap
from tests.soap_builders import build_outbound_message
from xmflows.models import Delivery, Notification, Run

THREADS = 6


def post_concurrently(path: str, bodies: list[bytes]) -> list:
    """POST each body from its own thread and connection, all released at once."""
    barrier = threading.Barrier(len(bodies))
    responses: list = [None] * len(bodies)
    errors: list[BaseException] = []

    def post(index: int) -> None:
        try:
            client = Client()
            barrier.wait(timeout=30)
            responses[index] = post_soap(client, path, bodies[index])
        except BaseException as error:
            errors.append(error)
        finally:
            # Each thread opened its own connection; the test database cannot be
            # flushed or dropped while one stays open.
            connections.close_all()

    threads = [threading.Thread(target=post, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a POST hung"
    assert not errors, errors
    return responses


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_number", range(3))
def test_same_notification_from_several_threads_makes_one_run(admin_user, round_number):
    workflow = make_workflow(owner=admin_user)
    body = build_outbound_message([case_notification(100 + round_number, Status="Closed")])
    responses = post_concurrently(event_path(workflow), [body] * THREADS)

    # Every connection gets its Ack: a duplicate is acknowledged, not refused.
    for response in responses:
        assert response.status_code == 200, response.content[:300]
        assert b"<Ack>true</Ack>" in response.content
    assert Notification.objects.count() == 1
    (run,) = Run.objects.all()
    assert run.status == "succeeded"
    deliveries = list(Delivery.objects.all())
    assert len(deliveries) == THREADS
    assert {d.outcome for d in deliveries} == {"accepted"}
    assert sorted(d.duplicate_count for d in deliveries) == [0] + [1] * (THREADS - 1)
    # The run belongs to the one delivery that was not a duplicate.
    (first,) = [d for d in deliveries if d.duplicate_count == 0]
    assert run.notification.delivery_id == first.pk


@pytest.mark.django_db(transaction=True)
def test_overlapping_batches_from_several_threads_make_one_run_per_notification(admin_user):
    workflow = make_workflow(owner=admin_user)
    # Thread i sends notifications i … i+4: every id is sent by up to five threads.
    bodies = [
        build_outbound_message([case_notification(n) for n in range(start, start + 5)])
        for start in range(THREADS)
    ]
    responses = post_concurrently(event_path(workflow), bodies)
    assert [response.status_code for response in responses] == [200] * THREADS

    expected = {case_notification(n)["id"] for n in range(THREADS + 4)}
    runs = Run.objects.select_related("notification")
    assert sorted(run.notification.notification_id for run in runs) == sorted(expected)
    assert {run.status for run in runs} == {"succeeded"}
    deliveries = Delivery.objects.all()
    assert sum(d.notification_count - d.duplicate_count for d in deliveries) == len(expected)


@pytest.mark.django_db(transaction=True)
def test_same_message_on_two_events_at_once_makes_a_run_on_each(admin_user):
    one = make_workflow(owner=admin_user)
    two = make_workflow(owner=admin_user)
    body = fixture_bytes("salesforce/case_closed.xml")
    responses = post_concurrently(event_path(one), [body] * 3)
    responses += post_concurrently(event_path(two), [body] * 3)
    assert {response.status_code for response in responses} == {200}
    assert Run.objects.filter(workflow=one).count() == 1
    assert Run.objects.filter(workflow=two).count() == 1
