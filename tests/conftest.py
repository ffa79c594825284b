"""Shared pytest fixtures: inline jobs, API clients, samples, service availability."""

import os
from pathlib import Path

import pytest
from django_q.brokers import get_broker
from django_q.conf import Conf

# Prints what the reliability and security tests proved (faults injected, lost = 0, …).
from tests.figures import pytest_terminal_summary  # noqa: F401
from tests.reliability.workers import Cluster, worker_database_url

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


# --- A test-only task type for engine and API tests -------------------------------

PROBE_TASK_TYPE = "test_probe"


class TaskProbe:
    """What the `test_probe` task type was called with, and what it does next.

    `plan("b", "fail", "temporary", "crash")` makes the task labelled "b" fail
    permanently, then temporarily, then crash, then succeed on later calls.
    """

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self._plans: dict[str, list[str]] = {}

    def plan(self, label: str, *behaviours: str) -> None:
        self._plans[label] = list(behaviours)

    def count(self, label: str) -> int:
        return sum(1 for call in self.calls if call["label"] == label)

    def labels(self) -> list[str]:
        return [call["label"] for call in self.calls]

    def run(self, config: dict, ctx):
        from xmflows.task_types import TaskError, TaskOutcome

        label = config.get("label", "task")
        self.calls.append(
            {
                "label": label,
                "run_id": ctx.run_id,
                "state": dict(ctx.state),
                "fields": dict(ctx.fields),
            }
        )
        planned = self._plans.get(label) or []
        behaviour = planned.pop(0) if planned else "ok"
        if behaviour == "fail":
            raise TaskError(f"{label} failed on purpose")
        if behaviour == "temporary":
            raise TaskError(f"{label} is temporarily unavailable", temporary=True)
        if behaviour == "crash":
            raise RuntimeError(f"{label} crashed")
        trail = [*ctx.state.get("trail", []), label]
        ctx.state["trail"] = trail
        email_field = config.get("email_field") or ""
        email = (ctx.fields.get(email_field) or "") if email_field else ""
        return TaskOutcome(output={"label": label, "trail": trail}, email=email)


def probe_task(label: str, **config) -> dict:
    """A task definition for the `test_probe` task type."""
    return {"type": PROBE_TASK_TYPE, "label": label, **config}


@pytest.fixture
def task_probe():
    """Registers the `test_probe` task type for one test, and removes it afterwards."""
    from rest_framework import serializers

    from xmflows import task_types

    probe = TaskProbe()

    class ProbeConfig(serializers.Serializer):
        label = serializers.CharField(max_length=50, default="task")
        email_field = serializers.CharField(
            max_length=100, required=False, allow_blank=True, default=""
        )

    class ProbeTaskType(task_types.TaskType):
        key = PROBE_TASK_TYPE
        label = "Test probe"
        config_serializer = ProbeConfig

        def run(self, ctx):
            return probe.run(self.config, ctx)

    task_types.register(ProbeTaskType)
    yield probe
    task_types.unregister(PROBE_TASK_TYPE)


# --- real brokers and qcluster workers (tests/reliability, tests/xmflows/test_broker.py)

BROKERS = [
    pytest.param("orm", id="orm"),
    pytest.param(
        "redis",
        id="redis",
        marks=pytest.mark.skipif(not using_redis(), reason="REDIS_URL is not set"),
    ),
]


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


def drain(response) -> None:
    """Read a streaming response to its end. An unread streaming CSV holds a
    PostgreSQL server-side cursor, and the test client leaves the response in a
    reference cycle, so the garbage collector would close that cursor at some later
    moment: in the middle of another request's query on the same connection, which
    then waits forever. (A WSGI server always closes the response; response.close()
    here would also fire request_finished, which closes the test's connection.)"""
    if response.streaming:
        for _ in response.streaming_content:
            pass
