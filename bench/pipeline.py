"""Benchmark (issue 7): end-to-end workflow runs per second through real worker processes.

For each configuration it prepares a fresh database with `seed_demo` (the demo
workflow: save the contact, email the survey invitation, outbox email backend),
POSTs N notifications (100 per message) through gunicorn, stops gunicorn, then starts
`manage.py qcluster` with XMFLOWS_WORKERS worker processes and waits until every run
is finished and every email is in the outbox. Throughput is N divided by the time
from the first run started to the last run finished or email stored (read from the
database's own timestamps, so process start-up and polling do not count).

Configurations: SQLite + ORM broker with 1 and 2 workers; PostgreSQL + Redis with 1,
2 and 4 workers when DATABASE_URL (PostgreSQL) and REDIS_URL are set (a throwaway
database is created; the Redis queue is emptied before and after each measurement,
so give it a Redis database nobody else uses: --redis-db). Targets: >= 300 runs/s on
SQLite with 2 workers; PostgreSQL + Redis throughput x1.7 from 1 to 2 workers.

    .venv/bin/python bench/pipeline.py [--notifications 2000] [--only sqlite|postgres]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/pipeline.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

# Runs as a plain script from the project root; no installed package to import.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import (
    PROJECT_ROOT,
    PYTHON,
    GunicornServer,
    app_env,
    make_var_dir,
    manage,
    remove_var_dir,
)
from tests.soap_builders import build_outbound_message

TARGET_SQLITE_RUNS_PER_S = 300.0
TARGET_SCALING_1_TO_2 = 1.7
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
QUEUE_KEY = "django_q:xmflows:q"  # django-q2's Redis list for Q_CLUSTER name "xmflows"


@dataclass
class Result:
    label: str
    workers: int
    runs: int
    seconds: float
    wall_seconds: float
    emails: int
    duplicated: int
    failed: int
    cpu_seconds: float
    machine_busy: float  # share of all cores busy during the measurement (0..1)

    @property
    def cpu_ms_per_run(self) -> float:
        return 1000 * self.cpu_seconds / self.runs if self.runs else 0.0

    @property
    def rate(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"  {self.label:<24} {self.workers} worker(s): {self.runs} runs in {self.seconds:6.2f}s"
            f" = {self.rate:7.1f} runs/s  (wall {self.wall_seconds:5.1f}s from qcluster start;"
            f" emails {self.emails}, duplicated {self.duplicated}, not succeeded {self.failed};"
            f" qcluster CPU {self.cpu_ms_per_run:.1f} ms/run;"
            f" machine {100 * self.machine_busy:.0f}% busy)"
        )


# --- databases ------------------------------------------------------------------------


class Database:
    """One migrated template, copied fresh for every measurement (SQLite file copy,
    PostgreSQL CREATE DATABASE … TEMPLATE), so each starts from the same empty state."""

    def __init__(self, kind: str, var_dir: Path, base_url: str | None) -> None:
        self.kind = kind
        self.var_dir = var_dir
        self.base_url = base_url
        self.template = f"xmflows_pipe_{os.getpid()}_template"
        self.copies: list[str] = []

    def url_for(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.var_dir / name}.sqlite3"
        parsed = urllib.parse.urlsplit(self.base_url or "")
        return urllib.parse.urlunsplit(parsed._replace(path=f"/{name}"))

    def _pg(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.base_url, autocommit=True) as connection:
            connection.execute(sql)

    def prepare(self, env: dict[str, str]) -> None:
        if self.kind == "postgres":
            self._pg(f'DROP DATABASE IF EXISTS "{self.template}"')
            self._pg(f'CREATE DATABASE "{self.template}"')
        manage(["migrate", "--noinput"], {**env, "DATABASE_URL": self.url_for(self.template)})

    def fresh(self, number: int) -> str:
        name = f"xmflows_pipe_{os.getpid()}_{number}"
        if self.kind == "sqlite":
            shutil.copyfile(
                self.var_dir / f"{self.template}.sqlite3", self.var_dir / f"{name}.sqlite3"
            )
        else:
            self._pg(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.copies.append(name)
        return self.url_for(name)

    def drop(self) -> None:
        if self.kind != "postgres":
            return
        for name in [*self.copies, self.template]:
            try:
                self._pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as error:  # cleanup must go on
                print(f"could not drop {name}: {error}")

    def counts(self, url: str) -> dict[str, float | int | None]:
        """Finished runs, emails, and the first start / last finish as epoch seconds."""
        query = {
            "finished": "SELECT count(*) FROM xmflows_run WHERE status IN "
            "('succeeded','failed','skipped')",
            "succeeded": "SELECT count(*) FROM xmflows_run WHERE status = 'succeeded'",
            "emails": "SELECT count(*) FROM distributions_outboxmessage",
            "addresses": 'SELECT count(DISTINCT "to") FROM distributions_outboxmessage',
        }
        times = {
            "first_start": "SELECT min(started_at) FROM xmflows_run",
            "last_run": "SELECT max(finished_at) FROM xmflows_run",
            "last_email": "SELECT max(created_at) FROM distributions_outboxmessage",
        }
        result: dict[str, float | int | None] = {}
        if self.kind == "sqlite":
            path = urllib.parse.urlsplit(url).path
            with sqlite3.connect(path, timeout=30) as connection:
                for key, sql in query.items():
                    result[key] = connection.execute(sql).fetchone()[0]
                for key, sql in times.items():
                    value = connection.execute(sql).fetchone()[0]
                    result[key] = _epoch(value) if value else None
            return result
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            for key, sql in query.items():
                result[key] = connection.execute(sql).fetchone()[0]
            for key, sql in times.items():
                value = connection.execute(sql).fetchone()[0]
                result[key] = value.timestamp() if value else None
        return result


def _epoch(value: str) -> float:
    # Django stores aware datetimes in SQLite as UTC text without an offset.
    from datetime import UTC, datetime

    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


# --- one measurement -------------------------------------------------------------------


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def group_cpu_seconds(group: int) -> float:
    """CPU time (user + system) of the live processes of a process group, from /proc.

    Rates move with whatever else runs on the machine; CPU per run much less.
    """
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After "pid (comm)": state, ppid, pgrp, ... utime and stime are the 12th and 13th.
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def post_messages(server: GunicornServer, token: str, total: int, per_message: int) -> None:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
    for start in range(0, total, per_message):
        numbers = range(start, min(total, start + per_message))
        body = build_outbound_message(
            [
                {
                    "id": f"04l8a{n:010d}AAR",
                    "fields": {
                        "Id": f"5008a{n:010d}AAB",
                        "CaseNumber": f"{n:08d}",
                        "ContactEmail": f"customer{n:06d}@example.org",
                        "ContactId": f"0038a{n:010d}AAB",
                        "First_Name__c": "Sofía",
                        "Last_Name__c": f"O'Brien {n}",
                        "Priority": "High",
                        "Status": "Closed",
                        "IsClosed": "true",
                    },
                }
                for n in numbers
            ]
        )
        connection.request("POST", f"/events/salesforce/{token}/", body, HEADERS)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200 or b"<Ack>true</Ack>" not in answer:
            raise RuntimeError(f"POST refused ({response.status}): {answer[:300]!r}")
    connection.close()


def purge_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).delete(QUEUE_KEY)


def measure(
    database: Database,
    base_env: dict[str, str],
    *,
    number: int,
    label: str,
    workers: int,
    notifications: int,
    per_message: int,
    redis_url: str | None,
    timeout: float,
) -> Result:
    url = database.fresh(number)
    env = {**base_env, "DATABASE_URL": url, "XMFLOWS_WORKERS": str(workers)}
    if redis_url:
        env["REDIS_URL"] = redis_url
        purge_redis(redis_url)
    else:
        env.pop("REDIS_URL", None)
    demo = json.loads(manage(["seed_demo", "--json"], env))
    token = demo["event_url"].rstrip("/").rsplit("/", 1)[1]
    with GunicornServer(env, workers=1) as server:
        post_messages(server, token, notifications, per_message)
    log_path = database.var_dir / f"qcluster-{number}.log"
    busy_before, total_before = machine_ticks()
    began = time.time()
    with log_path.open("wb") as log:
        cluster = subprocess.Popen(
            [PYTHON, str(PROJECT_ROOT / "manage.py"), "qcluster"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            counts = database.counts(url)
            if counts["finished"] >= notifications and counts["emails"] >= counts["succeeded"]:
                break
            if cluster.poll() is not None:
                raise RuntimeError(f"qcluster exited:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not finished after {timeout:.0f}s: {counts}")
            time.sleep(0.1)
        wall = time.time() - began
        cpu = group_cpu_seconds(cluster.pid)
        busy_after, total_after = machine_ticks()
    finally:
        # One SIGINT, then wait: a second signal can hang django-q2 (PITFALLS.md 13).
        if cluster.poll() is None:
            cluster.send_signal(signal.SIGINT)
            try:
                cluster.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(cluster.pid, signal.SIGKILL)
                cluster.wait()
        if redis_url:
            purge_redis(redis_url)
    end = max(t for t in (counts["last_run"], counts["last_email"]) if t is not None)
    seconds = end - float(counts["first_start"] or end)
    return Result(
        label=label,
        workers=workers,
        runs=int(counts["finished"]),
        seconds=seconds,
        wall_seconds=wall,
        emails=int(counts["emails"]),
        duplicated=int(counts["emails"]) - int(counts["addresses"]),
        failed=int(counts["finished"]) - int(counts["succeeded"]),
        cpu_seconds=cpu,
        machine_busy=(busy_after - busy_before) / max(1, total_after - total_before),
    )


# --- the run ----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--sqlite-workers", default="1,2")
    parser.add_argument("--pg-workers", default="1,2,4")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument(
        "--redis-db",
        type=int,
        default=13,
        help="Redis database number to use instead of REDIS_URL's (its queue is emptied)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    return parser.parse_args()


def _workers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_family(args, kind: str, workers: list[int], number_base: int) -> list[Result]:
    base_url = os.environ.get("DATABASE_URL") if kind == "postgres" else None
    redis_url = None
    if kind == "postgres":
        parsed = urllib.parse.urlsplit(os.environ["REDIS_URL"])
        redis_url = urllib.parse.urlunsplit(parsed._replace(path=f"/{args.redis_db}"))
    var_dir = make_var_dir(f"xmflows-bench-pipeline-{kind}-")
    database = Database(kind, var_dir, base_url)
    label = "SQLite + ORM broker" if kind == "sqlite" else "PostgreSQL + Redis"
    results: list[Result] = []
    try:
        env = app_env(var_dir=var_dir, database_url=database.url_for(database.template))
        env.pop("REDIS_URL", None)
        database.prepare(env)
        for offset, count in enumerate(workers):
            result = measure(
                database,
                env,
                number=number_base + offset,
                label=label,
                workers=count,
                notifications=args.notifications,
                per_message=args.per_message,
                redis_url=redis_url,
                timeout=args.timeout,
            )
            print(result.line(), flush=True)
            results.append(result)
    finally:
        database.drop()
        remove_var_dir(var_dir)
    return results


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    began = time.monotonic()
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start;"
        f" {args.notifications} notifications in messages of {args.per_message}"
    )
    checks: list[tuple[str, str, str, bool]] = []
    all_correct = True
    if args.only in (None, "sqlite"):
        results = run_family(args, "sqlite", _workers(args.sqlite_workers), 1)
        by_workers = {r.workers: r for r in results}
        all_correct &= all(r.duplicated == 0 and r.failed == 0 for r in results)
        if 2 in by_workers:
            rate = by_workers[2].rate
            checks.append(
                (
                    "SQLite + ORM, 2 workers",
                    f"{rate:.0f} runs/s",
                    f">= {TARGET_SQLITE_RUNS_PER_S:.0f}",
                    rate >= TARGET_SQLITE_RUNS_PER_S,
                )
            )
        if 1 in by_workers and 2 in by_workers and by_workers[1].rate:
            print(
                f"  SQLite scaling 1 -> 2 workers: x{by_workers[2].rate / by_workers[1].rate:.2f}"
            )
    postgres_ready = (os.environ.get("DATABASE_URL") or "").startswith("postgres") and bool(
        os.environ.get("REDIS_URL")
    )
    if args.only in (None, "postgres"):
        if not postgres_ready:
            print("PostgreSQL + Redis skipped: set DATABASE_URL (postgres://…) and REDIS_URL")
        else:
            results = run_family(args, "postgres", _workers(args.pg_workers), 100)
            by_workers = {r.workers: r for r in results}
            all_correct &= all(r.duplicated == 0 and r.failed == 0 for r in results)
            base = by_workers.get(1)
            for count in sorted(by_workers):
                if base and count != 1 and base.rate:
                    print(
                        f"  PostgreSQL + Redis scaling 1 -> {count} workers:"
                        f" x{by_workers[count].rate / base.rate:.2f}"
                    )
            if base and 2 in by_workers and base.rate:
                ratio = by_workers[2].rate / base.rate
                checks.append(
                    (
                        "PostgreSQL + Redis, 1 -> 2 workers",
                        f"x{ratio:.2f}",
                        f">= x{TARGET_SCALING_1_TO_2}",
                        ratio >= TARGET_SCALING_1_TO_2,
                    )
                )
    checks.append(
        ("every run once, every email once", "yes" if all_correct else "NO", "", all_correct)
    )
    print("\nsummary:")
    for name, measured, goal, passed in checks:
        print(f"  {name:<36} {measured:>14}  {goal:<10} {'PASS' if passed else 'FAIL'}")
    print(
        f"  (load average {os.getloadavg()[0]:.2f} at the end;"
        f" total {time.monotonic() - began:.0f}s)"
    )
    return 0 if all(passed for *_, passed in checks) else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: processes stopped, databases and temporary directories removed")
        raise SystemExit(130) from None
