"""Real `manage.py qcluster` worker processes on the test database.

Used by the fault tests and by tests/xmflows/test_broker.py. A cluster runs in a
process group of its own, so a test can SIGKILL all of it at once (sentinel, pusher,
monitor and workers: what a machine that loses power or an OOM kill does), and it
can be given extra environment (a slow email backend, a short stuck-run timeout).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection


def worker_database_url() -> str:
    """A DATABASE_URL that points a subprocess at this test run's database."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()


class Cluster:
    """One `manage.py qcluster` in its own process group, logging to `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL every process of the cluster at once: nothing gets to clean up."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 45) -> bool:
        """One SIGINT, as Ctrl-C sends (a second can hang django-q2, PITFALLS.md 13).
        Returns False when it had to be killed."""
        if not self.alive():
            return True
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            self.kill()
            return False

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, cluster: Cluster | None = None
) -> float:
    """Poll `predicate` until true; returns the seconds waited. Fails with the worker's
    log when the time runs out or the worker died."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if predicate():
            return time.monotonic() - began
        if cluster is not None and not cluster.alive():
            raise AssertionError(f"qcluster exited while waiting for {what}:\n{cluster.log_tail()}")
        time.sleep(0.2)
    log = f"\n--- qcluster log ---\n{cluster.log_tail()}" if cluster is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{log}")
