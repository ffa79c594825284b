"""Shared pytest fixtures: inline jobs, API clients, samples, service availability."""

import os
from pathlib import Path

import pytest
from django_q.conf import Conf

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


@pytest.fixture(autouse=True)
def jobs_inline(monkeypatch):
    """django-q2 reads Q_CLUSTER once at import: switch its Conf to synchronous
    execution so jobs enqueued on commit run in the test process (PITFALLS.md 10).
    Tests that go through the real broker use the `real_broker` fixture instead."""
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def real_broker(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)


@pytest.fixture(autouse=True)
def _public_base_url(settings):
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def shared_samples() -> list[Path]:
    if not SHARED_SAMPLES.is_dir():
        return []
    return sorted(SHARED_SAMPLES.glob("*.xml"))


def using_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def using_redis() -> bool:
    return bool(os.environ.get("REDIS_URL"))


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user(
        username="owner", password="pw-owner-123", email="owner@example.com", is_staff=True
    )


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(
        username="other", password="pw-other-123", email="other@example.com", is_staff=True
    )


@pytest.fixture
def api_client(admin_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.fixture
def other_client(other_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(other_user)
    return client
