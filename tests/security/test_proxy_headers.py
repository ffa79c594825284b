"""Behind the documented reverse proxy, deliveries record the sender's address, not a forged one.

deploy/nginx/xmflows.conf appends the address it saw to X-Forwarded-For; with
XMFLOWS_PROXY_COUNT=1 the endpoint records that entry, never one the client wrote
itself, and without the setting it keeps the socket's address.
"""

import pytest

from tests.conftest import fixture_bytes
from tests.factories import make_workflow, post_soap
from xmflows.models import Delivery

pytestmark = pytest.mark.django_db

SALESFORCE = "13.108.0.10"
PROXY = "10.0.0.2"


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "recorded"),
    [
        (1, SALESFORCE, SALESFORCE),
        (1, f"6.6.6.6, {SALESFORCE}", SALESFORCE),  # a forged first entry is ignored
        (1, "", PROXY),  # no header: the proxy's own address
        (1, "not-an-address", PROXY),
        (2, f"6.6.6.6, {SALESFORCE}, 10.0.0.9", SALESFORCE),  # two proxies
        (0, f"6.6.6.6, {SALESFORCE}", PROXY),  # no proxy trusted: the socket's
    ],
)
def test_delivery_records_the_address_the_proxy_saw(
    client, admin_user, settings, proxies, forwarded_for, recorded
):
    settings.XMFLOWS_PROXY_COUNT = proxies
    headers = {"REMOTE_ADDR": PROXY}
    if forwarded_for:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    workflow = make_workflow(owner=admin_user)
    response = post_soap(client, workflow, fixture_bytes("salesforce/case_closed.xml"), **headers)
    assert response.status_code == 200
    assert Delivery.objects.get().remote_addr == recorded
