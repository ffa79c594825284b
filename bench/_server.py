"""Helpers for benchmarks that run the app for real: a var dir, manage.py, gunicorn.

Standard library only, so a benchmark's load generator can import this module
without Django. Typical use::

    var_dir = make_var_dir("xmflows-bench-")
    env = app_env(var_dir=var_dir)  # SQLite in var_dir unless DATABASE_URL is set
    manage(["migrate", "--noinput"], env)
    with GunicornServer(env, workers=2) as server:
        ...  # server.host, server.port, server.url("/healthz")
    remove_var_dir(var_dir)
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
# The project's interpreter: the venv's when there is one, else whoever runs us.
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
LOOPBACK = "127.0.0.1"


def make_var_dir(prefix: str = "xmflows-bench-") -> Path:
    """A fresh directory for XMFLOWS_VAR_DIR (secret key, static root, SQLite files)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_var_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def sqlite_url(var_dir: Path) -> str:
    # var_dir is absolute, so this gives the four slashes of an absolute path.
    return f"sqlite:///{var_dir}/db.sqlite3"


def app_env(
    *,
    var_dir: Path,
    database_url: str | None = None,
    settings_module: str = "config.settings",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for manage.py and gunicorn: production-like, DEBUG off.

    Without `database_url`, SQLite in `var_dir`. REDIS_URL is kept only when the
    caller's environment sets it (otherwise the ORM broker is used).
    """
    env = dict(os.environ)
    env.pop("XMFLOWS_TESTING", None)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(
                [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "DJANGO_SETTINGS_MODULE": settings_module,
            "XMFLOWS_VAR_DIR": str(var_dir),
            "DATABASE_URL": database_url or sqlite_url(var_dir),
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if not env.get("REDIS_URL"):
        env.pop("REDIS_URL", None)
    env.update(extra or {})
    return env


def manage(args: Sequence[str], env: Mapping[str, str], *, quiet: bool = True) -> str:
    """Run `manage.py args` with the project's interpreter; returns its stdout."""
    result = subprocess.run(
        [PYTHON, str(PROJECT_ROOT / "manage.py"), *args],
        env=dict(env),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    if not quiet:
        sys.stdout.write(result.stdout)
    return result.stdout


def run_python(code: str, env: Mapping[str, str], *args: str) -> str:
    """Run a snippet with the project's interpreter (after django.setup()); returns stdout."""
    prelude = "import django\ndjango.setup()\n"
    result = subprocess.run(
        [PYTHON, "-c", prelude + code, *args],
        env=dict(env),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"python snippet failed:\n{result.stdout}{result.stderr}")
    return result.stdout


class GunicornServer:
    """gunicorn serving `app` on a free loopback port; a context manager.

    Started in its own session, so a Ctrl-C in the terminal reaches only the
    benchmark, whose cleanup then stops the server once (SIGTERM, then SIGKILL
    after `stop_timeout`).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        workers: int = 1,
        worker_class: str = "sync",
        threads: int = 1,
        app: str = "config.wsgi:application",
        host: str = LOOPBACK,
        port: int | None = None,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        ready_path: str = "/healthz",
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.env = dict(env)
        self.workers = workers
        self.worker_class = worker_class
        self.threads = threads
        self.app = app
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path or Path(self.env.get("XMFLOWS_VAR_DIR", tempfile.gettempdir())) / (
            f"gunicorn-{self.port}.log"
        )
        self.extra_args = list(extra_args)
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen | None = None

    @property
    def description(self) -> str:
        threads = f", {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"gunicorn {self.app}, {self.workers} {self.worker_class} worker(s){threads}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def command(self) -> list[str]:
        gunicorn = VENV_BIN / "gunicorn"
        head = [str(gunicorn)] if gunicorn.exists() else [PYTHON, "-m", "gunicorn"]
        return [
            *head,
            self.app,
            "--bind",
            f"{self.host}:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--threads",
            str(self.threads),
            "--log-level",
            "warning",
            "--error-logfile",
            str(self.log_path),
            *self.extra_args,
        ]

    def start(self) -> GunicornServer:
        env = {**self.env, "PUBLIC_BASE_URL": self.url("").rstrip("/")}
        self.process = subprocess.Popen(
            self.command(),
            env=env,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Until `ready_path` answers 200, the process dies, or the timeout passes."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited during startup:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=2)
                connection.request("GET", self.ready_path)
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"gunicorn not ready after {self.ready_timeout:.0f}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # Only the master we started: it stops its own workers on TERM.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the master and its live workers, from /proc.

        Divided by the requests served in between, it gives the server's CPU cost
        per request, which other load on the machine disturbs far less than rates.
        """
        if self.process is None:
            return 0.0
        master = self.process.pid
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After "pid (comm)": state, ppid, ... utime and stime are the 12th and 13th.
            if int(entry) == master or int(fields[1]) == master:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no gunicorn log)"

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
