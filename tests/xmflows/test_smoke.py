"""A first end-to-end check: a sample message through the endpoint becomes runs."""

import pytest

from tests.conftest import fixture_bytes
from tests.factories import event_path, make_workflow
from xmflows.models import Delivery, Run


@pytest.mark.django_db(transaction=True)
def test_case_batch_becomes_three_succeeded_runs(client):
    workflow = make_workflow()
    response = client.post(
        event_path(workflow),
        fixture_bytes("salesforce/case_batch_3.xml"),
        content_type="text/xml; charset=utf-8",
        HTTP_SOAPACTION='""',
    )
    assert response.status_code == 200
    assert b"<Ack>true</Ack>" in response.content
    assert Delivery.objects.get().notification_count == 3
    assert sorted(Run.objects.values_list("status", flat=True)) == ["succeeded"] * 3
