"""Fixtures of the reliability tests: the outbox as the email provider, real brokers, workers."""

import os

import pytest
from django_q.brokers import get_broker
from django_q.conf import Conf

from tests.conftest import using_redis
from tests.reliability.support import OUTBOX_BACKEND
from tests.reliability.workers import Cluster, worker_database_url

BROKERS = [
    pytest.param("orm", id="orm"),
    pytest.param(
        "redis",
        id="redis",
        marks=pytest.mark.skipif(not using_redis(), reason="REDIS_URL is not set"),
    ),
]


@pytest.fixture(autouse=True)
def outbox_email(settings):
    # pytest-django swaps in Django's locmem backend; these tests count what reached
    # the "provider" where users would look: the outbox (one row per email sent).
    settings.EMAIL_BACKEND = OUTBOX_BACKEND


@pytest.fixture(params=BROKERS)
def broker_env(request, real_broker, monkeypatch) -> dict[str, str]:
    """Enqueue through the chosen broker; returns the environment of its workers."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": worker_database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    if request.param == "orm":
        monkeypatch.setattr(Conf, "ORM", "default")
        env.pop("REDIS_URL", None)
    else:
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", os.environ["REDIS_URL"])
    # Jobs left over from another run of this suite would only add noise.
    get_broker().purge_queue()
    yield env
    get_broker().purge_queue()


@pytest.fixture
def start_cluster(broker_env, tmp_path):
    """`start_cluster(**extra_env)` starts a qcluster; every one is stopped afterwards."""
    clusters: list[Cluster] = []

    def start(**extra: str) -> Cluster:
        cluster = Cluster({**broker_env, **extra}, tmp_path / f"qcluster-{len(clusters)}.log")
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        if not cluster.stop():
            pytest.fail(f"qcluster did not stop on SIGINT:\n{cluster.log_tail()}")
